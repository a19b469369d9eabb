/**
 * Per-tenant rate limits: requests per second and tokens per minute, as token
 * buckets. Shared by every router replica through Redis (one atomic script
 * per decision, Redis's own clock); when Redis is unreachable or slow each
 * replica falls back to a local bucket with the limit divided by the replica
 * count.
 *
 * A fallback must not hand out tokens the shared bucket does not have: the
 * local bucket is kept at this replica's share of the last shared state (empty
 * before Redis ever answered), and whatever it grants is owed to Redis and
 * charged there by the next shared decision. A decision's timeout counts only
 * time the event loop was responsive, so a busy router does not mistake its own
 * lag for a slow Redis; a reply that arrives after its timeout is reconciled.
 *
 * Prompt tokens are taken at admission (the request is refused when the
 * bucket cannot cover them); output tokens are charged as they stream and may
 * drive the bucket negative, so a tenant overshoots by at most the output of
 * the requests it has in flight.
 */
import { once } from 'node:events';
import type { Redis } from 'ioredis';
import { MeshError, Status } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';

/** What a decision needs to know about the limits. */
export interface TenantLimits {
  requestsPerSecond?: number;
  tokensPerMinute?: number;
}

/** A rate limiter shared by all tenants of one router. */
export interface RateLimiter {
  /**
   * Admits one request of `tenant` with `promptTokens`; throws
   * RESOURCE_EXHAUSTED with a retry pushback when over a limit.
   */
  admit(tenant: string, limits: TenantLimits, promptTokens: number): Promise<void>;
  /** Charges streamed output tokens (never refuses); resolves once recorded. */
  charge(tenant: string, limits: TenantLimits, tokens: number): Promise<void>;
  /** True while decisions are local because Redis is unreachable. */
  readonly degraded: boolean;
}

/** Options of {@link createRateLimiter}. */
export interface RateLimiterOptions {
  /** Shared store; without it limits are per replica. */
  redis?: Redis;
  /** Replicas sharing the limits: the local fallback enforces limit / replicas. */
  replicas?: number;
  keyPrefix?: string;
  /**
   * How long a Redis decision may take, in event-loop-responsive time (lag
   * does not count), before the local bucket decides. Default 100 ms.
   */
  redisTimeoutMs?: number;
  now?: () => number;
  logger?: Logger;
  /** Called when the limiter switches between Redis and local decisions. */
  onDegradedChange?: (degraded: boolean) => void;
  /** Called on every decision made locally although Redis is configured. */
  onFallback?: (reason: FallbackReason) => void;
}

/** Why a decision fell back to the local bucket. */
export type FallbackReason = 'timeout' | 'error' | 'unavailable';

/** Default of {@link RateLimiterOptions.redisTimeoutMs}. */
export const DEFAULT_REDIS_TIMEOUT_MS = 100;

const SCRIPT = `
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local force = ARGV[4] == '1'
local owed = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil then tokens = cap; ts = now end
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
-- What replicas granted locally while Redis did not answer (negative: refunds).
tokens = math.min(cap, tokens - owed)
local ok = 0
if force or tokens >= amount then
  tokens = tokens - amount
  ok = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate) + 60000)
return {ok, tostring(tokens)}
`;

interface Bucket {
  tokens: number;
  ts: number;
}

