/**
 * overload: the router in front of pods driven at three times what they can
 * serve. A real mesh on the simulator (two pods, each `llmmesh sim
 * --max-num-seqs 8` behind its sidecar, and the router, each its own
 * process) is measured three ways, one after the other on the same processes:
 *
 * 1. unloaded: a few requests at a time, far below the pods' slots; its TTFT
 *    p99 is the reference;
 * 2. capacity: closed loop straight to each pod's sidecar with more requests
 *    in flight than it has slots (so it never idles), completions per second;
 * 3. overload: open loop, Poisson arrivals (seeded) at 3× that capacity, for a
 *    fixed duration.
 *
 * Reported against the targets: admitted requests' TTFT p50/p99 vs unloaded
 * (p99 ≤ max(2× unloaded, unloaded + 250 ms)), completions per second vs
 * capacity (≥ 90 %), what was shed (RESOURCE_EXHAUSTED, with a retry
 * pushback in its trailers), DEADLINE_EXCEEDED (none) and any other error;
 * plus the engines' waiting requests and the router's admission queue,
 * sampled during the overload.
 */
import type { RequestTimeline } from '../child.js';
import type { LoadResult } from '../load-generator.js';
import { runLoad } from '../load-generator.js';
import { createProcessGroup, type HelperProcess } from '../processes.js';
import { type BenchReport, createReport, fmt, runReport } from '../report.js';
import type { RequestRecord } from '../stats.js';
import { type BenchTarget, createTargetClient } from '../targets.js';
import { createWorkload } from '../workloads.js';
import type { ScenarioContext } from './context.js';
import { startPods } from './pods.js';

const MODEL = 'llama-3-8b-chat';
const PODS = 2;
const MAX_NUM_SEQS = 8;
const ITL_MS = 20;
const TTFT_MS = 20;
const PROMPT_LEN = 128;
const OUTPUT_LEN = 32;
/** Overload factor: arrivals at this many times the measured capacity. */
const FACTOR = 3;
/** Client deadline of every request: a few times an unloaded request's whole duration. */
const DEADLINE_MS = 5_000;

interface Phases {
  unloadedConcurrency: number;
  unloadedRequests: number;
  capacityConcurrency: number;
  capacityMs: number;
  overloadMs: number;
  warmupMs: number;
}

function phases(quick: boolean): Phases {
  const slots = PODS * MAX_NUM_SEQS;
  return quick
    ? {
        unloadedConcurrency: 2,
        unloadedRequests: 12,
        capacityConcurrency: Math.round(slots * 1.5),
        capacityMs: 3_000,
        overloadMs: 6_000,
        warmupMs: 1_000,
      }
    : {
        unloadedConcurrency: 2,
        unloadedRequests: 100,
        capacityConcurrency: Math.round(slots * 1.5),
        capacityMs: 15_000,
        overloadMs: 30_000,
        warmupMs: 3_000,
      };
}

const quantile = (sorted: readonly number[], q: number) =>
  sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number);

/** The sum of a gauge over every series in a Prometheus text page. */
function gauge(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Samples the engines' waiting requests and the router's admission queue until stopped. */
function startSampler(simUrls: string[], router: HelperProcess, intervalMs: number) {
  const seen = { engineWaiting: 0, routerQueued: 0, routerInFlight: 0, samples: 0 };
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = performance.now();
      try {
        const [pages, adm] = await Promise.all([
          Promise.all(simUrls.map(async (u) => (await fetch(`${u}/metrics`)).text())),
          router.request<{ inFlight: number; queued: number }>('admission'),
        ]);
        for (const p of pages)
          seen.engineWaiting = Math.max(seen.engineWaiting, gauge(p, 'vllm:num_requests_waiting'));
        seen.routerQueued = Math.max(seen.routerQueued, adm.queued);
        seen.routerInFlight = Math.max(seen.routerInFlight, adm.inFlight);
        seen.samples++;
      } catch {
        // A sample lost to a busy machine is skipped.
      }
      const wait = intervalMs - (performance.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return seen;
    },
  };
}

