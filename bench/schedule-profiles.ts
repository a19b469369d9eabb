/**
 * Tunes the default scheduling profile on the simulator: a shared-prefix
 * workload (many tenants, each with a long system prompt) against pods whose
 * KV cache holds only a few tenants' prefixes, through the router with
 * different profiles. Prints TTFT, the prompt-cache hit rate the engines
 * report, and how evenly pods were loaded. Cache-only routing piles tenants
 * onto pods until they queue; load-only routing thrashes every cache; the
 * default should get most of the hits without the queueing.
 *
 *   node --import tsx bench/schedule-profiles.ts [--requests 600] [--concurrency 48]
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createInferenceClient } from '../client/index.js';
import { silentLogger } from '../common/log.js';
import { createRandom } from '../common/random.js';
import { validateRouterConfig } from '../router/config/load.js';
import { DEFAULT_PROFILE, type ProfileConfig } from '../router/config/schema.js';
import { startRouter } from '../router/server.js';
import { startSidecar } from '../sidecar/server.js';
import { createSimServer } from '../sim/server.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '600' },
    concurrency: { type: 'string', default: '48' },
    pods: { type: 'string', default: '4' },
    tenants: { type: 'string', default: '48' },
    'time-scale': { type: 'string', default: '1' },
    /** Tenant popularity: tenant = floor(tenants × u^skew); 1 is uniform, larger favours low tenants. */
    skew: { type: 'string', default: '1' },
    /** KV cache of each pod, in 16-token blocks (at least 512: one 8192-token request). */
    'kv-blocks': { type: 'string', default: '600' },
    /** `admission.saturation_queue_depth` of the router (the `not-saturated` filter's cut). */
    saturation: { type: 'string', default: '8' },
    /** Profiles to run (comma-separated names); all by default. */
    only: { type: 'string', default: '' },
  },
});
const MODEL = 'llama-3-8b-chat';
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const podCount = Number(values.pods);
const tenants = Number(values.tenants);

const PROFILES: Record<string, ProfileConfig> = {
  default: DEFAULT_PROFILE,
  'prefix-only': { filters: ['ready'], scorers: [{ type: 'prefix-cache', weight: 1 }], picker: 'max-score' },
  'no-saturation-filter': {
    ...DEFAULT_PROFILE,
    filters: ['ready', 'not-draining', 'circuit-closed'],
  },
  'least-request': {
    filters: ['ready'],
    scorers: [{ type: 'least-request', weight: 1 }],
    picker: 'max-score',
  },
  // The first default: cache weighed above load.
  'cache-heavy': {
    ...DEFAULT_PROFILE,
    scorers: [
      { type: 'prefix-cache', weight: 3 },
      { type: 'session-affinity', weight: 2 },
      { type: 'least-request', weight: 1 },
      { type: 'queue-depth', weight: 1 },
      { type: 'kv-cache', weight: 1 },
    ],
  },
};

const words =
  'policy invoice refund shipment account customer order warranty billing address payment credit'.split(' ');
function systemPrompt(tenant: number, random: () => number): string {
  let s = `Tenant ${tenant} assistant. Follow the house rules below exactly. `;
  while (s.length < 4000) s += `${words[Math.floor(random() * words.length)]} `;
  return s;
}

