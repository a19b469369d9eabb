/**
 * Score lists. A decision makes one per scorer plus the totals: plain arrays
 * of numbers, allocated in V8's young generation. A `Float64Array` of more
 * than a few elements gets a separately allocated backing store that the
 * garbage collector must track and free, which at a few thousand decisions
 * a second cost more than the scoring.
 */

/**
 * Zeros held as doubles (V8's elements kind never goes back from doubles to
 * small integers), copied by {@link zeroScores}. Grown to the largest list
 * asked for.
 */
const zeros: number[] = [0.5];
zeros[0] = 0;

/**
 * A list of `n` zero scores. A copy of {@link zeros}: one allocation, already
 * of doubles. `new Array(n).fill(0)` makes a list of small integers, which
 * the first fractional score converts, allocating the list's storage again.
 */
export function zeroScores(n: number): number[] {
  while (zeros.length < n) zeros.push(0);
  return zeros.slice(0, n);
}
