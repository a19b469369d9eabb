/**
 * Cost of tracing on the router: two routers over the same simulated pods,
 * one with tracing off (no-op tracer) and one exporting every span (100 %
 * sampling, OTLP/HTTP to a local receiver), driven in alternating rounds at
 * the same concurrency. Prints requests/s of each (medians over the rounds),
 * the ratio of those medians, and the spread of the round-by-round ratios.
 *
 *   node --import tsx bench/tracing-cost.ts [--rounds 4] [--requests 1500] [--concurrency 32]
 */
import { parseArgs } from 'node:util';
import { ProxyTracerProvider } from '@opentelemetry/api';
import { createInferenceClient, type InferenceClient } from '../client/index.js';
import { silentLogger } from '../common/log.js';
import { startTelemetry } from '../common/telemetry.js';
import { validateRouterConfig } from '../router/config/load.js';
import { type Router, startRouter } from '../router/server.js';
import { startSidecar } from '../sidecar/server.js';
import { createSimServer } from '../sim/server.js';
import { startOtlpReceiver } from './otlp-receiver.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '4' },
    requests: { type: 'string', default: '1500' },
    concurrency: { type: 'string', default: '32' },
  },
});
const rounds = Number(values.rounds);
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const MODEL = 'llama-3-8b-chat';

const receiver = await startOtlpReceiver();
process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json';
process.env.OTEL_TRACES_SAMPLER = 'always_on';
const telemetry = startTelemetry('llmmesh-router');
const noop = new ProxyTracerProvider().getTracer('off');

const pods = [];
for (let i = 0; i < 2; i++) {
  const sim = createSimServer({ servedModelName: MODEL, timeScale: 0, tracer: noop });
  const bound = await sim.listen(0, '127.0.0.1');
  const sidecar = await startSidecar({
    engineUrl: bound.url,
    listen: '127.0.0.1:0',
    model: MODEL,
    version: 'v1',
    admin: false,
    responseCache: false,
    logger: silentLogger,
    tracer: noop,
  });
  pods.push({ sim, sidecar });
}
const config = validateRouterConfig({
  listen: '127.0.0.1:0',
  discovery: { kind: 'static', endpoints: pods.map((p) => p.sidecar.address) },
  models: { [MODEL]: { versions: { v1: { weight: 1 } } } },
});
const off = await startRouter({ config, logger: silentLogger, admin: false, tracer: noop });
const on = await startRouter({ config, logger: silentLogger, admin: false, tracer: telemetry.tracer });
for (const r of [off, on]) {
  while (r.endpoints.snapshot().endpoints.filter((e) => e.ready).length < 2) {
    await new Promise((res) => r.endpoints.events.once('change', res));
  }
}

async function drive(client: InferenceClient): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests) {
        next++;
        await client.generate({ model: MODEL, prompt: `tracing cost ${next}`, sampling: { maxTokens: 16 } });
      }
    }),
  );
  return requests / ((performance.now() - started) / 1000);
}

const clients = new Map<Router, InferenceClient>([
  [off, createInferenceClient(off.address)],
  [on, createInferenceClient(on.address)],
]);
const results = { off: [] as number[], on: [] as number[] };
await drive(clients.get(off) as InferenceClient); // warm-up
await drive(clients.get(on) as InferenceClient);
for (let r = 0; r < rounds; r++) {
  // Alternate the order so drift on a shared machine hits both equally.
  const order = r % 2 === 0 ? ([off, on] as const) : ([on, off] as const);
  for (const router of order) {
    const rps = await drive(clients.get(router) as InferenceClient);
    (router === off ? results.off : results.on).push(rps);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const m = { off: median(results.off), on: median(results.on) };
const roundRatios = results.on.map((x, i) => x / (results.off[i] ?? Number.NaN));
console.log(
  JSON.stringify({
    concurrency,
    requestsPerRound: requests,
    rounds,
    tracingOffReqPerS: Math.round(m.off),
    tracingOnReqPerS: Math.round(m.on),
    onOverOff: Number((m.on / m.off).toFixed(3)),
    onOverOffByRound: {
      median: Number(median(roundRatios).toFixed(3)),
      min: Number(Math.min(...roundRatios).toFixed(3)),
      max: Number(Math.max(...roundRatios).toFixed(3)),
    },
    spansExported: receiver.spans.length,
  }),
);
for (const c of clients.values()) c.close();
await off.close(0);
await on.close(0);
for (const p of pods) {
  await p.sidecar.close();
  await p.sim.close();
}
await telemetry.shutdown();
await receiver.close();
process.exit(0);
