/**
 * CPU cost (process CPU time) of the canary analysis on the request path: what the router's
 * hooks (effective weights, first token, the inter-token gaps in batches as
 * a stream hands them over, finish with a price) add per request, against the same loop without them, in
 * alternating rounds. The hooks run for every request of every model (the
 * per-version windows), a canary section adds the step statistics.
 *
 *   node --import tsx bench/canary-cost.ts [--rounds 6] [--requests 200000] [--chunks 32]
 */
import { EventEmitter } from 'node:events';
import { parseArgs } from 'node:util';
import { silentLogger } from '../common/log.js';
import { createCanary } from '../router/canary/controller.js';
import { validateRouterConfig } from '../router/config/load.js';
import { createRouterMetrics } from '../router/metrics.js';
import { GAP_BATCH } from '../router/request/stream-times.js';
import type { RequestTrace } from '../router/request-trace.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '6' },
    requests: { type: 'string', default: '200000' },
    chunks: { type: 'string', default: '32' },
  },
});
const rounds = Number(values.rounds);
const requests = Number(values.requests);
const chunks = Number(values.chunks);

const config = validateRouterConfig({
  models: {
    m: {
      versions: {
        v1: { weight: 100, price: { input_per_1k: 0.5, output_per_1k: 1.5 } },
        v2: { weight: 0, price: { input_per_1k: 0.5, output_per_1k: 1.5 } },
      },
      canary: { version: 'v2', baseline: 'v1', steps: [5, 50, 100], interval_ms: 3_600_000 },
    },
  },
});
const canary = createCanary(config, {
  metrics: createRouterMetrics(),
  log: silentLogger,
  now: Date.now,
  events: new EventEmitter(),
  replicaId: 'bench',
  timer: false,
});
const model = config.models.m;
if (!model) throw new Error('no model');
const trace = (version: string): RequestTrace => ({
  requestId: 'r',
  traceId: 't',
  receivedAt: 0,
  model: 'm',
  version: { version, reason: 'weighted' },
  priority: 2,
  queuedMs: 0,
  deadline: 0,
  deadlineFromClient: false,
  attempts: [],
  status: 'OK',
});
const traces = [trace('v1'), trace('v2')];

let sink = 0;
const gaps = new Float64Array(GAP_BATCH);
function run(withHooks: boolean): number {
  // CPU time of this process, not wall time: other processes on a shared machine do not count.
  const start = process.cpuUsage();
  for (let i = 0; i < requests; i++) {
    const version = i % 20 === 0 ? 'v2' : 'v1';
    const ttft = 0.02 + (i % 97) * 1e-4;
    if (withHooks) {
      sink += canary.effective('m', model as never).versions.v2?.weight ?? 0;
      canary.firstToken('m', version, ttft);
      // As a stream hands its gaps over: in batches of GAP_BATCH, the rest at its end.
      let n = 0;
      for (let c = 1; c < chunks; c++) {
        gaps[n++] = 0.008 + (c % 13) * 1e-4;
        if (n === GAP_BATCH) {
          canary.gaps('m', version, gaps, n);
          n = 0;
        }
      }
      if (n > 0) canary.gaps('m', version, gaps, n);
      sink +=
        canary.finish({
          rt: traces[version === 'v2' ? 1 : 0] as RequestTrace,
          version,
          usage: { promptTokens: 200, completionTokens: chunks },
          streamSeconds: 0.25,
          durationSeconds: 0.3,
          cancelled: false,
        }) ?? 0;
    } else {
      sink += ttft;
      for (let c = 1; c < chunks; c++) sink += c;
    }
  }
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / requests;
}

const on: number[] = [];
const off: number[] = [];
run(true);
run(false);
for (let r = 0; r < rounds; r++) {
  // Alternate which goes first, so drift in the machine's load hits both.
  if (r % 2 === 0) {
    on.push(run(true));
    off.push(run(false));
  } else {
    off.push(run(false));
    on.push(run(true));
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const extra = on.map((x, i) => x - (off[i] ?? 0));
console.log(
  JSON.stringify(
    {
      requests,
      chunks,
      rounds,
      hooksNsPerRequest: { median: median(extra), min: Math.min(...extra), max: Math.max(...extra) },
      nsPerChunk: median(extra) / chunks,
      sink: sink > 0,
    },
    null,
    2,
  ),
);
await canary.close();