/** The two kinds of engine: one that publishes its max_num_seqs, one that does not (vLLM's default). */
const VARIANTS = [
  { name: 'publishes max_num_seqs', publish: true },
  { name: 'does not publish it', publish: false },
] as const;

/** Runs the overload scenario. */
export async function runOverload(ctx: ScenarioContext): Promise<BenchReport> {
  const report = createReport('Overload: 3× the pods’ capacity', ctx.command);
  const p = phases(ctx.quick);
  const workload = createWorkload('fixed', {
    seed: 11,
    params: { promptLen: PROMPT_LEN, outputLen: OUTPUT_LEN },
  });
  report.notes.push(
    `${PODS} pods, each \`llmmesh sim --max-num-seqs ${MAX_NUM_SEQS} --time-to-first-token-ms ${TTFT_MS} --inter-token-latency-ms ${ITL_MS}\` ` +
      '(a fixed-latency step model: a step takes as long whatever the batch, so a pod serves at most max_num_seqs requests at once and the rest wait) ' +
      'behind its sidecar (defaults: as many in flight to the engine as its max_num_seqs, response cache off); the router with its default admission settings. ' +
      'Every component is its own process; the processes are not pinned.',
    `Workload \`fixed\` (prompt ${PROMPT_LEN} words, output ${OUTPUT_LEN} tokens, seed ${workload.seed}); every request has a ${DEADLINE_MS / 1000} s deadline. ` +
      `Phases, one after the other on the same mesh: unloaded (closed loop, ${p.unloadedConcurrency} in flight, ${p.unloadedRequests} requests after ${p.unloadedConcurrency * 2} of warm-up); ` +
      `capacity (closed loop straight to each pod's sidecar, ${p.capacityConcurrency / PODS} in flight each = 1.5× its ${MAX_NUM_SEQS} slots, ${p.capacityMs / 1000} s after ${p.warmupMs / 1000} s of warm-up: the pods' completions per second, summed); ` +
      `overload (open loop, Poisson arrivals seeded, at ${FACTOR}× that capacity for ${p.overloadMs / 1000} s after ${p.warmupMs / 1000} s of warm-up). ` +
      'Admitted TTFT counts from the call to its first chunk, so it includes the time spent in the router’s admission queue.',
    'Two meshes, one after the other: engines that publish max_num_seqs (`GET /server_info`, vLLM with `VLLM_SERVER_DEV_MODE=1`), so the sidecar sends at most that many and the router knows each pod’s knee; ' +
      'and engines that do not (vLLM’s default), so the sidecar forwards everything and the router learns the knee from how long requests wait in the engine.',
  );
  const targetRows: Array<Array<string | number>> = [];
  const detailRows: Array<Array<string | number>> = [];
  for (const variant of VARIANTS) {
    await runVariant(ctx, report, { ...variant, phases: p, workload, targetRows, detailRows });
  }
  report.tables.push(
    {
      title: 'Targets at 3× capacity',
      columns: ['engine', 'target', 'measured', 'verdict'],
      rows: targetRows,
    },
    {
      title: 'Overload in detail',
      columns: ['engine', 'figure', 'value'],
      rows: detailRows,
    },
  );
  return report;
}

