/**
 * How one router replica takes part in progressions shared through Redis
 * (`analysis.redis`): the connection and its up/down state, one shared tick
 * per model (adopt the stored state, renew the judging lease, publish this
 * replica's step statistics, and judge on everyone's merged statistics when
 * this replica holds the lease), and operator actions written with a
 * compare-and-set on the revision so that they and a judgement never
 * overwrite each other.
 *
 * The controller owns the runs and what a decision does (metrics, log,
 * events); this module only decides when the shared state says so. A Redis
 * outage pauses every progressing run and its return resumes them; a failed
 * command skips one tick. Nothing here is on the request path.
 */
import type { Redis } from 'ioredis';
import { errors } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { createRedisConnection } from '../../common/redis.js';
import type { CanaryDecision, ProgressionState } from './progression.js';
import { createRedisStore, type SharedStore } from './shared-store.js';
import { type StatsJson, statsToJson, type VersionStats } from './stats.js';
import type { CanaryDeps, CanaryModelStatus, ModelRun } from './types.js';

/** Bound of every Redis command: a slow Redis pauses the progression, it never stalls a tick for long. */
const REDIS_TIMEOUT_MS = 500;
/** Attempts of an operator action against concurrent writers. */
const CONTROL_ATTEMPTS = 5;

/** A judgement of one run on some statistics (the controller's judge). */
export interface Judged {
  state: ProgressionState;
  decision: CanaryDecision;
  record: NonNullable<CanaryModelStatus['lastJudgement']>;
}

/** What is done with a decision (`local`: made by this replica, not adopted from another). */
export type DecisionHook = (
  model: string,
  r: ModelRun,
  decision: CanaryDecision,
  reason: string,
  detail: string,
  local: boolean,
) => void;

/** What the sharing needs from the controller. */
export interface SharingHooks {
  log: Logger;
  now: () => number;
  replicaId: string;
  redis?: CanaryDeps['redis'];
  /** The runs to pause and resume when Redis goes and comes back. */
  runs: () => Iterable<[string, ModelRun]>;
  /** Makes `next` the run's state; returns the state it replaced. */
  adopt: (model: string, r: ModelRun, next: ProgressionState) => ProgressionState;
  /** A decision was made (`local`: by this replica). */
  decided: DecisionHook;
  /** Judges `r` on `merged` statistics at `at`. */
  judge: (r: ModelRun, merged: Map<string, VersionStats>, at: number) => Judged;
}

/** One replica's side of the shared progressions. */
export interface CanarySharing {
  /** Connects to `url` (or stops sharing when undefined); a no-op when unchanged. */
  configure(url: string | undefined, prefix: string): void;
  /** `none`: not shared; `up` / `down`: the shared state is reachable or not. */
  state(): 'none' | 'up' | 'down';
  /** One shared tick of `model` (call only while `state()` is `up`); a failed command skips it. */
  tick(model: string, r: ModelRun, tickMs: number): Promise<void>;
  /** Applies an operator action to the shared state; returns what was written. */
  control(
    model: string,
    r: ModelRun,
    apply: (base: ProgressionState) => { state: ProgressionState; decision: CanaryDecision },
  ): Promise<{ state: ProgressionState; decision: CanaryDecision }>;
  close(): void;
}

