import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createStopMatcher } from './stop-matcher.js';

interface Case {
  name: string;
  stop: string[];
  /** Held-back output the stream starts with. */
  pending?: string;
  /** Pieces appended one by one (a delta is taken after each). */
  pieces: string[];
  /** The deltas handed out after each piece, then the final flush. */
  deltas: string[];
  matched?: string;
}

const cases: Case[] = [
  {
    name: 'no stop strings: nothing is held, nothing is cut',
    stop: [],
    pieces: ['Hello', ' world'],
    deltas: ['Hello', ' world', ''],
  },
  {
    name: 'holds back max(len) - 1 characters until the end',
    stop: ['QQQQ'],
    pieces: ['abcdef', 'gh'],
    deltas: ['abc', 'de', 'fgh'],
  },
  {
    name: 'a match inside one piece cuts before it and releases the rest at once',
    stop: ['END'],
    pieces: ['abc END tail'],
    deltas: ['abc ', ''],
    matched: 'END',
  },
  {
    name: 'a match straddling two pieces is found',
    stop: ['the end'],
    pieces: ['so this is the', ' end of it'],
    deltas: ['so this ', 'is ', ''],
    matched: 'the end',
  },
  {
    name: 'the first listed stop string wins, not the earliest in the text',
    stop: ['late', 'early'],
    pieces: ['an early and a late one'],
    deltas: ['an early and a ', ''],
    matched: 'late',
  },
  {
    name: 'a match starting in the pending tail and ending in new text',
    stop: ['first does'],
    pending: 'first d',
    pieces: ['oes music'],
    deltas: ['', ''],
    matched: 'first does',
  },
  {
    name: 'a match wholly inside the pending tail',
    stop: ['ab'],
    pending: 'xaby',
    pieces: ['more'],
    deltas: ['x', ''],
    matched: 'ab',
  },
  {
    name: 'the pending tail is handed out first, still holding what could start a match',
    stop: ['QQQQQQQQ'],
    pending: 'first d',
    pieces: ['oes', ' music'],
    deltas: ['fir', 'st doe', 's music'],
  },
  {
    name: 'a stop string split by other text is no match',
    stop: ['xx'],
    pieces: ['ax', 'b', 'x'],
    deltas: ['a', 'x', 'b', 'x'],
  },
  {
    name: 'nothing is appended after a match',
    stop: ['!'],
    pieces: ['hi!', 'more!'],
    deltas: ['hi', '', ''],
    matched: '!',
  },
  {
    name: 'empty stop strings are ignored',
    stop: ['', 'zz'],
    pieces: ['az', 'zb'],
    deltas: ['a', '', ''],
    matched: 'zz',
  },
];

describe('stop matcher', () => {
  for (const c of cases) {
    it(c.name, () => {
      const m = createStopMatcher(c.stop, c.pending);
      const deltas: string[] = [];
      for (const p of c.pieces) {
        m.append(p);
        deltas.push(m.takeDelta(false));
      }
      deltas.push(m.takeDelta(true));
      assert.deepEqual(deltas, c.deltas);
      assert.equal(m.matched, c.matched);
      assert.equal(deltas.join(''), m.text, 'every character of the output is handed out once');
    });
  }
});