async function runVariant(
  ctx: ScenarioContext,
  report: BenchReport,
  v: {
    name: string;
    publish: boolean;
    phases: Phases;
    workload: ReturnType<typeof createWorkload>;
    targetRows: Array<Array<string | number>>;
    detailRows: Array<Array<string | number>>;
  },
): Promise<void> {
  const { phases: p, workload } = v;
  const group = createProcessGroup(false);
  try {
    ctx.log(`overload (${v.name}): starting ${PODS} pods and the router`);
    const pods = await startPods(group, {
      count: PODS,
      model: MODEL,
      version: 'v1',
      simArgs: [
        '--max-num-seqs',
        String(MAX_NUM_SEQS),
        '--time-to-first-token-ms',
        String(TTFT_MS),
        '--inter-token-latency-ms',
        String(ITL_MS),
      ],
      spawn: v.publish ? { env: { VLLM_SERVER_DEV_MODE: '1' } } : undefined,
    });
    const router = await group.helper('router', {
      timelines: true,
      config: {
        listen: '127.0.0.1:0',
        discovery: { kind: 'static', endpoints: pods.map((pod) => pod.sidecarAddress) },
        models: { [MODEL]: { versions: { v1: { weight: 1 } } } },
      },
    });
    await router.request('wait-ready', { n: PODS });
    const target: BenchTarget = { name: 'router', kind: 'inference', address: String(router.info.address) };
    const client = createTargetClient(target);
    await client.waitForReady(10_000);
    let index = 0;
    const label = (phase: string) => `${phase} (${v.name})`;
    const run = async (
      phase: string,
      options: Partial<Parameters<typeof runLoad>[0]> & Pick<Parameters<typeof runLoad>[0], 'mode'>,
    ): Promise<LoadResult> => {
      if (ctx.signal.aborted) throw new Error('aborted');
      const result = await runLoad({
        target,
        client,
        model: MODEL,
        workload,
        startIndex: index,
        timeoutMs: DEADLINE_MS,
        signal: ctx.signal,
        onProgress: ctx.onProgress ? (pr) => ctx.onProgress?.(label(phase), pr) : undefined,
        ...options,
      });
      index = result.nextIndex;
      return result;
    };

    ctx.log(`overload (${v.name}): unloaded`);
    const unloaded = await run('unloaded', {
      mode: { kind: 'closed', concurrency: p.unloadedConcurrency },
      requests: p.unloadedRequests,
      warmupRequests: p.unloadedConcurrency * 2,
    });
    report.runs.push(runReport(label('overload'), 'unloaded', unloaded));

    // The pods' capacity, straight to each sidecar (the router out of the way).
    ctx.log(`overload (${v.name}): capacity`);
    const perPod = Math.round(p.capacityConcurrency / PODS);
    const direct = await Promise.all(
      pods.map((pod, i) =>
        runLoad({
          target: { name: `pod ${i + 1}`, kind: 'engine', address: pod.sidecarAddress },
          model: MODEL,
          workload,
          startIndex: index + i * 100_000,
          timeoutMs: DEADLINE_MS,
          mode: { kind: 'closed', concurrency: perPod },
          durationMs: p.capacityMs,
          warmupMs: p.warmupMs,
          signal: ctx.signal,
        }),
      ),
    );
    index += PODS * 100_000;
    const capacityPerS = direct.reduce((a, r) => a + r.stats.requestsPerS, 0);
    for (const r of direct) report.runs.push(runReport(label('overload'), `capacity, ${r.target.name}`, r));
    ctx.log(`overload (${v.name}): capacity ${fmt(capacityPerS)} completions/s`);

    const rate = FACTOR * capacityPerS;
    ctx.log(`overload (${v.name}): ${fmt(rate)} requests/s for ${p.overloadMs / 1000} s`);
    const records: RequestRecord[] = [];
    const sampler = startSampler(
      pods.map((pod) => pod.simUrl),
      router,
      250,
    );
    await router.request('timelines');
    const cpu0 = router.cpuSeconds() ?? Number.NaN;
    const overload = await run(`${FACTOR}× capacity`, {
      mode: { kind: 'open', ratePerS: rate },
      durationMs: p.overloadMs,
      warmupMs: p.warmupMs,
      seed: 12,
      onRecord: (r) => records.push(r),
    });
    const routerCpu = (router.cpuSeconds() ?? Number.NaN) - cpu0;
    const seen = await sampler.stop();
    const timelines = await router.request<RequestTimeline[]>('timelines');
    client.close();
    const split = ttftSplit(timelines, p.warmupMs);

    const shed = records.filter((r) => r.status === 'RESOURCE_EXHAUSTED');
    const withPushback = shed.filter((r) => r.pushbackMs !== undefined && r.pushbackMs > 0);
    const pushbacks = withPushback.map((r) => r.pushbackMs as number).sort((a, b) => a - b);
    const shedLatency = shed.map((r) => r.e2eMs).sort((a, b) => a - b);
    const early = shed.filter((r) => /expected wait/.test(r.message ?? '')).length;
    const standing = shed.filter((r) => /queue stands/.test(r.message ?? '')).length;
    const timedOut = shed.filter((r) => /no capacity within/.test(r.message ?? '')).length;
    const queueFull = shed.filter((r) => /queue full/.test(r.message ?? '')).length;
    const deadline = records.filter((r) => r.status === 'DEADLINE_EXCEEDED').length;
    const other = records.filter(
      (r) => r.status !== 'OK' && r.status !== 'RESOURCE_EXHAUSTED' && r.status !== 'DEADLINE_EXCEEDED',
    );
    const s = overload.stats;
    const u = unloaded.stats;
    const ttftBound = Math.max(2 * u.ttft.p99, u.ttft.p99 + 250);
    const completionShare = s.requestsPerS / capacityPerS;
    report.runs.push(
      runReport(label('overload'), `${FACTOR}× capacity`, overload, {
        'router CPU ms/request': (routerCpu * 1000) / Math.max(1, overload.sent),
      }),
    );

    v.targetRows.push(
      [
        v.name,
        'admitted TTFT p99 ≤ max(2× unloaded p99, unloaded p99 + 250 ms)',
        `${fmt(s.ttft.p99)} ms vs ${fmt(ttftBound)} ms (unloaded p99 ${fmt(u.ttft.p99)}); p50 ${fmt(s.ttft.p50)} vs ${fmt(u.ttft.p50)} ms`,
        s.ttft.count > 0 && s.ttft.p99 <= ttftBound ? 'met' : 'missed',
      ],
      [
        v.name,
        'completions ≥ 90 % of capacity',
        `${fmt(s.requestsPerS)}/s vs ${fmt(capacityPerS)}/s (${fmt(completionShare * 100)} %)`,
        completionShare >= 0.9 ? 'met' : 'missed',
      ],
      [
        v.name,
        'the rest shed with RESOURCE_EXHAUSTED and a retry pushback',
        `${shed.length} of ${records.length} shed (${fmt((shed.length / Math.max(1, records.length)) * 100)} %), ${withPushback.length} with a pushback; ${other.length} other errors`,
        shed.length > 0 && withPushback.length === shed.length && other.length === 0 ? 'met' : 'missed',
      ],
      [v.name, 'no DEADLINE_EXCEEDED', `${deadline}`, deadline === 0 ? 'met' : 'missed'],
    );
    const q = (xs: readonly number[]) =>
      xs.length > 0
        ? `${fmt(quantile(xs, 0.5))} / ${fmt(quantile(xs, 0.9))} / ${fmt(xs.at(-1) as number)}`
        : '—';
    const detail: Array<[string, string | number]> = [
      [
        'unloaded: TTFT p50 / p90 / p99 (ms), requests',
        `${fmt(u.ttft.p50)} / ${fmt(u.ttft.p90)} / ${fmt(u.ttft.p99)}, ${u.ok}`,
      ],
      [
        'capacity: completions/s straight to the pods',
        `${fmt(capacityPerS)} (${direct.map((r) => fmt(r.stats.requestsPerS)).join(' + ')}, ${perPod} in flight each)`,
      ],
      ['offered (requests/s), sent', `${fmt(rate)}, ${overload.sent}`],
      ['completions/s', fmt(s.requestsPerS)],
      ['admitted TTFT p50 / p90 / p99 (ms)', `${fmt(s.ttft.p50)} / ${fmt(s.ttft.p90)} / ${fmt(s.ttft.p99)}`],
      ['admitted e2e p50 / p99 (ms)', `${fmt(s.e2e.p50)} / ${fmt(s.e2e.p99)}`],
      [
        'admitted, as the router saw them: TTFT p50 / p90 / p99 (ms)',
        `${fmt(split.ttft[0])} / ${fmt(split.ttft[1])} / ${fmt(split.ttft[2])}`,
      ],
      [
        '… of which in the admission queue, p50 / p90 / p99 (ms)',
        `${fmt(split.queue[0])} / ${fmt(split.queue[1])} / ${fmt(split.queue[2])}`,
      ],
      [
        '… of which from the send to the pod to its first chunk (pod queue, prefill), p50 / p90 / p99 (ms)',
        `${fmt(split.pod[0])} / ${fmt(split.pod[1])} / ${fmt(split.pod[2])}`,
      ],
      [
        `the slowest 1 % by the router's TTFT (${split.tail.n}): mean admission queue / pod (ms), arrived within (ms)`,
        `${fmt(split.tail.queue)} / ${fmt(split.tail.pod)}, ${fmt(split.tail.arrivalSpreadMs)}`,
      ],
      [
        'shed: at once (expected wait) / standing queue / after the full wait / queue full',
        `${early} / ${standing} / ${timedOut} / ${queueFull}`,
      ],
      ['pushback p50 / p90 / max (ms)', q(pushbacks)],
      ['time to be shed p50 / p90 / max (ms)', q(shedLatency)],
      ['DEADLINE_EXCEEDED', deadline],
      [
        'other errors',
        other.length === 0
          ? '0'
          : Object.entries(countBy(other))
              .map(([k, n]) => `${n} ${k}`)
              .join(', '),
      ],
      ['most requests waiting in one engine (sampled every 250 ms)', seen.engineWaiting],
      [
        'most requests in the router’s admission queue / in flight (sampled)',
        `${seen.routerQueued} / ${seen.routerInFlight}`,
      ],
      ['router CPU ms per request sent', fmt((routerCpu * 1000) / Math.max(1, overload.sent))],
    ];
    for (const [k, val] of detail) v.detailRows.push([v.name, k, val]);
    ctx.log(
      `overload (${v.name}): unloaded TTFT p99 ${fmt(u.ttft.p99)} ms; admitted TTFT p50 ${fmt(s.ttft.p50)} p99 ${fmt(s.ttft.p99)} ms (bound ${fmt(ttftBound)}), completions ${fmt(s.requestsPerS)}/s of ${fmt(capacityPerS)} (${fmt(completionShare * 100)} %), ` +
        `shed ${shed.length} (${early} at once, ${standing} standing, ${withPushback.length} with pushback), DEADLINE_EXCEEDED ${deadline}, other ${other.length}, engine waiting ≤ ${seen.engineWaiting}`,
    );
  } finally {
    await group.stopAll();
  }
}