export function createCanarySharing(h: SharingHooks): CanarySharing {
  let url: string | undefined;
  let prefix = '';
  let redis: Redis | undefined;
  let store: SharedStore | undefined;
  let up = false;

  const configure = (nextUrl: string | undefined, nextPrefix: string) => {
    if (nextUrl === url && nextPrefix === prefix) return;
    const old = redis;
    url = nextUrl;
    prefix = nextPrefix;
    redis = undefined;
    store = undefined;
    up = false;
    old?.disconnect();
    if (!nextUrl) return;
    // The first connection is no resumption: only a loss and a return are decisions.
    let lost = false;
    const onState = (isUp: boolean) => {
      if (up === isUp) return;
      up = isUp;
      if (!isUp) lost = true;
      else if (!lost) return;
      for (const [model, r] of h.runs()) {
        if (r.state.phase !== 'progressing') continue;
        if (isUp)
          h.decided(
            model,
            r,
            'resume',
            'redis_available',
            'shared state reachable again: judging resumes',
            true,
          );
        else
          h.decided(
            model,
            r,
            'pause',
            'redis_unavailable',
            'shared state (Redis) unreachable: the progression is paused at its step; requests are unaffected',
            true,
          );
      }
    };
    redis = h.redis
      ? h.redis(nextUrl, onState)
      : createRedisConnection({ url: nextUrl, commandTimeoutMs: REDIS_TIMEOUT_MS, logger: h.log, onState });
    store = createRedisStore(redis, nextPrefix, h.replicaId);
  };

  const tickOnce = async (model: string, r: ModelRun, s: SharedStore, tickMs: number) => {
    const shared = await s.read(model);
    // (A restarted replica's fresh state may share a revision number with the stored one: compare its timing too.)
    if (
      shared &&
      shared.key === r.state.key &&
      (shared.rev !== r.state.rev || shared.judgeAt !== r.state.judgeAt)
    ) {
      const before = h.adopt(model, r, shared);
      const last = shared.timeline[shared.timeline.length - 1];
      if (last && shared.rev > before.rev)
        h.decided(model, r, last.decision, last.reason, last.detail, false);
    }
    r.leader = await s.lease(model, Math.max(3 * tickMs, 1_000));
    const stats: Record<string, StatsJson> = {};
    for (const [v, st] of r.stats) stats[v] = statsToJson(st);
    await s.publish(model, r.state.key, r.state.epoch, stats, Math.max(10 * r.cfg.interval_ms, 60_000));
    if (!r.leader) return;
    if (!shared || shared.key !== r.state.key) {
      // This replica's config is newer than the shared state (or there is none): it starts the shared progression.
      const mine = { ...r.state, rev: (shared?.rev ?? 0) + 1 };
      if (await s.write(model, shared?.rev ?? -1, mine)) h.adopt(model, r, mine);
      return;
    }
    const t = h.now();
    if (r.state.phase !== 'progressing' || t < r.state.judgeAt) return;
    const merged = await s.collect(model, r.state.key, r.state.epoch);
    const { state, decision, record } = h.judge(r, merged, t);
    if (!(await s.write(model, r.state.rev, state))) return; // someone acted first: adopt it next tick
    r.lastJudgement = record;
    h.adopt(model, r, state);
    h.decided(model, r, decision, record.reason, record.detail, true);
  };

  return {
    configure,
    state: () => (!url ? 'none' : up ? 'up' : 'down'),
    async tick(model, r, tickMs) {
      const s = store;
      if (!s || !up) return;
      try {
        await tickOnce(model, r, s, tickMs);
      } catch (err) {
        // The connection's own events flip `up`; a failed command alone just skips this tick.
        h.log.debug('canary shared state unavailable this tick', { model, err: (err as Error).message });
      }
    },
    async control(model, r, apply) {
      const s = store;
      if (!s || !up) {
        throw errors.unavailable('the shared canary state (Redis) is unreachable; try again when it is back');
      }
      for (let i = 0; i < CONTROL_ATTEMPTS; i++) {
        const shared = await s.read(model);
        const base = shared && shared.key === r.state.key ? shared : r.state;
        const { state, decision } = apply(base);
        state.rev = (shared?.rev ?? 0) + 1;
        if (await s.write(model, shared?.rev ?? -1, state)) return { state, decision };
      }
      throw errors.unavailable('the canary state kept changing under this action; try again');
    },
    close() {
      const r = redis;
      redis = undefined;
      store = undefined;
      r?.disconnect();
    },
  };
}
