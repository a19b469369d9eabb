/**
 * Scheduling decision time as pools grow: the default profile (filters →
 * its weighted scorers → max-score) over 10, 100 and 1000 endpoints, each
 * with load, KV usage and a prefix index; requests share a system prompt
 * (held by a tenth of the pool) and carry a session key. Prints the time per
 * decision, per endpoint and per plugin, and the bytes a decision allocates
 * (its request and prompt hashes included; V8's sampling heap profiler, over
 * decisions run after the timed ones).
 *
 *   npm run bench:schedule [-- --iterations 20000 --sizes 10,100,1000 --json]
 *   npm run bench:schedule -- --sizes 100 --scorers least-request,kv-cache   (those scorers only)
 *   npm run bench:schedule -- --root ../other-checkout   (that checkout's scheduling code, this benchmark)
 *   npm run bench:schedule -- --cold   (every prompt a new prefix no pod holds: prefix-spread's path)
 */
import { Session } from 'node:inspector/promises';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type * as PrefixHash from '../common/prefix-hash.js';
import type * as Random from '../common/random.js';
import type * as Schema from '../router/config/schema.js';
import type * as Profile from '../router/scheduling/profile.js';
import type * as Registry from '../router/scheduling/registry.js';
import type * as Request from '../router/scheduling/request.js';
import type { EndpointView } from '../router/upstream/endpoints.js';
import type * as PrefixIndex from '../router/upstream/prefix-index.js';

const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: '20000' },
    sizes: { type: 'string', default: '10,100,1000' },
    json: { type: 'boolean', default: false },
    /** Only these scorers of the default profile (comma-separated types), to see what each costs. */
    scorers: { type: 'string' },
    /** Load the router code from this checkout instead (another commit, side by side). */
    root: { type: 'string', default: '.' },
    /** Every prompt starts with a prefix no pod holds (a new tenant), instead of the shared system prompt. */
    cold: { type: 'boolean', default: false },
    /** Decisions sampled for the bytes they allocate (0: not measured). */
    'alloc-decisions': { type: 'string', default: '2000' },
  },
});
const root = resolve(String(values.root));
const load = <T>(path: string): Promise<T> => import(pathToFileURL(resolve(root, path)).href) as Promise<T>;
const { canonicalPrompt, prefixBlockHashes } = await load<typeof PrefixHash>('common/prefix-hash.ts');
const { createRandom } = await load<typeof Random>('common/random.ts');
const { DEFAULT_PROFILE } = await load<typeof Schema>('router/config/schema.ts');
const { createScheduler } = await load<typeof Profile>('router/scheduling/profile.ts');
const { createBuiltinRegistry } = await load<typeof Registry>('router/scheduling/registry.ts');
const { createSchedulingRequest } = await load<typeof Request>('router/scheduling/request.ts');
const { createPrefixIndex } = await load<typeof PrefixIndex>('router/upstream/prefix-index.ts');
const allocDecisions = Number(values['alloc-decisions']);
const iterations = Number(values.iterations);
const sizes = String(values.sizes).split(',').map(Number);
const only = values.scorers === undefined ? undefined : new Set(values.scorers.split(',').filter(Boolean));
const profile = only
  ? { ...DEFAULT_PROFILE, scorers: DEFAULT_PROFILE.scorers.filter((s) => only.has(s.type)) }
  : DEFAULT_PROFILE;

const SYSTEM = 'You are the assistant of the billing team; answer with care and cite the policy. '.repeat(16);
const systemBlocks = prefixBlockHashes(SYSTEM);

function pool(n: number, random: () => number): EndpointView[] {
  return Array.from({ length: n }, (_, i) => {
    const index = createPrefixIndex();
    const added = Array.from({ length: 500 }, () => Math.floor(random() * 2 ** 52));
    if (i % 10 === 0) added.push(...systemBlocks);
    index.apply({ reset: true, added, removed: [], blockChars: 64 });
    const queued = Math.floor(random() * 6);
    return {
      address: `10.0.${Math.floor(i / 250)}.${i % 250}:7001`,
      connected: true,
      model: 'm',
      version: 'v1',
      ready: random() > 0.02,
      draining: false,
      routerInFlight: Math.floor(random() * 20),
      routerInFlightAtReport: 10,
      report: {
        model: 'm',
        version: 'v1',
        ready: true,
        draining: false,
        inFlight: Math.floor(random() * 30),
        queued,
        engine: {
          numRequestsRunning: 20,
          numRequestsWaiting: Math.floor(random() * 3),
          kvCacheUsagePerc: random(),
        },
        capacity: { maxNumSeqs: 256, numGpuBlocks: 26_300, blockSize: 16, maxModelLen: 8192 },
        sequence: 1,
        reason: '',
        servedModelName: 'm',
        prefixIndex: null,
        inFlightAtScrape: 0,
        engineScrapeAgeMs: 0,
      },
      reason: '',
      breaker: random() < 0.05 ? 'open' : 'closed',
      // A few pods with recent failures (by index: the random sequence stays as it was).
      failureRatio: i % 20 === 1 ? 0.3 : 0,
      consecutiveFailures: i % 40 === 1 ? 1 : 0,
      // Some endpoints took a request a moment ago (the least-request scorer decays it).
      ...(i % 3 === 0 ? { recent: { count: 1 + random(), at: Date.now() } } : {}),
      prefixIndex: index,
    } satisfies EndpointView;
  });
}

