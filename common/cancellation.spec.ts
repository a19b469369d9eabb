import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { Cancellation, type CancelSignal, type CancelSource } from './cancellation.js';

/** What each abort source calls, in order, for the same sequence of operations. */
function scenario(source: CancelSource): string[] {
  const calls: string[] = [];
  const s: CancelSignal = source.signal;
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

describe('Cancellation', () => {
  it('aborts as an AbortController does: each listener once, in order, none removed or added late', () => {
    const light = scenario(new Cancellation());
    assert.deepEqual(light, ['aborted before: false', 'a', 'b', 'aborted after: true']);
    assert.deepEqual(light, scenario(new AbortController()));
  });

  it('is its own signal', () => {
    const c = new Cancellation();
    assert.equal(c.signal, c);
    assert.equal(c.aborted, false);
    c.abort();
    assert.equal(c.signal.aborted, true);
  });
});

describe('Cancellation with a listener that throws', () => {
  it('still calls the others, returns to its caller, and reports the error as uncaught on the next tick', () => {
    // In a process of its own: the test runner would take the uncaught error as this test's failure.
    const script = `
      import { Cancellation } from ${JSON.stringify(new URL('./cancellation.ts', import.meta.url).href)};
      const calls = [];
      process.on('uncaughtException', (err) => { calls.push('reported: ' + err.message); console.log(JSON.stringify(calls)); });
      const c = new Cancellation();
      c.addEventListener('abort', () => { calls.push('first'); throw new Error('listener failed'); });
      c.addEventListener('abort', () => calls.push('second'));
      c.abort();
      calls.push('returned');
    `;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    assert.deepEqual(JSON.parse(out), ['first', 'second', 'returned', 'reported: listener failed']);
  });
});
