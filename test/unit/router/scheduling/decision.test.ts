/**
 * A profile's decisions against its definition, over a seeded sequence in
 * which the pool changes as the router's would, and the records decisions
 * keep for traces against the decisions that come after them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalPrompt, prefixBlockHashes } from '../../../../common/prefix-hash.js';
import { DEFAULT_PROFILE, type ProfileConfig } from '../../../../router/config/schema.js';
import { failurePenalty, preferHealthy } from '../../../../router/scheduling/health.js';
import { addRecent } from '../../../../router/scheduling/load.js';
import { createScheduler, HEALTH_STEP } from '../../../../router/scheduling/profile.js';
import { createBuiltinRegistry } from '../../../../router/scheduling/registry.js';
import { createSchedulingRequest } from '../../../../router/scheduling/request.js';
import type { PluginDeps, SchedulingRequest, Scorer } from '../../../../router/scheduling/types.js';
import type { EndpointView } from '../../../../router/upstream/endpoints.js';
import { endpointView, type FakeEndpoint, seeded } from '../../../helpers/endpoint-view.js';

const registry = createBuiltinRegistry();
const SYSTEMS = Array.from({ length: 6 }, (_, g) =>
  `Tenant ${g}: answer from the policy, with care and citations. `.repeat(6 + g),
);

/** A pool of `n` endpoints with random load, KV usage, failures and prefixes (seeded). */
function randomPool(n: number, random: () => number): EndpointView[] {
  let open = 0;
  return Array.from({ length: n }, (_, i) => {
    // Open breakers stay within the ejection cap: the filter's random choice among them is not what is compared.
    const isOpen = random() < 0.1 && open < Math.floor(n / 2);
    if (isOpen) open++;
    const prefix = SYSTEMS.flatMap((s, g) => ((g + i) % 4 === 0 ? prefixBlockHashes(s) : []));
    const f: FakeEndpoint = {
      address: `10.0.0.${i}:7001`,
      ready: random() > 0.05,
      draining: random() < 0.03,
      breaker: isOpen ? 'open' : 'closed',
      failureRatio: random() < 0.3 ? random() : 0,
      consecutiveFailures: random() < 0.1 ? 1 + Math.floor(random() * 2) : 0,
      routerInFlight: Math.floor(random() * 12),
      inFlight: Math.floor(random() * 20),
      queued: random() < 0.2 ? Math.floor(random() * 4) : 0,
      waiting: Math.floor(random() * 3),
      running: Math.floor(random() * 30),
      kv: random(),
      maxNumSeqs: random() < 0.5 ? 32 : 0,
      learnedKnee: random() < 0.3 ? 8 + Math.floor(random() * 24) : 0,
      prefix,
    };
    return endpointView(f);
  });
}

/** A request of the sequence: a tenant's prompt or a unique one, some with a session key, some retries. */
function randomRequest(i: number, pool: readonly EndpointView[], random: () => number): SchedulingRequest {
  const tenant = Math.floor(random() * SYSTEMS.length);
  const prompt = random() < 0.8 ? `${SYSTEMS[tenant]}Question ${i}?` : `Unique prompt ${i}. `.repeat(12);
  const sessionKey = random() < 0.5 ? `user-${Math.floor(random() * 20)}` : '';
  const exclude = new Set<string>();
  if (random() < 0.15) exclude.add((pool[Math.floor(random() * pool.length)] as EndpointView).address);
  return createSchedulingRequest(
    {
      model: 'm',
      prompt,
      messages: [],
      routing: { version: '', sessionKey, priority: 'PRIORITY_UNSPECIFIED' },
    },
    `r${i}`,
    'v1',
    exclude,
  );
}

/**
 * What a profile decides by definition: its filters in order (made afresh
 * for this one decision), the request's exclusions, the health step, the
 * weighted sum of every scorer's scores times 1 − the failure penalty, and
 * every candidate whose total is the highest (the picker breaks ties).
 * Scorers may keep state between decisions (`prefix-spread` remembers where
 * it sent new prefixes), so the reference's scorers are made once per
 * sequence and see the same decisions as the scheduler's.
 */
function reference(
  profile: ProfileConfig,
  d: PluginDeps,
  scorers: ReadonlyMap<string, Scorer>,
  req: SchedulingRequest,
  pool: readonly EndpointView[],
) {
  let candidates: readonly EndpointView[] = pool;
  const remaining: number[] = [];
  for (const type of profile.filters) {
    candidates = registry.filter(type, d).filter(req, candidates) as readonly EndpointView[];
    remaining.push(candidates.length);
  }
  candidates = preferHealthy(candidates.filter((e) => !req.exclude.has(e.address)));
  remaining.push(candidates.length);
  const scores = profile.scorers.map((s) =>
    candidates.length > 0 ? Array.from((scorers.get(s.type) as Scorer).score(req, candidates)) : [],
  );
  const totals = candidates.map((e, i) => {
    let t = 0;
    profile.scorers.forEach((s, k) => {
      t += s.weight * (scores[k]?.[i] as number);
    });
    const p = failurePenalty(e);
    return p > 0 ? t * (1 - p) : t;
  });
  const best = Math.max(...totals);
  return {
    remaining,
    candidates: candidates.map((e, i) => ({
      address: e.address,
      scores: Object.fromEntries(profile.scorers.map((s, k) => [s.type, scores[k]?.[i] as number])),
      penalty: failurePenalty(e),
      total: totals[i] as number,
    })),
    best: new Set(
      candidates.filter((_, i) => Math.abs((totals[i] as number) - best) <= 1e-9).map((e) => e.address),
    ),
  };
}