/**
 * Admitted requests' TTFT as the router measured it (from arrival), split
 * into the wait in its admission queue and the time from the send to the
 * pod to the first chunk (the pod's queue, prefill and the hops), for
 * requests that arrived after the warm-up.
 */
function ttftSplit(timelines: readonly RequestTimeline[], warmupMs: number) {
  const t0 = Math.min(...timelines.map((t) => t.receivedAt));
  const rows = timelines
    .filter((t) => t.status === 'OK' && t.receivedAt >= t0 + warmupMs)
    .flatMap((t) => {
      const a = t.attempts.at(-1);
      return a?.firstChunkMs === undefined
        ? []
        : [{ ttft: a.firstChunkMs, queue: t.queuedMs, pod: a.firstChunkMs - a.startMs, at: t.receivedAt }];
    });
  const qs = (xs: number[]): [number, number, number] => {
    const sorted = xs.sort((a, b) => a - b);
    return [quantile(sorted, 0.5), quantile(sorted, 0.9), quantile(sorted, 0.99)];
  };
  const tail = [...rows].sort((a, b) => a.ttft - b.ttft).slice(-Math.max(1, Math.floor(rows.length / 100)));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return {
    ttft: qs(rows.map((r) => r.ttft)),
    queue: qs(rows.map((r) => r.queue)),
    pod: qs(rows.map((r) => r.pod)),
    tail: {
      n: tail.length,
      queue: mean(tail.map((r) => r.queue)),
      pod: mean(tail.map((r) => r.pod)),
      // Whether they are one stall (arrived together) or spread over the run.
      arrivalSpreadMs: Math.max(...tail.map((r) => r.at)) - Math.min(...tail.map((r) => r.at)),
    },
  };
}

function countBy(records: readonly RequestRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records) out[r.status] = (out[r.status] ?? 0) + 1;
  return out;
}