/** Creates a rate limiter. */
export function createRateLimiter(options: RateLimiterOptions = {}): RateLimiter {
  const now = options.now ?? Date.now;
  const replicas = Math.max(1, options.replicas ?? 1);
  const prefix = options.keyPrefix ?? 'llmmesh:ratelimit:';
  const timeoutMs = options.redisTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS;
  const local = new Map<string, Bucket>();
  // Tokens granted (or refunds due, negative) that Redis has not been told of yet.
  const owed = new Map<string, number>();
  const owe = (key: string, amount: number) => owed.set(key, (owed.get(key) ?? 0) + amount);
  let degraded = !options.redis;

  const setDegraded = (d: boolean) => {
    if (d === degraded || !options.redis) return;
    degraded = d;
    options.logger?.warn(
      d ? 'rate limits fall back to per-replica buckets' : 'rate limits shared through Redis again',
    );
    options.onDegradedChange?.(d);
  };

  const localTake = (key: string, cap: number, ratePerMs: number, amount: number, force: boolean) => {
    const at = now();
    // Without Redis a bucket starts full; with it, empty until Redis has told us its state.
    const b = local.get(key) ?? { tokens: options.redis ? 0 : cap, ts: at };
    b.tokens = Math.min(cap, b.tokens + Math.max(0, at - b.ts) * ratePerMs);
    b.ts = at;
    let ok = false;
    if (force || b.tokens >= amount) {
      b.tokens -= amount;
      ok = true;
    }
    local.set(key, b);
    return { ok, tokens: b.tokens };
  };

  const shared = async (
    redis: Redis,
    key: string,
    capacity: number,
    ratePerMs: number,
    amount: number,
    force: boolean,
  ): Promise<{ ok: boolean; tokens: number }> => {
    // Send what is owed with this decision; it is owed again if the call surely failed.
    const debt = owed.get(key) ?? 0;
    owed.delete(key);
    const call = redis.eval(
      SCRIPT,
      1,
      prefix + key,
      capacity,
      ratePerMs,
      amount,
      force ? '1' : '0',
      debt,
    ) as Promise<[number, string]>;
    try {
      const result = await withResponsiveTimeout(call, timeoutMs);
      const tokens = Number(result[1]);
      // The fallback starts from this replica's share of the shared state.
      local.set(key, { tokens: tokens / replicas, ts: now() });
      return { ok: result[0] === 1, tokens };
    } catch (err) {
      // A late reply means Redis did apply the call: what it granted is not owed.
      call.then(
        (late) => {
          if (late[0] === 1) owe(key, -amount);
        },
        () => owe(key, debt),
      );
      throw err;
    }
  };

  const take = async (
    key: string,
    capacity: number,
    ratePerMs: number,
    amount: number,
    force: boolean,
  ): Promise<{ ok: boolean; tokens: number; ratePerMs: number }> => {
    const redis = options.redis;
    if (redis && (redis.status === 'connecting' || redis.status === 'connect')) {
      // Starting up: give the first connection the same short bound as a command.
      await withTimeout(once(redis, 'ready'), timeoutMs).catch(() => {});
    }
    if (redis) {
      let reason: FallbackReason = 'unavailable';
      if (redis.status === 'ready') {
        try {
          const r = await shared(redis, key, capacity, ratePerMs, amount, force);
          setDegraded(false);
          return { ...r, ratePerMs };
        } catch (err) {
          reason = err instanceof ResponsiveTimeoutError ? 'timeout' : 'error';
        }
      }
      setDegraded(true);
      options.onFallback?.(reason);
    }
    const cap = capacity / replicas;
    const rate = ratePerMs / replicas;
    const r = localTake(key, cap, rate, amount, force);
    if (redis && r.ok) owe(key, amount);
    return { ...r, ratePerMs: rate };
  };

  const refuse = (what: string, tenant: string, deficit: number, ratePerMs: number): never => {
    const pushback = Math.max(1, Math.ceil(deficit / ratePerMs));
    throw new MeshError(Status.RESOURCE_EXHAUSTED, `tenant "${tenant}" is over its ${what} limit`, {
      retryPushbackMs: pushback,
    });
  };

  return {
    get degraded() {
      return degraded;
    },
    async admit(tenant, limits, promptTokens) {
      if (limits.requestsPerSecond && limits.requestsPerSecond > 0) {
        const rps = limits.requestsPerSecond;
        // A bucket holds at least one request, so rates below 1/s still admit.
        const r = await take(`${tenant}:rps`, Math.max(1, rps), rps / 1000, 1, false);
        if (!r.ok) refuse('requests_per_second', tenant, 1 - r.tokens, r.ratePerMs);
      }
      if (limits.tokensPerMinute && limits.tokensPerMinute > 0) {
        const tpm = limits.tokensPerMinute;
        // A prompt larger than the whole budget can never pass: charge what fits.
        const amount = Math.min(promptTokens, tpm);
        const r = await take(`${tenant}:tpm`, tpm, tpm / 60_000, amount, false);
        if (!r.ok) refuse('tokens_per_minute', tenant, amount - r.tokens, r.ratePerMs);
      }
    },
    async charge(tenant, limits, tokens) {
      if (!limits.tokensPerMinute || tokens <= 0) return;
      const tpm = limits.tokensPerMinute;
      await take(`${tenant}:tpm`, tpm, tpm / 60_000, tokens, true).catch(() => {});
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** A decision that took longer than its timeout of responsive event-loop time. */
class ResponsiveTimeoutError extends Error {}

/**
 * Rejects when `p` has not settled after `ms` of event-loop time that was not
 * lag (or after 10 × `ms` in all). Lag is measured by how late each of a chain
 * of short timers fires: while the loop is blocked, a reply may already wait
 * in the socket, so blocked time does not count against Redis. Before
 * rejecting, one turn of the loop lets replies already received be read.
 */
export function withResponsiveTimeout<T>(
  p: Promise<T>,
  ms: number,
  clock: () => number = () => performance.now(),
): Promise<T> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const start = clock();
    const step = Math.max(1, ms / 4);
    let budget = ms;
    let armedAt = start;
    let scheduled = 0;
    let timer: NodeJS.Timeout | undefined;
    const giveUp = () =>
      setImmediate(() => {
        if (settled) return;
        settled = true;
        reject(new ResponsiveTimeoutError(`no answer within ${ms} ms of responsive time`));
      });
    const arm = (delay: number) => {
      armedAt = clock();
      scheduled = delay;
      timer = setTimeout(tick, delay);
    };
    const tick = () => {
      const t = clock();
      const elapsed = t - armedAt;
      const lag = Math.max(0, elapsed - scheduled);
      budget -= elapsed - lag;
      if (budget <= 0 || t - start >= 10 * ms) giveUp();
      else arm(Math.min(step, budget));
    };
    arm(Math.min(step, budget));
    p.then(
      (v) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        reject(e);
      },
    );
  });
}