/** One pool size's figures (what `--json` prints per size). */
export interface Row {
  endpoints: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
  nsPerEndpoint: number;
  /** Bytes allocated per decision, its request and prompt hashes included (undefined: not measured). */
  bytesPerDecision?: number;
  pluginsUs: Record<string, number>;
}

/**
 * Bytes allocated per call of `decide` over `n` calls: V8's sampling heap
 * profiler (a sample every 128 bytes on average, objects the collector has
 * freed since counted too), the sampled sizes summed.
 */
async function bytesPerCall(n: number, decide: (i: number) => void): Promise<number> {
  const session = new Session();
  session.connect();
  try {
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 128,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    for (let i = 0; i < n; i++) decide(i);
    const { profile } = await session.post('HeapProfiler.stopSampling');
    let total = 0;
    const stack = [profile.head];
    for (let node = stack.pop(); node; node = stack.pop()) {
      total += node.selfSize;
      stack.push(...node.children);
    }
    return total / n;
  } finally {
    session.disconnect();
  }
}

const rows: Row[] = [];
for (const n of sizes) {
  const random = createRandom(n);
  const scheduler = createScheduler('default', profile, createBuiltinRegistry(), {
    random,
    saturationQueueDepth: 8,
    maxEjectionPercent: 50,
  });
  const endpoints = pool(n, random);
  const times = new Float64Array(iterations);
  const plugins: Record<string, number> = {};
  const exclude = new Set<string>();
  const warmup = Math.min(2000, iterations);
  // A fresh request each time: its prompt is hashed inside the decision, as in the router.
  const request = (i: number) =>
    createSchedulingRequest(
      {
        model: 'm',
        prompt: values.cold
          ? `New tenant ${i}: ${SYSTEM}`
          : `${SYSTEM}Question ${i}: why was I charged twice?`,
        messages: [],
        routing: { version: '', sessionKey: `user-${i % 5000}`, priority: 'PRIORITY_UNSPECIFIED' },
      },
      `r${i}`,
      'v1',
      exclude,
    );
  for (let i = -warmup; i < iterations; i++) {
    const req = request(i);
    const t0 = performance.now();
    const d = scheduler.schedule(req, endpoints);
    const t1 = performance.now();
    if (i < 0) continue;
    times[i] = t1 - t0;
    for (const [k, v] of Object.entries(d.pluginMs)) plugins[k] = (plugins[k] ?? 0) + v;
    if (!d.picked) throw new Error('no pick');
  }
  const sorted = Array.from(times).sort((a, b) => a - b);
  const mean = sorted.reduce((s, x) => s + x, 0) / iterations;
  rows.push({
    endpoints: n,
    meanUs: mean * 1000,
    p50Us: (sorted[Math.floor(iterations * 0.5)] ?? 0) * 1000,
    p99Us: (sorted[Math.floor(iterations * 0.99)] ?? 0) * 1000,
    nsPerEndpoint: (mean * 1e6) / n,
    bytesPerDecision:
      allocDecisions > 0
        ? await bytesPerCall(allocDecisions, (i) => scheduler.schedule(request(iterations + i), endpoints))
        : undefined,
    pluginsUs: Object.fromEntries(Object.entries(plugins).map(([k, v]) => [k, (v / iterations) * 1000])),
  });
}
// The prompt's block hashes are part of each decision; say how much.
const hashT0 = performance.now();
for (let i = 0; i < 2000; i++) prefixBlockHashes(canonicalPrompt({ prompt: `${SYSTEM}${i}`, messages: [] }));
const hashUs = ((performance.now() - hashT0) / 2000) * 1000;

if (values.json) {
  process.stdout.write(`${JSON.stringify({ root, iterations, promptHashUs: hashUs, rows }, null, 2)}\n`);
} else {
  process.stdout.write(
    `scheduling decision time, default profile${values.cold ? ' (cold prompts: a new prefix each)' : ''}, ${iterations} decisions per size (prompt ${SYSTEM.length + 40} chars, hashing ≈ ${hashUs.toFixed(1)} µs of each)\n`,
  );
  process.stdout.write('endpoints   mean µs    p50 µs    p99 µs   ns/endpoint   KB/decision\n');
  for (const r of rows) {
    const kb = r.bytesPerDecision === undefined ? '–' : (r.bytesPerDecision / 1000).toFixed(1);
    process.stdout.write(
      `${String(r.endpoints).padStart(9)} ${r.meanUs.toFixed(1).padStart(9)} ${r.p50Us.toFixed(1).padStart(9)} ${r.p99Us.toFixed(1).padStart(9)} ${r.nsPerEndpoint.toFixed(0).padStart(13)} ${kb.padStart(13)}\n`,
    );
  }
  process.stdout.write('\nper plugin (mean µs):\n');
  const keys = Object.keys(rows[0]?.pluginsUs ?? {});
  process.stdout.write(
    `${'plugin'.padEnd(28)}${rows.map((r) => String(r.endpoints).padStart(10)).join('')}\n`,
  );
  for (const k of keys) {
    process.stdout.write(
      `${k.padEnd(28)}${rows.map((r) => (r.pluginsUs[k] ?? 0).toFixed(2).padStart(10)).join('')}\n`,
    );
  }
}
