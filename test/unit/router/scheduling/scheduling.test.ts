import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { silentLogger } from '../../../../common/log.js';
import { canonicalPrompt, prefixBlockHashes } from '../../../../common/prefix-hash.js';
import { validateRouterConfig } from '../../../../router/config/load.js';
import { DEFAULT_PROFILE, type ProfileConfig } from '../../../../router/config/schema.js';
import { AVOID_PENALTY, failurePenalty, preferHealthy } from '../../../../router/scheduling/health.js';
import { type LoadHistory, NO_HISTORY } from '../../../../router/scheduling/knee.js';
import { createScheduler } from '../../../../router/scheduling/profile.js';
import { createBuiltinRegistry, createPluginRegistry } from '../../../../router/scheduling/registry.js';
import { createSchedulingRequest } from '../../../../router/scheduling/request.js';
import type {
  PluginDeps,
  SchedulingEndpoint,
  SchedulingRequest,
} from '../../../../router/scheduling/types.js';
import { createBreakers } from '../../../../router/upstream/breakers.js';
import type { EndpointView } from '../../../../router/upstream/endpoints.js';
import { endpointView, type FakeEndpoint, seeded } from '../../../helpers/endpoint-view.js';

const deps = (over: Partial<PluginDeps> = {}): PluginDeps => ({
  random: seeded(7),
  saturationQueueDepth: 4,
  maxEjectionPercent: 50,
  ...over,
});
const registry = createBuiltinRegistry();
const views = (list: FakeEndpoint[]) => list.map(endpointView);
const request = (
  over: { prompt?: string; sessionKey?: string; exclude?: string[] } = {},
): SchedulingRequest =>
  createSchedulingRequest(
    {
      model: 'm',
      prompt: over.prompt ?? 'hello',
      messages: [],
      routing: { version: '', sessionKey: over.sessionKey ?? '', priority: 'PRIORITY_UNSPECIFIED' },
    },
    'req-1',
    'v1',
    new Set(over.exclude ?? []),
  );
const r9 = (x: number) => Math.round(x * 1e9) / 1e9;
const addresses = (list: readonly SchedulingEndpoint[]) => list.map((e) => e.address);

