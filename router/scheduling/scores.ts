/**
 * Score lists. A decision makes one per scorer plus the totals: plain arrays
 * of numbers, allocated in V8's young generation. A `Float64Array` of more
 * than a few elements gets a separately allocated backing store that the
 * garbage collector must track and free, which at a few thousand decisions
 * a second cost more than the scoring.
 */

/** A list of `n` zero scores. */
export function zeroScores(n: number): number[] {
  return new Array<number>(n).fill(0);
}
