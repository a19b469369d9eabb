import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixture } from '../test/helpers/fixtures.js';
import { createSseParser } from './sse.js';

describe('SSE parser', () => {
  it('parses vLLM completions events split at every byte boundary', () => {
    const body = fixture('vllm-completions-stream.sse');
    const parser = createSseParser();
    const whole = [...parser.push(body), ...parser.flush()];
    for (const size of [1, 7, 64]) {
      const p = createSseParser();
      const events = [];
      for (let i = 0; i < body.length; i += size) events.push(...p.push(body.slice(i, i + size)));
      events.push(...p.flush());
      assert.deepEqual(events, whole, `chunk size ${size}`);
    }
    const data = whole.map((e) => e.data);
    assert.equal(data.at(-1), '[DONE]');
    assert.equal(data.length, 8); // 7 text_completion chunks + [DONE]
    assert.equal(JSON.parse(data[0] ?? '').choices[0].text, ' city');
  });

  it('handles CRLF line endings, comments and multi-line data', () => {
    const p = createSseParser();
    const events = p.push(': keep-alive\r\nevent: x\r\ndata: a\r\ndata: b\r\n\r\ndata: c\n\n');
    assert.deepEqual(events, [
      { event: 'x', data: 'a\nb' },
      { event: 'message', data: 'c' },
    ]);
  });

  it('separates events that arrive without the blank line between them', () => {
    const parser = createSseParser();
    const events = [...parser.push(fixture('sglang-stream-error.sse')), ...parser.flush()];
    assert.equal(events.length, 2);
    assert.match(events[0]?.data ?? '', /"error"/);
    assert.equal(events[1]?.data, '[DONE]');
  });

  it('keeps an unterminated last event for flush', () => {
    const p = createSseParser();
    assert.deepEqual(p.push('data: {"a":1}'), []);
    assert.deepEqual(p.flush(), [{ event: 'message', data: '{"a":1}' }]);
  });
});
