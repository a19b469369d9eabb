/**
 * When a stream that already delivered chunks may move to another endpoint,
 * and what the client is told when it may not.
 */
import { errors, type MeshError } from '../../common/errors.js';
import type { Delivered } from './delivered.js';
import type { AttemptFailure } from './failure-policy.js';

/** A migration needs at least this much time before the deadline to be worth starting. */
export const MIN_MIGRATION_REMAINING_MS = 200;
/**
 * Drain hand-backs a stream may take beyond `migration_limit`: a draining pod
 * takes no new work, so more than a few in a row means a whole pool rolling
 * over; this only stops a loop.
 */
export const EXTRA_HANDBACKS = 8;

/** Why a stream that delivered chunks does not move on. */
export type MigrationRefusal =
  /** The failure's own status reaches the client (it cancelled, its deadline passed, the request is at fault). */
  | { keepStatus: true }
  /** The stream ends UNAVAILABLE with this reason. */
  | { keepStatus: false; reason: string };

/** Why a stream that delivered chunks cannot move on after `failure`; undefined when it may. */
export function migrationRefusal(
  failure: AttemptFailure,
  s: { migrations: number; handbacks: number; deadline: number; now: number; limit: number },
): MigrationRefusal | undefined {
  if (!failure.policy.migrateAfterFirstChunk) return { keepStatus: true };
  if (failure.kind !== 'handback' && s.migrations >= s.limit) {
    return { keepStatus: false, reason: `migration limit (${s.limit}) reached` };
  }
  if (failure.kind === 'handback' && s.handbacks >= s.limit + EXTRA_HANDBACKS) {
    return { keepStatus: false, reason: 'too many hand-backs' };
  }
  if (s.deadline - s.now < MIN_MIGRATION_REMAINING_MS) {
    return { keepStatus: false, reason: 'the deadline is too close' };
  }
  return undefined;
}

export function notMigrated(failure: AttemptFailure, delivered: Delivered, why: string): MeshError {
  const n = delivered.tokens;
  return errors.unavailable(
    `${failure.message}; the stream stopped after ${n} token${n === 1 ? '' : 's'} were delivered and was not continued: ${why}`,
    { cause: failure },
  );
}
