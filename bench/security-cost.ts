/**
 * Cost of mTLS on the router → sidecar hop and of auth + rate limiting per
 * request: four routers over the same simulated engine — plaintext, mTLS to a
 * TLS sidecar, auth with Redis-shared rate limits, both — driven in
 * alternating rounds. Prints time-to-first-chunk p50/p99 of each over all
 * rounds, and each variant's p50 over plaintext's round by round: median
 * (min–max) of those ratios, the figure to quote on a shared machine.
 *
 *   node --import tsx bench/security-cost.ts [--rounds 4] [--requests 400] [--concurrency 8]
 */
import { parseArgs } from 'node:util';
import { createInferenceClient, type InferenceClient } from '../client/index.js';
import { silentLogger } from '../common/log.js';
import { hashApiKey } from '../router/auth/tenants.js';
import { validateRouterConfig } from '../router/config/load.js';
import { type Router, startRouter } from '../router/server.js';
import { startSidecar } from '../sidecar/server.js';
import { createSimServer } from '../sim/server.js';
import { createTestCa } from './test-ca.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '4' },
    requests: { type: 'string', default: '400' },
    concurrency: { type: 'string', default: '8' },
  },
});
const rounds = Number(values.rounds);
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const MODEL = 'llama-3-8b-chat';
const KEY = 'bench-key';

const ca = createTestCa('llmmesh-bench-ca');
const sidecarCert = ca.issue('sidecar', 'server');
const routerCert = ca.issue('router', 'client');

const sim = createSimServer({ servedModelName: MODEL, timeScale: 0 });
const { url } = await sim.listen(0, '127.0.0.1');
const common = {
  engineUrl: url,
  listen: '127.0.0.1:0',
  model: MODEL,
  version: 'v1',
  admin: false as const,
  responseCache: false,
  logger: silentLogger,
};
const plain = await startSidecar(common);
const secure = await startSidecar({ ...common, tls: { ...sidecarCert, clientCaFile: ca.certFile } });

const auth = {
  redis: 'redis://127.0.0.1:6379',
  tenants: [
    {
      name: `bench-${process.pid}`,
      key_sha256: hashApiKey(KEY),
      models: [MODEL],
      limits: { requests_per_second: 1e6, tokens_per_minute: 1e9 },
    },
  ],
};
const mtls = { ca_file: ca.certFile, cert_file: routerCert.certFile, key_file: routerCert.keyFile };
const variants: Array<[string, Record<string, unknown>, string]> = [
  ['plaintext', {}, plain.address],
  ['mTLS to sidecar', { upstream_tls: mtls }, secure.address],
  ['auth + rate limits (Redis)', { auth }, plain.address],
  ['mTLS + auth + rate limits', { upstream_tls: mtls, auth }, secure.address],
];
const routers: Array<{ name: string; router: Router; client: InferenceClient }> = [];
for (const [name, extra, endpoint] of variants) {
  const router = await startRouter({
    config: validateRouterConfig({
      listen: '127.0.0.1:0',
      discovery: { kind: 'static', endpoints: [endpoint] },
      models: { [MODEL]: { versions: { v1: { weight: 1 } } } },
      ...extra,
    }),
    logger: silentLogger,
    admin: false,
  });
  while (!router.endpoints.snapshot().endpoints.some((e) => e.ready)) {
    await new Promise((r) => router.endpoints.events.once('change', r));
  }
  routers.push({
    name,
    router,
    client: createInferenceClient(router.address, { metadata: { authorization: `Bearer ${KEY}` } }),
  });
}

async function drive(client: InferenceClient): Promise<number[]> {
  const ttfc: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests) {
        next++;
        const t0 = performance.now();
        let first = 0;
        for await (const _ of client.generateStream({
          model: MODEL,
          prompt: `cost ${next}`,
          sampling: { maxTokens: 8 },
        })) {
          if (!first) first = performance.now();
        }
        ttfc.push(first - t0);
      }
    }),
  );
  return ttfc;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? 0;
const samples = new Map<string, number[]>(routers.map((r) => [r.name, []]));
/** Per variant, its p50 over plaintext's p50 in each round. */
const p50Ratios = new Map<string, number[]>(routers.map((r) => [r.name, []]));
for (const r of routers) await drive(r.client); // warm-up
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? routers : [...routers].reverse();
  const p50 = new Map<string, number>();
  for (const r of order) {
    const xs = await drive(r.client);
    samples.get(r.name)?.push(...xs);
    p50.set(r.name, pct(xs, 0.5));
  }
  const base = p50.get('plaintext') ?? Number.NaN;
  for (const r of routers) p50Ratios.get(r.name)?.push((p50.get(r.name) ?? Number.NaN) / base);
}
const rows = routers.map((r) => {
  const xs = samples.get(r.name) ?? [];
  const ratios = p50Ratios.get(r.name) ?? [];
  return {
    variant: r.name,
    ttfcP50Ms: Number(pct(xs, 0.5).toFixed(2)),
    ttfcP99Ms: Number(pct(xs, 0.99).toFixed(2)),
    n: xs.length,
    p50OverPlaintext: {
      median: Number(median(ratios).toFixed(3)),
      min: Number(Math.min(...ratios).toFixed(3)),
      max: Number(Math.max(...ratios).toFixed(3)),
    },
  };
});
console.log(JSON.stringify({ concurrency, requestsPerRound: requests, rounds, rows }, null, 2));
for (const r of routers) {
  r.client.close();
  await r.router.close(0);
}
await plain.close();
await secure.close();
await sim.close();
process.exit(0);