async function runProfile(name: string, profile: ProfileConfig, print = true) {
  const pods = [];
  for (let i = 0; i < podCount; i++) {
    // Room for the running batch plus the prefixes of only a few tenants.
    const sim = createSimServer({
      servedModelName: MODEL,
      timeScale: Number(values['time-scale']),
      maxNumSeqs: 16,
      numGpuBlocks: Number(values['kv-blocks']),
    });
    const bound = await sim.listen(0, '127.0.0.1');
    const sidecar = await startSidecar({
      engineUrl: bound.url,
      listen: '127.0.0.1:0',
      model: MODEL,
      version: 'v1',
      probeIntervalMs: 1000,
      logger: silentLogger,
      responseCache: false,
    });
    pods.push({ sim, sidecar });
  }
  const router = await startRouter({
    config: validateRouterConfig({
      listen: '127.0.0.1:0',
      discovery: { kind: 'static', endpoints: pods.map((p) => p.sidecar.address) },
      models: { [MODEL]: { versions: { v1: { weight: 1 } }, profile: 'p' } },
      profiles: { p: profile },
      admission: { saturation_queue_depth: Number(values.saturation) },
    }),
    logger: silentLogger,
    admin: false,
    random: createRandom(1),
  });
  const client = createInferenceClient(router.address, { maxAttempts: 1 });
  await client.waitForReady(5_000);
  while (router.endpoints.snapshot().endpoints.filter((e) => e.ready).length < podCount) {
    await new Promise((r) => router.endpoints.events.once('change', r));
  }
  const random = createRandom(42);
  const prompts = Array.from({ length: tenants }, (_, t) => systemPrompt(t, random));
  const ttft: number[] = [];
  let prompt = 0;
  let cached = 0;
  let errors = 0;
  const errorKinds = new Map<string, number>();
  const perPod = new Map<string, number>();
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests) {
        const i = next++;
        const tenant = Math.min(tenants - 1, Math.floor(tenants * random() ** Number(values.skew)));
        const t0 = performance.now();
        let first = 0;
        try {
          const call = client.generateStream({
            model: MODEL,
            prompt: `${prompts[tenant]}\nQuestion ${i}: what should I do about order ${i}?`,
            sampling: { maxTokens: 32 },
          });
          for await (const chunk of call) {
            first ||= performance.now();
            if (chunk.usage) {
              prompt += chunk.usage.promptTokens;
              cached += chunk.usage.cachedTokens;
            }
          }
          const served = await call.servedBy;
          perPod.set(served.endpoint, (perPod.get(served.endpoint) ?? 0) + 1);
          ttft.push(first - t0);
        } catch (err) {
          errors++;
          errorKinds.set(
            (err as Error).message.slice(0, 80),
            (errorKinds.get((err as Error).message.slice(0, 80)) ?? 0) + 1,
          );
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  ttft.sort((a, b) => a - b);
  const q = (p: number) => ttft[Math.min(ttft.length - 1, Math.floor(ttft.length * p))] ?? Number.NaN;
  const counts = [...perPod.values()];
  if (print)
    process.stdout.write(
      `${name.padEnd(36)} ${q(0.5).toFixed(0).padStart(7)} ${q(0.99).toFixed(0).padStart(7)} ${((100 * cached) / Math.max(1, prompt)).toFixed(1).padStart(8)} % ${String(Math.max(...counts)).padStart(6)}/${String(Math.min(...counts)).padEnd(5)} ${(requests / seconds).toFixed(1).padStart(7)} ${String(errors).padStart(6)}\n`,
    );
  for (const [k, n] of errorKinds) process.stdout.write(`    ${n} × ${k}\n`);
  client.close();
  await router.close(0);
  for (const p of pods) {
    await p.sidecar.close();
    await p.sim.close();
  }
}

process.stdout.write(
  `${requests} requests, ${concurrency} streams, ${podCount} pods (16 seqs, ${values['kv-blocks']} KV blocks each), ${tenants} tenants with ~1000-token system prompts\n`,
);
process.stdout.write(`${'profile'.padEnd(36)} TTFT p50    p99  cache hit   max/min pod    req/s errors\n`);
// A throwaway run first: JIT warm-up would otherwise count against whichever profile runs first.
await runProfile('warm-up', PROFILES['least-request'] as ProfileConfig, false);
const only = String(values.only).split(',').filter(Boolean);
for (const [name, profile] of Object.entries(PROFILES)) {
  if (only.length === 0 || only.includes(name)) await runProfile(name, profile);
}
