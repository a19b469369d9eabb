import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AborterLike, type AbortLike, CallAbort } from './abort.js';

/** What each abort source calls, in order, for the same sequence of operations. */
function scenario(source: AborterLike): string[] {
  const calls: string[] = [];
  const s: AbortLike = source.signal;
  const a = () => calls.push('a');
  const b = () => {
    calls.push('b');
    s.removeEventListener('abort', c);
    s.addEventListener('abort', () => calls.push('added during the abort'));
  };
  const c = () => calls.push('c');
  const d = () => calls.push('d');
  s.addEventListener('abort', a, { once: true });
  s.addEventListener('abort', a, { once: true });
  s.addEventListener('abort', b);
  s.addEventListener('abort', c);
  s.addEventListener('abort', d);
  s.removeEventListener('abort', d);
  calls.push(`aborted before: ${s.aborted}`);
  source.abort();
  calls.push(`aborted after: ${s.aborted}`);
  source.abort();
  s.addEventListener('abort', () => calls.push('added after the abort'));
  return calls;
}

describe('CallAbort', () => {
  it('aborts as an AbortController does: each listener once, in order, none removed or added late', () => {
    const light = scenario(new CallAbort());
    assert.deepEqual(light, ['aborted before: false', 'a', 'b', 'aborted after: true']);
    assert.deepEqual(light, scenario(new AbortController()));
  });

  it('is its own signal', () => {
    const c = new CallAbort();
    assert.equal(c.signal, c);
    assert.equal(c.aborted, false);
    c.abort();
    assert.equal(c.signal.aborted, true);
  });
});
