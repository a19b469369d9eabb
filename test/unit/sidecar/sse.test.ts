import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSseParser } from '../../../sidecar/sse.js';
import { fixture } from '../../helpers/fixtures.js';

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

  it('reads events of every shape alike, whatever the split, as the WHATWG algorithm does', () => {
    const body =
      'data: {"a":1}\n\n\n\ndata:{"b":2}\n\n: comment\ndata: {"c":3}\n\nevent: x\ndata: y\ndata: z\n\n' +
      'data:  two spaces\n\nid: 7\ndata: [DONE]\n\ndata: tail';
    const want = [
      { event: 'message', data: '{"a":1}' },
      { event: 'message', data: '{"b":2}' },
      { event: 'message', data: '{"c":3}' },
      { event: 'x', data: 'y\nz' },
      { event: 'message', data: ' two spaces' },
      { event: 'message', data: '[DONE]' },
      { event: 'message', data: 'tail' },
    ];
    for (const size of [1, 2, 3, 5, 11, body.length]) {
      const p = createSseParser();
      const events = [];
      for (let i = 0; i < body.length; i += size) events.push(...p.push(body.slice(i, i + size)));
      events.push(...p.flush());
      assert.deepEqual(events, want, `chunk size ${size}`);
    }
    const crlf = createSseParser();
    const events = [...crlf.push('data: a\n\ndata: b\r\n\r\ndata: c\n'), ...crlf.push('\n'), ...crlf.flush()];
    assert.deepEqual(
      events.map((e) => e.data),
      ['a', 'b', 'c'],
    );
  });

  it('keeps an unterminated last event for flush', () => {
    const p = createSseParser();
    assert.deepEqual(p.push('data: {"a":1}'), []);
    assert.deepEqual(p.flush(), [{ event: 'message', data: '{"a":1}' }]);
  });
});