describe('scheduling plugins', () => {
  it('configs accept exactly the registered types: registering a scorer is all it takes', () => {
    const config = (scorer: string) => ({
      models: { m: { versions: { v1: { weight: 1 } }, profile: 'p' } },
      profiles: { p: { scorers: [{ type: 'least-request' }, { type: scorer }] } },
    });
    assert.throws(
      () => validateRouterConfig(config('idle-gpu')),
      /profiles\.p\.scorers\[1\]\.type: unknown scorer "idle-gpu" \(known: .*least-request/,
    );
    const r = createBuiltinRegistry();
    r.registerScorer('idle-gpu', () => ({ type: 'idle-gpu', score: (_q, e) => new Float64Array(e.length) }));
    const cfg = validateRouterConfig(config('idle-gpu'), '<test>', r);
    const s = createScheduler('p', cfg.profiles.p as ProfileConfig, r, deps());
    assert.equal(s.schedule(request(), views([{ address: 'a' }])).picked?.address, 'a');
  });

  it('rejects non-kebab-case names, duplicates and unknown types', () => {
    const r = createPluginRegistry();
    assert.throws(
      () => r.registerFilter('NotKebab', () => ({ type: 'x', filter: (_q, e) => e })),
      /kebab-case/,
    );
    r.registerFilter('mine', () => ({ type: 'mine', filter: (_q, e) => e }));
    assert.throws(() => r.registerFilter('mine', () => ({ type: 'mine', filter: (_q, e) => e })), /already/);
    assert.throws(() => r.scorer('nope', deps()), /unknown scorer "nope"/);
  });

  const filterCases: Array<{
    name: string;
    type: string;
    pool: FakeEndpoint[];
    want: string[];
    d?: Partial<PluginDeps>;
  }> = [
    {
      name: 'ready drops not-ready',
      type: 'ready',
      pool: [{ address: 'a' }, { address: 'b', ready: false }],
      want: ['a'],
    },
    {
      name: 'not-draining drops draining',
      type: 'not-draining',
      pool: [{ address: 'a', draining: true }, { address: 'b' }],
      want: ['b'],
    },
    {
      name: 'circuit-closed drops open breakers, keeps half-open (probe)',
      type: 'circuit-closed',
      pool: [
        { address: 'a', breaker: 'open' },
        { address: 'b', breaker: 'half-open' },
        { address: 'c' },
        { address: 'd' },
      ],
      want: ['b', 'c', 'd'],
    },
    {
      name: 'circuit-closed never ejects more than the cap (1 of 2 at 50%)',
      type: 'circuit-closed',
      pool: [
        { address: 'a', breaker: 'open' },
        { address: 'b', breaker: 'open' },
      ],
      want: ['one of a, b'],
    },
    {
      name: 'circuit-closed keeps the only endpoint even when open',
      type: 'circuit-closed',
      pool: [{ address: 'a', breaker: 'open' }],
      want: ['a'],
    },
    {
      name: 'circuit-closed with a 100% cap ejects all',
      type: 'circuit-closed',
      pool: [
        { address: 'a', breaker: 'open' },
        { address: 'b', breaker: 'open' },
      ],
      want: [],
      d: { maxEjectionPercent: 100 },
    },
    {
      name: 'not-saturated drops pods whose queue reached the depth, not one whose scrape caught a passing wait',
      type: 'not-saturated',
      pool: [
        { address: 'a', queued: 4, inFlight: 8, maxNumSeqs: 8 },
        { address: 'b', waiting: 5, running: 3 },
        { address: 'c', waiting: 5, running: 3, queueingMs: 1_200 },
      ],
      want: ['b'],
    },
    {
      name: 'not-saturated counts this router’s excess over capacity as queue',
      type: 'not-saturated',
      pool: [{ address: 'a', routerInFlight: 14, maxNumSeqs: 10 }, { address: 'b' }],
      want: ['b'],
    },
    {
      name: 'not-saturated counts streams this router opened since the last report as queued',
      type: 'not-saturated',
      // Both pods are full (4 of 4 in flight); a has 1 queued plus 3 opened since, b 3 queued minus 2 ended.
      pool: [
        { address: 'a', maxNumSeqs: 4, inFlight: 4, queued: 1, routerInFlight: 5, routerInFlightAtReport: 2 },
        { address: 'b', maxNumSeqs: 4, inFlight: 4, queued: 3, routerInFlight: 1, routerInFlightAtReport: 3 },
      ],
      want: ['b'],
    },
    {
      name: 'not-saturated: streams opened since the report fill free places before they count as queued',
      type: 'not-saturated',
      pool: [
        { address: 'a', maxNumSeqs: 16, inFlight: 2, routerInFlight: 12, routerInFlightAtReport: 2 },
        { address: 'b', maxNumSeqs: 16, inFlight: 2, routerInFlight: 30, routerInFlightAtReport: 2 },
      ],
      want: ['a'],
    },
    {
      name: 'not-saturated keeps all when all are saturated',
      type: 'not-saturated',
      pool: [
        { address: 'a', queued: 9 },
        { address: 'b', waiting: 5, kv: 0.99 },
      ],
      want: ['a', 'b'],
    },
  ];
  for (const c of filterCases) {
    it(`filter: ${c.name}`, () => {
      const out = addresses(registry.filter(c.type, deps(c.d)).filter(request(), views(c.pool)));
      if (c.want[0] === 'one of a, b') {
        assert.equal(out.length, 1);
        assert.ok(out[0] === 'a' || out[0] === 'b');
      } else {
        assert.deepEqual(out, c.want);
      }
    });
  }

  const system = 'You are a helpful assistant for the billing team. '.repeat(8); // 400 chars: 6 blocks of 64
  const prompt = `${system}How do refunds work?`;
  const hashes = prefixBlockHashes(canonicalPrompt({ prompt, messages: [] }));
  const scorerCases: Array<{
    name: string;
    type: string;
    pool: FakeEndpoint[];
    want: number[];
    req?: Parameters<typeof request>[0];
  }> = [
    {
      name: 'least-request: headroom below the knee (router streams, sidecar in flight and queued)',
      type: 'least-request',
      pool: [
        { address: 'a', routerInFlight: 4, maxNumSeqs: 8 },
        { address: 'b', inFlight: 4, maxNumSeqs: 8 },
        { address: 'c', maxNumSeqs: 8 },
        { address: 'd', routerInFlight: 20, maxNumSeqs: 8 },
      ],
      // e^-utilization: 4 of a knee of 8, twice; idle; 20 of 8.
      want: [r9(Math.exp(-0.5)), r9(Math.exp(-0.5)), 1, r9(Math.exp(-2.5))],
    },
    {
      name: 'least-request: a sidecar queue means the pod is past its knee',
      type: 'least-request',
      pool: [
        { address: 'a', inFlight: 2, queued: 1, maxNumSeqs: 8 },
        { address: 'b', inFlight: 7, maxNumSeqs: 8 },
      ],
      // a: 1 + 1/8 past its knee; b: 7 of 8.
      want: [r9(Math.exp(-1.125)), r9(Math.exp(-7 / 8))],
    },
    {
      name: 'least-request: this router’s fresher count wins over a lagging report',
      type: 'least-request',
      pool: [
        { address: 'a', routerInFlight: 8, inFlight: 0 },
        { address: 'b', inFlight: 8 },
      ],
      want: [r9(Math.exp(-0.25)), r9(Math.exp(-0.25))],
    },
    {
      name: 'queue-depth: what waits (sidecar queue, engine waiting, this router past the knee) against the knee',
      type: 'queue-depth',
      pool: [
        { address: 'a', queued: 4, inFlight: 8, maxNumSeqs: 8 },
        { address: 'b', waiting: 2, running: 8, maxNumSeqs: 8 },
        { address: 'c' },
        { address: 'd', routerInFlight: 20, maxNumSeqs: 8 },
      ],
      want: [0.5, 0.75, 1, 0],
    },
    {
      name: 'kv-cache: room before the cache is full, alike below half full',
      type: 'kv-cache',
      pool: [
        { address: 'a', kv: 0.25 },
        { address: 'b', kv: 1 },
        { address: 'c', kv: 0.8 },
        { address: 'd', kv: 0.4 },
      ],
      want: [1, 0, 0.25, 1],
    },
    {
      name: 'prefix-cache: share of the prompt blocks held as a prefix',
      type: 'prefix-cache',
      pool: [
        { address: 'all', prefix: hashes },
        { address: 'half', prefix: hashes.slice(0, 3) },
        // Later blocks without the first do not form a prefix.
        { address: 'gap', prefix: hashes.slice(1) },
        { address: 'none' },
      ],
      req: { prompt },
      want: [1, 0.5, 0, 0],
    },
    {
      name: 'prefix-cache: hashes at the endpoint’s own block size',
      type: 'prefix-cache',
      pool: [
        { address: 'a', prefix: prefixBlockHashes(prompt, 128), blockChars: 128 },
        { address: 'b', prefix: hashes },
      ],
      req: { prompt },
      want: [1, 1],
    },
    {
      name: 'prefix-cache: a prompt shorter than a block scores 0',
      type: 'prefix-cache',
      pool: [{ address: 'a', prefix: hashes }],
      req: { prompt: 'short' },
      want: [0],
    },
    {
      name: 'prefix-spread: a prompt no pod holds goes where fewer prefixes live',
      type: 'prefix-spread',
      pool: [
        { address: 'full', prefix: prefixBlockHashes('another tenant’s system prompt '.repeat(26)) },
        { address: 'half', prefix: prefixBlockHashes('a third tenant’s system prompt '.repeat(13)) },
        { address: 'empty' },
      ],
      req: { prompt },
      want: [0, 0.5, 1],
    },
    {
      name: 'prefix-spread: once a pod holds part of the prompt, prefix-cache decides and it says nothing',
      type: 'prefix-spread',
      pool: [{ address: 'holder', prefix: hashes.slice(0, 1) }, { address: 'empty' }],
      req: { prompt },
      want: [0, 0],
    },
    {
      name: 'session-affinity: no key, no preference',
      type: 'session-affinity',
      pool: [{ address: 'a' }, { address: 'b' }],
      want: [0, 0],
    },
  ];
  for (const c of scorerCases) {
    it(`scorer: ${c.name}`, () => {
      const scores = registry.scorer(c.type, deps()).score(request(c.req), views(c.pool));
      assert.deepEqual(Array.from(scores, r9), c.want);
    });
  }

  it('scorer: session-affinity gives a key one pod, stable, and moves only that key’s pod when it leaves', () => {
    const scorer = registry.scorer('session-affinity', deps());
    const pool = views(Array.from({ length: 8 }, (_, i) => ({ address: `10.0.0.${i}:7001` })));
    const owner = (list: readonly EndpointView[], key: string) => {
      const s = Array.from(scorer.score(request({ sessionKey: key }), list));
      assert.equal(s.filter((x) => x === 1).length, 1);
      assert.equal(s.filter((x) => x === 0).length, list.length - 1);
      return list[s.indexOf(1)]?.address;
    };
    const keys = Array.from({ length: 400 }, (_, i) => `user-${i}`);
    const before = keys.map((k) => owner(pool, k));
    assert.deepEqual(
      keys.map((k) => owner(pool, k)),
      before,
      'stable',
    );
    const counts = new Map<string, number>();
    for (const a of before) counts.set(a ?? '', (counts.get(a ?? '') ?? 0) + 1);
    assert.equal(counts.size, 8, 'keys spread over every pod');
    const gone = pool[3]?.address;
    const after = keys.map((k) =>
      owner(
        pool.filter((e) => e.address !== gone),
        k,
      ),
    );
    for (let i = 0; i < keys.length; i++) {
      if (before[i] !== gone) assert.equal(after[i], before[i], 'keys of other pods stay');
    }
  });

  it('scorer: round-robin rotates its preference', () => {
    const scorer = registry.scorer('round-robin', deps());
    const pool = views([{ address: 'a' }, { address: 'b' }, { address: 'c' }]);
    const firsts = [0, 1, 2, 3].map(() => Array.from(scorer.score(request(), pool)).indexOf(1));
    assert.deepEqual(firsts, [0, 1, 2, 0]);
  });

  it('picker: max-score takes the best and breaks ties at random', () => {
    const picker = registry.picker('max-score', deps({ random: seeded(3) }));
    const pool = views([{ address: 'a' }, { address: 'b' }, { address: 'c' }]);
    assert.equal(picker.pick(pool, [0.2, 0.9, 0.5]), 1);
    const seen = new Map<number, number>();
    for (let i = 0; i < 3000; i++) {
      const k = picker.pick(pool, [1, 0.5, 1]);
      seen.set(k, (seen.get(k) ?? 0) + 1);
    }
    assert.equal(seen.get(1), undefined, 'a lower score is never picked');
    assert.ok(
      Math.abs((seen.get(0) ?? 0) - 1500) < 150 && Math.abs((seen.get(2) ?? 0) - 1500) < 150,
      JSON.stringify([...seen]),
    );
    assert.equal(picker.pick([], []), -1);
  });

  it('picker: p2c picks the better of two random candidates', () => {
    const picker = registry.picker('p2c', deps({ random: seeded(11) }));
    const pool = views([{ address: 'a' }, { address: 'b' }, { address: 'c' }, { address: 'd' }]);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[picker.pick(pool, [0.1, 0.2, 0.3, 0.4])]!++;
    // The worst wins no pairing; the best wins every pairing it is in (half of them).
    assert.equal(counts[0], 0);
    assert.ok(counts[3]! > 1800 && counts[3]! < 2200, String(counts));
    assert.equal(picker.pick(pool.slice(0, 1), [0]), 0);
  });

  it('picker: random is uniform and round-robin cycles', () => {
    const random = registry.picker('random', deps({ random: seeded(5) }));
    const pool = views([{ address: 'a' }, { address: 'b' }]);
    let zero = 0;
    for (let i = 0; i < 2000; i++) if (random.pick(pool, [1, 0]) === 0) zero++;
    assert.ok(Math.abs(zero - 1000) < 120, String(zero));
    const rr = registry.picker('round-robin', deps());
    assert.deepEqual(
      [0, 1, 2, 3].map(() => rr.pick(pool, [0, 0])),
      [0, 1, 0, 1],
    );
  });
});

describe('scheduling profiles', () => {
  const make = (profile = DEFAULT_PROFILE, d = deps()) => createScheduler('default', profile, registry, d);

  it('runs filters, weighted scorers and the picker, and keeps the decision for tracing', () => {
    const s = make();
    const pool = views([
      { address: 'busy', routerInFlight: 3 },
      { address: 'idle' },
      { address: 'down', ready: false },
    ]);
    const d = s.schedule(request(), pool);
    assert.equal(d.picked?.address, 'idle');
    assert.equal(d.poolSize, 3);
    assert.deepEqual(
      d.filtered.map((f) => [f.type, f.remaining]),
      [
        ['ready', 2],
        ['not-draining', 2],
        ['circuit-closed', 2],
        ['below-limit', 2],
        ['prefer-healthy', 2],
      ],
    );
    const c = d.candidates();
    assert.deepEqual(
      c.map((x) => x.address),
      ['busy', 'idle'],
    );
    assert.equal(c[1]?.scores['least-request'], 1);
    // 3 streams against the default knee of 32 requests (nothing learned, KV nearly empty).
    assert.equal(c[0]?.scores['least-request'], Math.exp(-3 / 32));
    assert.ok((c[1]?.total ?? 0) > (c[0]?.total ?? 0));
    for (const key of ['filter/ready', 'scorer/prefix-cache', 'picker/max-score']) {
      assert.equal(typeof d.pluginMs[key], 'number', key);
    }
    assert.ok(d.totalMs >= 0);
    const json = JSON.parse(JSON.stringify(d)) as { picked: string; candidates: unknown[] };
    assert.equal(json.picked, 'idle');
    assert.equal(json.candidates.length, 2);
  });

  it('never picks an endpoint the request already tried', () => {
    const s = make();
    const pool = views([{ address: 'a' }, { address: 'b' }]);
    for (let i = 0; i < 50; i++)
      assert.equal(s.schedule(request({ exclude: ['a'] }), pool).picked?.address, 'b');
    assert.equal(s.schedule(request({ exclude: ['a', 'b'] }), pool).picked, undefined);
  });

  it('default profile: a new prefix goes where fewer prefixes live, but not onto a pod still prefilling the last new one', () => {
    let t = 0;
    const s = make(DEFAULT_PROFILE, deps({ now: () => t }));
    const tenant = (n: number) =>
      `Tenant ${n}: a system prompt, thousands of tokens in a real deployment. `.repeat(12);
    const held = (...tenants: number[]) => tenants.flatMap((n) => prefixBlockHashes(tenant(n)));
    const ask = (n: number) => request({ prompt: `${tenant(n)}What is new?` });
    // Idle pods, one holding 3 tenants' prefixes, the other 5.
    let pool = views([
      { address: 'lighter', prefix: held(1, 2, 3) },
      { address: 'heavier', prefix: held(4, 5, 6, 7, 11) },
    ]);
    assert.equal(s.schedule(ask(8), pool).picked?.address, 'lighter');
    // 10 ms on, the lighter pod's index holds tenant 8 (its sidecar reported
    // it) and its engine is prefilling it: a warm request arriving there now
    // waits for both prefills, so the next new tenant goes to the other pod.
    t = 10;
    pool = views([
      { address: 'lighter', prefix: held(1, 2, 3, 8) },
      { address: 'heavier', prefix: held(4, 5, 6, 7, 11) },
    ]);
    assert.equal(s.schedule(ask(9), pool).picked?.address, 'heavier');
    // Long after, both prefills are done: fewer prefixes decide again.
    t = 2_000;
    pool = views([
      { address: 'lighter', prefix: held(1, 2, 3, 8) },
      { address: 'heavier', prefix: held(4, 5, 6, 7, 11, 9) },
    ]);
    assert.equal(s.schedule(ask(10), pool).picked?.address, 'lighter');
  });

  const system = 'System prompt shared by a whole workload, long enough to span blocks. '.repeat(10);
  const hashes = prefixBlockHashes(`${system}question`);
  it('default profile: a prefix holder wins while it has room...', () => {
    const s = make();
    const pool = views([{ address: 'cold' }, { address: 'warm', prefix: hashes, routerInFlight: 2 }]);
    assert.equal(s.schedule(request({ prompt: `${system}question` }), pool).picked?.address, 'warm');
  });

  it('...but affinity never piles onto a saturated pod', () => {
    const s = make();
    const pool = views([{ address: 'cold' }, { address: 'warm', prefix: hashes, queued: 4 }]);
    assert.equal(s.schedule(request({ prompt: `${system}question` }), pool).picked?.address, 'cold');
  });

  it('default profile: a session keeps its pod while healthy and moves when it is not', () => {
    const s = make();
    const healthy = views(Array.from({ length: 5 }, (_, i) => ({ address: `p${i}` })));
    const home = s.schedule(request({ sessionKey: 'alice' }), healthy).picked?.address;
    for (let i = 0; i < 20; i++)
      assert.equal(s.schedule(request({ sessionKey: 'alice' }), healthy).picked?.address, home);
    const sick = views(Array.from({ length: 5 }, (_, i) => ({ address: `p${i}`, ready: `p${i}` !== home })));
    assert.notEqual(s.schedule(request({ sessionKey: 'alice' }), sick).picked?.address, home);
  });

  it('reports no pick when everything is filtered out', () => {
    const d = make().schedule(request(), views([{ address: 'a', ready: false }]));
    assert.equal(d.picked, undefined);
    assert.deepEqual(d.candidates(), []);
  });

  it('marks whether breakers are filtered (forced tries of kept open endpoints)', () => {
    assert.equal(make().filtersBreakers, true);
    assert.equal(make({ ...DEFAULT_PROFILE, filters: ['ready'] }).filtersBreakers, false);
  });
});

describe('recent failures make an endpoint worse', () => {
  // `routerInFlight: 1`: the penalty applies while the endpoint has an attempt in flight.
  const penaltyCases: Array<{ name: string; e: Partial<FakeEndpoint>; want: number }> = [
    { name: 'no failures', e: { routerInFlight: 1 }, want: 0 },
    { name: 'a failure share alone', e: { routerInFlight: 1, failureRatio: 0.2 }, want: 0.2 },
    {
      name: 'one fault in a row outweighs a share diluted by a clean history',
      e: { routerInFlight: 1, failureRatio: 0.01, consecutiveFailures: 1 },
      want: 0.5,
    },
    {
      name: 'three in a row',
      e: { routerInFlight: 1, failureRatio: 0.03, consecutiveFailures: 3 },
      want: 0.75,
    },
    {
      name: 'a share above the streak term',
      e: { routerInFlight: 1, failureRatio: 0.9, consecutiveFailures: 1 },
      want: 0.9,
    },
    {
      name: 'closed with nothing in flight: none (one attempt at a time)',
      e: { failureRatio: 1, consecutiveFailures: 4 },
      want: 0,
    },
    {
      name: 'open (kept by the ejection cap), even with nothing in flight',
      e: { breaker: 'open', failureRatio: 1, consecutiveFailures: 6 },
      want: 1,
    },
    {
      name: 'half-open: none, the probe must go',
      e: { breaker: 'half-open', routerInFlight: 1, failureRatio: 1, consecutiveFailures: 5 },
      want: 0,
    },
  ];
  for (const c of penaltyCases) {
    it(`penalty: ${c.name}`, () => {
      assert.equal(failurePenalty(endpointView({ address: 'a', ...c.e })), c.want);
    });
  }

  const preferCases: Array<{ name: string; pool: FakeEndpoint[]; want: string[] }> = [
    {
      name: 'drops endpoints at or above the avoid penalty while a healthier one remains',
      pool: [
        { address: 'a', routerInFlight: 1, consecutiveFailures: 1 },
        { address: 'b', routerInFlight: 1, failureRatio: 0.3 },
        { address: 'c', routerInFlight: 1, failureRatio: AVOID_PENALTY },
        { address: 'd', breaker: 'open', failureRatio: 1 },
        { address: 'e' },
      ],
      want: ['b', 'e'],
    },
    {
      name: 'keeps every endpoint when all fail (the least bad still gets tried)',
      pool: [
        { address: 'a', routerInFlight: 1, consecutiveFailures: 1 },
        { address: 'b', breaker: 'open', failureRatio: 1 },
      ],
      want: ['a', 'b'],
    },
    {
      name: 'keeps a failing endpoint with nothing in flight, and a half-open one for its probe',
      pool: [
        { address: 'a', failureRatio: 1, consecutiveFailures: 3 },
        { address: 'b', breaker: 'half-open', routerInFlight: 2, failureRatio: 1 },
        { address: 'c' },
      ],
      want: ['a', 'b', 'c'],
    },
  ];
  for (const c of preferCases) {
    it(`prefer-healthy: ${c.name}`, () => {
      assert.deepEqual(addresses(preferHealthy(views(c.pool))), c.want);
    });
  }

  it('prefer-healthy returns the same array when it drops nothing (no copy per decision)', () => {
    const pool = views([{ address: 'a' }, { address: 'b', routerInFlight: 1, failureRatio: 0.2 }]);
    assert.equal(preferHealthy(pool), pool);
  });

  // An endpoint answering 503 at once has almost no load: load scorers alone rank it best.
  const failing = (routerInFlight: number): FakeEndpoint => ({
    address: 'failing',
    routerInFlight,
    consecutiveFailures: 1,
    failureRatio: 0.02,
  });
  const busy = (address: string): FakeEndpoint => ({ address, routerInFlight: 6, inFlight: 6, kv: 0.1 });
  const everyProfile: Array<{ name: string; profile: ProfileConfig }> = [
    { name: 'default', profile: DEFAULT_PROFILE },
    ...registry.types().pickers.map((picker) => ({
      name: `least-request + ${picker}`,
      profile: { ...DEFAULT_PROFILE, scorers: [{ type: 'least-request' as const, weight: 1 }], picker },
    })),
    { name: 'no scorers', profile: { ...DEFAULT_PROFILE, scorers: [] } },
  ];
  for (const { name, profile } of everyProfile) {
    it(`${name}: a failing endpoint with an attempt in flight gets no other while a healthy one is left`, () => {
      const s = createScheduler(name, profile, registry, deps({ random: seeded(1) }));
      const pool = views([failing(1), busy('b'), busy('c')]);
      const picked = new Set<string>();
      for (let i = 0; i < 200; i++) picked.add(s.schedule(request(), pool).picked?.address ?? '');
      assert.equal(picked.has('failing'), false, [...picked].join());
      // ...but a request that already tried the healthy ones still gets it.
      assert.equal(s.schedule(request({ exclude: ['b', 'c'] }), pool).picked?.address, 'failing');
    });
  }

  it('a failing endpoint with nothing in flight may take the next attempt (so its breaker can judge it)', () => {
    const s = createScheduler('default', DEFAULT_PROFILE, registry, deps());
    assert.equal(s.schedule(request(), views([failing(0), busy('b'), busy('c')])).picked?.address, 'failing');
  });

  it('a one-pod pool whose breaker is open and whose attempts fail still picks its pod (to fail fast with its error)', () => {
    for (const profile of everyProfile) {
      const s = createScheduler(profile.name, profile.profile, registry, deps());
      const d = s.schedule(
        request(),
        views([{ address: 'only', breaker: 'open', failureRatio: 1, consecutiveFailures: 7 }]),
      );
      assert.equal(d.picked?.address, 'only', profile.name);
    }
  });

  it('an open endpoint kept by the ejection cap is not tried first while a healthy one is left', () => {
    const s = createScheduler('default', DEFAULT_PROFILE, registry, deps());
    const pool = views([
      { address: 'open-a', breaker: 'open', failureRatio: 1, consecutiveFailures: 5 },
      { address: 'open-b', breaker: 'open', failureRatio: 1, consecutiveFailures: 5 },
      busy('fine'),
    ]);
    for (let i = 0; i < 20; i++) assert.equal(s.schedule(request(), pool).picked?.address, 'fine');
  });

  const rankCases: Array<{ name: string; pool: FakeEndpoint[]; want: string }> = [
    {
      name: 'a small failure share ranks an endpoint below an equally loaded healthy one',
      pool: [
        { address: 'flaky', routerInFlight: 2, failureRatio: 0.2 },
        { address: 'fine', routerInFlight: 3 },
      ],
      want: 'fine',
    },
    {
      name: 'a small failure share does not outweigh a cached prefix',
      pool: [
        {
          address: 'flaky-warm',
          routerInFlight: 1,
          failureRatio: 0.2,
          prefix: prefixBlockHashes(`${'x'.repeat(640)}q`),
        },
        { address: 'fine-cold' },
      ],
      want: 'flaky-warm',
    },
  ];
  for (const c of rankCases) {
    it(`default profile: ${c.name}`, () => {
      const s = createScheduler('default', DEFAULT_PROFILE, registry, deps());
      const d = s.schedule(request({ prompt: `${'x'.repeat(640)}q` }), views(c.pool));
      assert.equal(d.picked?.address, c.want);
      const flaky = d.candidates().find((x) => x.address.startsWith('flaky'));
      assert.equal(flaky?.penalty, 0.2, 'the trace shows the penalty');
    });
  }

  it('with real breakers: a pod that turns bad mid-run takes one attempt at a time and is ejected after five', () => {
    const breakers = createBreakers({
      config: {
        error_threshold_percentage: 50,
        volume_threshold: 5,
        consecutive_failures: 5,
        reset_timeout_ms: 10_000,
        window_ms: 5_000,
        max_ejection_percent: 50,
      },
      logger: silentLogger,
      rotateBucketController: new EventEmitter(),
    });
    try {
      const s = createScheduler('default', DEFAULT_PROFILE, registry, deps());
      const load: Record<string, number> = { bad: 0, b: 4, c: 4 };
      const pool = () =>
        views(
          ['bad', 'b', 'c'].map((address) => ({
            address,
            routerInFlight: load[address],
            breaker: breakers.state(address),
            ...breakers.health(address),
          })),
        );
      const history = (address: string) => {
        for (let i = 0; i < 100; i++) breakers.acquire(address).settle('success');
      };
      for (const a of ['bad', 'b', 'c']) history(a);
      // From now on `bad` answers 503 at once; each request retries elsewhere.
      let badAttempts = 0;
      for (let r = 0; r < 50; r++) {
        const tried = new Set<string>();
        for (;;) {
          const picked = s.schedule(request({ exclude: [...tried] }), pool()).picked?.address;
          assert.ok(picked, 'every request finds a healthy pod');
          tried.add(picked);
          const permit = breakers.acquire(picked, { force: breakers.state(picked) === 'open' });
          if (picked !== 'bad') {
            permit.settle('success');
            break;
          }
          badAttempts++;
          // Once it has failed, no other request goes there while an attempt is in flight.
          load.bad = 1;
          if (badAttempts > 1) assert.notEqual(s.schedule(request(), pool()).picked?.address, 'bad');
          load.bad = 0;
          permit.settle('endpoint-fault');
        }
      }
      assert.equal(breakers.state('bad'), 'open');
      assert.equal(badAttempts, 5, 'five failures in a row, then ejected');
    } finally {
      breakers.close();
    }
  });
});

describe('a pod at its limit is not picked while another has a free slot', () => {
  /** A pod whose engine showed a concurrency limit of 8 (a plateau while requests waited), not published. */
  const limited = (f: FakeEndpoint, limit = 8): SchedulingEndpoint => {
    const view = endpointView({ maxNumSeqs: 0, ...f });
    return {
      ...view,
      history: { ...NO_HISTORY, ...view.history, learnedKnee: limit, limit, limitSeenAt: 0, atLimit: true },
    };
  };
  // `full` runs its 8. `room` runs 7 of its 8, but its engine scrape (up to a
  // probe interval old) caught a request between two steps, waiting.
  const full = () =>
    limited({ address: 'full', routerInFlight: 8, inFlight: 8, running: 8, inFlightAtScrape: 8 });
  const room = (f: Partial<FakeEndpoint> = {}) =>
    limited({
      address: 'room',
      routerInFlight: 7,
      inFlight: 7,
      running: 7,
      waiting: 1,
      inFlightAtScrape: 8,
      ...f,
    });
  const schedule = (pool: SchedulingEndpoint[], req = request()) =>
    createScheduler('default', DEFAULT_PROFILE, registry, deps()).schedule(req, pool).picked?.address;

  it('the default profile takes the free slot, though queue-depth reads a waiting request there', () => {
    assert.equal(schedule([full(), room()]), 'room');
    assert.equal(schedule([room(), full()]), 'room');
  });

  const filter = (pool: SchedulingEndpoint[], req = request()) =>
    addresses(registry.filter('below-limit', deps()).filter(req, pool));

  it('a full pod holding the prompt’s prefix stays a candidate: the scorers weigh its cache against its load', () => {
    const prompt = 'You are a careful assistant. '.repeat(40);
    const warm = prefixBlockHashes(canonicalPrompt({ prompt, messages: [] }), 64);
    const fullWarm = limited({
      address: 'full',
      routerInFlight: 8,
      inFlight: 8,
      running: 8,
      inFlightAtScrape: 8,
      prefix: warm,
    });
    assert.deepEqual(filter([fullWarm, room()], request({ prompt })), ['full', 'room']);
    // Another prompt: its cache is no reason to queue there.
    assert.deepEqual(filter([fullWarm, room()]), ['room']);
  });

  it('below-limit drops pods at a published max_num_seqs or a limit the engine showed, only while one has room', () => {
    const published = (address: string, routerInFlight: number) =>
      endpointView({ address, maxNumSeqs: 8, routerInFlight });
    assert.deepEqual(filter([published('a', 8), published('b', 7)]), ['b']);
    assert.deepEqual(filter([published('a', 9), published('b', 8)]), ['a', 'b'], 'all full: scorers decide');
    assert.deepEqual(filter([full(), room()]), ['room']);
    // Past the probe interval a learned limit lets one more through (to find headroom): at 8 it has room.
    const probing = { ...full(), history: { ...(full().history as LoadHistory), atLimit: false } };
    assert.deepEqual(filter([probing, room()]), ['full', 'room']);
  });

  it('below-limit: a knee with no limit shown is no limit (it may have been prefill work)', () => {
    const knee = endpointView({ address: 'knee', maxNumSeqs: 0, learnedKnee: 4, routerInFlight: 12 });
    assert.deepEqual(filter([knee, room()]), ['knee', 'room']);
  });

  it('below-limit: room that the request may not use does not count (tried already, failing, or queueing anyway)', () => {
    assert.deepEqual(filter([full(), room()], request({ exclude: ['room'] })), ['full', 'room']);
    assert.deepEqual(filter([full(), room({ consecutiveFailures: 1 })]), ['full', 'room']);
    // Below its limit by this router's count, but its engine has queued for a second: no room either.
    assert.deepEqual(filter([full(), room({ queueingMs: 1_200 })]), ['full', 'room']);
    assert.deepEqual(filter([full(), room({ kv: 0.95 })]), ['full', 'room']);
    // The retry still finds a pod: the full one.
    assert.equal(schedule([full(), room()], request({ exclude: ['room'] })), 'full');
  });

  it('below-limit returns the same array when it drops nothing (no copy per decision)', () => {
    const pool = [room(), limited({ address: 'idle' })];
    assert.equal(registry.filter('below-limit', deps()).filter(request(), pool), pool);
  });
});
