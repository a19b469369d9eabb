/**
 * Where router replicas share canary progressions: Redis. Per model, a
 * lease names the one replica that judges; the progression state is written
 * with a compare-and-set on its revision (an operator's action on any replica
 * and the judge's decision cannot overwrite each other); and every replica
 * publishes its statistics of the current step, which the judge merges, so
 * the judgement covers all replicas' traffic. Every call may throw when
 * Redis is unreachable: the controller then pauses judging, and requests
 * never wait on any of this.
 */
import type { Redis } from 'ioredis';
import type { ProgressionState } from './progression.js';
import { mergeStats, type StatsJson, statsFromJson, type VersionStats } from './stats.js';

/** The shared store of progressions. */
export interface SharedStore {
  /** Takes or renews the judging lease of `model` for `ttlMs`; true when this replica holds it. */
  lease(model: string, ttlMs: number): Promise<boolean>;
  /** The shared state of `model`, if any. */
  read(model: string): Promise<ProgressionState | undefined>;
  /** Writes `next` if the stored revision is still `expectedRev` (-1: nothing stored); true when written. */
  write(model: string, expectedRev: number, next: ProgressionState): Promise<boolean>;
  /** Publishes this replica's statistics of one step (`key`, `epoch`). */
  publish(
    model: string,
    key: string,
    epoch: number,
    stats: Record<string, StatsJson>,
    ttlMs: number,
  ): Promise<void>;
  /** Every replica's statistics of one step, merged by version. */
  collect(model: string, key: string, epoch: number): Promise<Map<string, VersionStats>>;
}

const LEASE = `
local cur = redis.call('GET', KEYS[1])
if (not cur) or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;

const CAS = `
local cur = redis.call('GET', KEYS[1])
local rev = -1
if cur then
  local ok, doc = pcall(cjson.decode, cur)
  if ok and type(doc) == 'table' and tonumber(doc['rev']) then rev = tonumber(doc['rev']) else rev = -2 end
end
if rev ~= tonumber(ARGV[1]) and rev ~= -2 then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1`;

/** A store on `redis` under `prefix`; `replicaId` names this replica in leases and statistics. */
export function createRedisStore(redis: Redis, prefix: string, replicaId: string): SharedStore {
  // Model names may hold ':' and '/': keep them apart from the key's own separators.
  const k = (model: string, part: string) => `${prefix}:{${encodeURIComponent(model)}}:${part}`;
  const statsKey = (model: string, key: string, epoch: number) => k(model, `stats:${hash(key)}:${epoch}`);
  return {
    async lease(model, ttlMs) {
      return (await redis.eval(LEASE, 1, k(model, 'lease'), replicaId, String(Math.round(ttlMs)))) === 1;
    },
    async read(model) {
      const raw = await redis.get(k(model, 'state'));
      if (!raw) return undefined;
      try {
        const s = JSON.parse(raw) as ProgressionState;
        return typeof s.rev === 'number' && typeof s.key === 'string' ? s : undefined;
      } catch {
        return undefined;
      }
    },
    async write(model, expectedRev, next) {
      return (await redis.eval(CAS, 1, k(model, 'state'), String(expectedRev), JSON.stringify(next))) === 1;
    },
    async publish(model, key, epoch, stats, ttlMs) {
      const sk = statsKey(model, key, epoch);
      await redis.multi().hset(sk, replicaId, JSON.stringify(stats)).pexpire(sk, Math.round(ttlMs)).exec();
    },
    async collect(model, key, epoch) {
      const all = await redis.hgetall(statsKey(model, key, epoch));
      const out = new Map<string, VersionStats>();
      for (const raw of Object.values(all)) {
        let doc: Record<string, Partial<StatsJson>>;
        try {
          doc = JSON.parse(raw) as Record<string, Partial<StatsJson>>;
        } catch {
          continue;
        }
        for (const [version, j] of Object.entries(doc)) {
          const s = statsFromJson(j);
          const cur = out.get(version);
          out.set(version, cur ? mergeStats(cur, s) : s);
        }
      }
      return out;
    },
  };
}

/** A short stable hash (FNV-1a) of a config key, to keep Redis keys short. */
function hash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16);
}
