/** The built-in pickers: `max-score`, `p2c`, `random`, `round-robin`. */
import type { Picker, PluginDeps } from './types.js';

const EPSILON = 1e-9;

/** `max-score`: the highest total; ties broken uniformly at random. */
export function createMaxScorePicker(deps: PluginDeps): Picker {
  return {
    type: 'max-score',
    pick(endpoints, totals) {
      let best = -1;
      let bestScore = Number.NEGATIVE_INFINITY;
      let ties = 0;
      for (let i = 0; i < endpoints.length; i++) {
        const s = totals[i] as number;
        if (s > bestScore + EPSILON) {
          best = i;
          bestScore = s;
          ties = 1;
        } else if (Math.abs(s - bestScore) <= EPSILON) {
          // Reservoir sampling over the tied endpoints: each wins with probability 1/ties.
          ties++;
          if (deps.random() * ties < 1) best = i;
        }
      }
      return best;
    },
  };
}

/** `p2c` (power of two choices): two endpoints at random, the higher total wins (ties at random). */
export function createP2cPicker(deps: PluginDeps): Picker {
  return {
    type: 'p2c',
    pick(endpoints, totals) {
      const n = endpoints.length;
      if (n <= 1) return n - 1;
      const a = Math.floor(deps.random() * n);
      let b = Math.floor(deps.random() * (n - 1));
      if (b >= a) b++;
      const sa = totals[a] as number;
      const sb = totals[b] as number;
      if (Math.abs(sa - sb) <= EPSILON) return deps.random() < 0.5 ? a : b;
      return sa > sb ? a : b;
    },
  };
}

/** `random`: uniform, ignoring scores. */
export function createRandomPicker(deps: PluginDeps): Picker {
  return {
    type: 'random',
    pick: (endpoints) => (endpoints.length === 0 ? -1 : Math.floor(deps.random() * endpoints.length)),
  };
}

/** `round-robin`: the candidates in turn, ignoring scores. */
export function createRoundRobinPicker(): Picker {
  let turn = 0;
  return {
    type: 'round-robin',
    pick: (endpoints) => (endpoints.length === 0 ? -1 : turn++ % endpoints.length),
  };
}
