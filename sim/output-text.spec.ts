import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createOutputText } from './output-text.js';

function run(tokens: string[], options: Parameters<typeof createOutputText>[0]) {
  const out = createOutputText(options);
  const deltas: string[] = [];
  let stop: string | undefined;
  for (const [i, t] of tokens.entries()) {
    stop = out.append(t);
    const finished = stop !== undefined || i === tokens.length - 1;
    deltas.push(out.takeDelta(finished));
    if (stop !== undefined) break;
  }
  return { text: out.text, deltas, stop };
}

describe('output text', () => {
  it('passes tokens through unchanged without stop strings', () => {
    const r = run([' a', ' b', ' c'], {});
    assert.deepEqual(r.deltas, [' a', ' b', ' c']);
    assert.equal(r.text, ' a b c');
    assert.equal(r.stop, undefined);
  });

  it('truncates before a stop string spanning tokens and reports it', () => {
    const r = run([' the', ' big', ' dog', ' ran'], { stop: ['g d'] });
    assert.equal(r.stop, 'g d');
    assert.equal(r.text, ' the bi');
    assert.equal(r.deltas.join(''), ' the bi');
  });

  it('holds back text that could be the start of a stop string', () => {
    const r = run([' one', ' two', ' three'], { stop: ['xyz'] });
    // Two characters (stop length - 1) wait until the next token or the end.
    assert.deepEqual(r.deltas, [' o', 'ne t', 'wo three']);
  });

  it('checks stop strings in list order and can keep the match', () => {
    const r = run([' a', ' b', ' c'], { stop: [' c', ' b'], includeStopStrInOutput: true });
    assert.equal(r.stop, ' b');
    assert.equal(r.text, ' a b');
  });

  it('ignores stop strings until min_tokens were generated', () => {
    const r = run([' a', ' a', ' a'], { stop: [' a'], minTokens: 2 });
    assert.equal(r.stop, ' a');
    assert.equal(r.text, ' a a');
  });
});