describe('scheduling decisions', () => {
  const profiles: Array<[string, ProfileConfig]> = [
    ['default', DEFAULT_PROFILE],
    [
      'default with not-saturated',
      { ...DEFAULT_PROFILE, filters: [...DEFAULT_PROFILE.filters, 'not-saturated'] },
    ],
  ];
  for (const [name, profile] of profiles) {
    it(`${name}: every decision of a seeded sequence is the profile's definition, whatever came before`, () => {
      const world = seeded(11);
      let t = 1_000_000;
      const d: PluginDeps = {
        random: seeded(3),
        saturationQueueDepth: 4,
        maxEjectionPercent: 50,
        now: () => t,
      };
      // One scheduler for the whole sequence, as a router keeps one per profile.
      const scheduler = createScheduler(name, profile, registry, d);
      const scorers = new Map(profile.scorers.map((s) => [s.type, registry.scorer(s.type, d)]));
      for (const size of [1, 2, 7, 40, 100]) {
        let pool = randomPool(size, world);
        for (let i = 0; i < 150; i++) {
          t += Math.floor(world() * 40);
          const req = randomRequest(i, pool, world);
          const want = reference(profile, d, scorers, req, pool);
          const got = scheduler.schedule(req, pool);
          assert.deepEqual(
            got.filtered.map((f) => f.remaining),
            want.remaining,
            `${size} endpoints, decision ${i}`,
          );
          assert.deepEqual(got.candidates(), want.candidates, `${size} endpoints, decision ${i}`);
          if (want.candidates.length === 0) assert.equal(got.picked, undefined);
          else assert.ok(want.best.has(got.picked?.address ?? ''), `${size} endpoints, decision ${i}`);
          // The router's next view: the pick has one more stream; some reports arrive, some streams end.
          pool = pool.map((e) => {
            if (e === got.picked)
              return { ...e, routerInFlight: e.routerInFlight + 1, recent: addRecent(e.recent, t) };
            if (world() < 0.03 && e.report)
              return {
                ...e,
                report: { ...e.report, inFlight: Math.floor(world() * 20) },
                routerInFlightAtReport: e.routerInFlight,
              };
            if (e.routerInFlight > 0 && world() < 0.1) return { ...e, routerInFlight: e.routerInFlight - 1 };
            return e;
          });
        }
      }
    });
  }

  it('a decision keeps its own record: later decisions of the same profile do not change it', () => {
    const world = seeded(5);
    const scheduler = createScheduler('default', DEFAULT_PROFILE, registry, {
      random: seeded(9),
      saturationQueueDepth: 4,
      maxEjectionPercent: 50,
    });
    const pool = randomPool(30, world);
    const first = scheduler.schedule(randomRequest(0, pool, world), pool);
    const recorded = JSON.stringify(first);
    const candidates = first.candidates();
    assert.ok(candidates.length > 1);
    // Other decisions over the same pool (loads now counting the picks) and over pools of other sizes.
    for (let i = 1; i < 200; i++) {
      const other = i % 3 === 0 ? randomPool(1 + (i % 50), world) : pool;
      scheduler.schedule(randomRequest(i, other, world), other);
    }
    assert.equal(JSON.stringify(first), recorded);
    assert.deepEqual(first.candidates(), candidates);
    // What a reader is handed is its own: changing it changes nothing kept.
    (candidates[0] as { total: number }).total = -1;
    assert.equal(
      JSON.parse(JSON.stringify(first)).candidates[0].total,
      JSON.parse(recorded).candidates[0].total,
    );
    assert.equal(first.filtered.at(-1)?.type, HEALTH_STEP);
  });

  it('a request hashes its prompt once per block size, as common/prefix-hash.ts defines it', () => {
    const prompt = `${SYSTEMS[2]}and a question`;
    const req = createSchedulingRequest(
      { model: 'm', prompt, messages: [], routing: null },
      'r',
      'v1',
      new Set(),
    );
    assert.equal(req.promptChars, prompt.length);
    assert.equal(req.sessionKey, '');
    assert.deepEqual(req.prefixHashes(64), prefixBlockHashes(prompt, 64));
    assert.deepEqual(req.prefixHashes(32), prefixBlockHashes(prompt, 32));
    assert.equal(req.prefixHashes(64), req.prefixHashes(64));
    assert.equal(req.prefixHashes(32), req.prefixHashes(32));
    const chat = { prompt: '', messages: [{ role: 'user', content: prompt }] };
    const chatReq = createSchedulingRequest(
      { model: 'm', ...chat, routing: { version: '', sessionKey: 'k', priority: 'PRIORITY_UNSPECIFIED' } },
      'r',
      'v1',
      new Set(),
    );
    assert.equal(chatReq.promptChars, canonicalPrompt(chat as never).length);
    assert.deepEqual(chatReq.prefixHashes(16), prefixBlockHashes(canonicalPrompt(chat as never), 16));
    assert.equal(chatReq.sessionKey, 'k');
  });
});
