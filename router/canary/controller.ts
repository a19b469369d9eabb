/**
 * Canary analysis of one router: the live per-version comparison (sliding
 * windows of TTFT, inter-token latency, endpoint-fault error rate, output
 * tokens/s, requests, cost), and the automatic progression of every model
 * whose config has a `canary` section — judge each interval, advance, hold
 * or roll back — as an overlay on the file's weights.
 *
 * The request path only calls the synchronous, allocation-light hooks
 * (`effective`, `firstToken`, `gaps`, `finish`); judging, Redis and metrics
 * run on a timer. With `analysis.redis`, replicas share the progression
 * (sharing.ts): one replica holds the judging lease, every replica publishes
 * its step statistics, and all adopt the shared state within one tick. When
 * Redis is unreachable the progression is paused (weights stay at the
 * current step) and nothing on the request path notices.
 */
import { errors, MeshError, Status } from '../../common/errors.js';
import type { ModelConfig, RouterConfig } from '../config/schema.js';
import { fleetCostPerHour, requestCost } from './cost.js';
import { judge } from './judge.js';
import { type ComparisonLabels, createCanaryMetrics } from './metrics.js';
import {
  applyAction,
  applyJudgement,
  type CanaryDecision,
  type CanaryPhase,
  canaryKey,
  effectiveWeights,
  type ProgressionState,
  startProgression,
} from './progression.js';
import type { AnalysisConfig } from './schema.js';
import { createCanarySharing, type DecisionHook, type Judged } from './sharing.js';
import { emptyStats, observe, type StatsSummary, summarize, type VersionStats } from './stats.js';
import type {
  Canary,
  CanaryDeps,
  CanaryEvent,
  CanaryModelStatus,
  CanaryTickEvent,
  ModelRun,
} from './types.js';
import { addFinished, modelStatusOf, versionFault } from './view.js';
import { createVersionWindows } from './windows.js';

export type {
  AnalysisStatus,
  Canary,
  CanaryDeps,
  CanaryEvent,
  CanaryModelStatus,
  CanaryStatus,
  CanaryTickEvent,
  FinishedRequest,
  VersionAnalysis,
} from './types.js';

/** Points of each chart on the status page. */
export const CHART_POINTS = 30;
/** Longest time between two ticks (judging, sharing). */
const MAX_TICK_MS = 1_000;

/** How a model's status names the replica's sharing state. */
const SHARING_SHOWN = { none: 'local', up: 'redis', down: 'redis-unavailable' } as const;

const windowLabel = (ms: number) =>
  ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`;

/** Creates the canary analysis for `config`. */
export function createCanary(config: RouterConfig, deps: CanaryDeps): Canary {
  const { log, now, events } = deps;
  const registers = [deps.metrics.registry];
  let cfg = config;
  let analysisCfg: AnalysisConfig = config.analysis;
  const windows = createVersionWindows(analysisCfg.bucket_ms, analysisCfg.history_ms, now);
  const runs = new Map<string, ModelRun>();
  /** Runs replaced by the config being applied, by model and key: a failed apply that restores the last good config gets them back. */
  const retired = new Map<string, ModelRun>();
  const effectiveCache = new Map<string, { src: ModelConfig; rev: number; out: ModelConfig }>();

  // Per-version comparison gauges, computed at scrape time from the windows.
  const summaries = (): Array<{ labels: ComparisonLabels; summary: StatsSummary }> => {
    const out: Array<{ labels: ComparisonLabels; summary: StatsSummary }> = [];
    for (const model of Object.keys(cfg.models)) {
      for (const version of versionsOf(model)) {
        for (const w of analysisCfg.windows_ms) {
          out.push({
            labels: { model, model_version: version, window: windowLabel(w) },
            summary: summarize(windows.window(model, version, w)),
          });
        }
      }
    }
    return out;
  };
  const { decisions, cost } = createCanaryMetrics(registers, {
    runs,
    shownPhase: (r) => shownPhase(r),
    redis: () => sharing.state(),
    summaries,
  });

  const versionsOf = (model: string) => {
    const vs = new Set(Object.keys(cfg.models[model]?.versions ?? {}));
    for (const v of windows.versions(model)) vs.add(v);
    return [...vs];
  };

  const shownPhase = (r: ModelRun): CanaryPhase =>
    sharing.state() === 'down' && r.state.phase === 'progressing' ? 'paused' : r.state.phase;

  const count = (model: string, r: ModelRun, decision: CanaryDecision, reason: string, detail: string) => {
    decisions.inc({ model, version: r.cfg.version, decision, reason });
    const fields = {
      model,
      version: r.cfg.version,
      baseline: r.cfg.baseline,
      step: r.state.step,
      share: r.state.share,
      reason,
      detail,
    };
    if (decision === 'rollback' || decision === 'pause') log.warn(`canary ${decision}`, fields);
    else if (decision === 'hold') log.debug('canary hold', fields);
    else log.info(`canary ${decision}`, fields);
  };

  /** A decision was made (`local`: by this replica, which counts and logs it); every replica emits it. */
  const decided: DecisionHook = (model, r, decision, reason, detail, local) => {
    if (local) count(model, r, decision, reason, detail);
    const e: CanaryEvent = {
      model,
      decision,
      reason,
      detail,
      phase: shownPhase(r),
      step: r.state.step,
      share: r.state.share,
      local,
    };
    events.emit('canary', e);
  };

  /** Makes `next` the model's state (adopting another replica's, or our own decision). */
  const adopt = (model: string, r: ModelRun, next: ProgressionState) => {
    const before = r.state;
    r.state = next;
    if (next.epoch !== r.epoch) {
      r.epoch = next.epoch;
      r.stats = new Map();
    }
    effectiveCache.delete(model);
    return before;
  };

  let timer: NodeJS.Timeout | undefined;
  let tickMs = MAX_TICK_MS;
  const schedule = () => {
    const intervals = [...runs.values()].map((r) => r.cfg.interval_ms);
    const next = Math.max(5, Math.min(MAX_TICK_MS, ...intervals.map((i) => Math.floor(i / 5))));
    if (timer && next === tickMs) return;
    tickMs = next;
    if (timer) clearInterval(timer);
    timer = undefined;
    if (deps.timer === false) return;
    timer = setInterval(() => void tick(), tickMs);
    timer.unref();
  };

  const configure = (next: RouterConfig) => {
    cfg = next;
    analysisCfg = next.analysis;
    windows.configure(analysisCfg.bucket_ms, analysisCfg.history_ms);
    effectiveCache.clear();
    for (const [model, r] of runs) {
      const c = next.models[model]?.canary;
      if (c && canaryKey(c) === r.state.key) {
        r.cfg = c;
        continue;
      }
      runs.delete(model);
      retired.set(`${model}\u0000${r.state.key}`, r);
    }
    for (const [model, m] of Object.entries(next.models)) {
      if (!m.canary || runs.has(model)) continue;
      const key = canaryKey(m.canary);
      const old = retired.get(`${model}\u0000${key}`);
      if (old) {
        retired.delete(`${model}\u0000${key}`);
        old.cfg = m.canary;
        runs.set(model, old);
        continue;
      }
      const state = startProgression(m.canary, now());
      const r: ModelRun = {
        cfg: m.canary,
        state,
        epoch: state.epoch,
        stats: new Map(),
        lastJudgement: null,
        leader: !next.analysis.redis,
      };
      runs.set(model, r);
      decided(model, r, 'start', 'config', state.reason, true);
    }
    // A retired run is kept only for the datastore putting the last good config
    // back within the same apply (synchronously); a later edit back to an old
    // section starts it over, as any changed section does.
    queueMicrotask(() => retired.clear());
    sharing.configure(next.analysis.redis, next.analysis.redis_prefix);
    schedule();
  };

  const stepStats = (r: ModelRun, version: string): VersionStats | undefined => {
    if (version !== r.cfg.version && version !== r.cfg.baseline) return undefined;
    let s = r.stats.get(version);
    if (!s) {
      s = emptyStats();
      r.stats.set(version, s);
    }
    return s;
  };

  const judgeOn = (r: ModelRun, merged: Map<string, VersionStats>, at: number): Judged => {
    const canary = summarize(merged.get(r.cfg.version) ?? emptyStats());
    const baseline = summarize(merged.get(r.cfg.baseline) ?? emptyStats());
    const j = judge(r.cfg, canary, baseline);
    const { state, decision } = applyJudgement(r.state, r.cfg, j, at);
    return { state, decision, record: { ...j, at, canary, baseline } };
  };

  const decideLocal = (model: string, r: ModelRun) => {
    const t = now();
    if (r.state.phase !== 'progressing' || t < r.state.judgeAt) return;
    const { state, decision, record } = judgeOn(r, r.stats, t);
    r.lastJudgement = record;
    adopt(model, r, state);
    decided(model, r, decision, record.reason, record.detail, true);
  };

  const sharing = createCanarySharing({
    log,
    now,
    replicaId: deps.replicaId,
    redis: deps.redis,
    runs: () => runs,
    adopt,
    decided,
    judge: judgeOn,
  });

  let ticking: Promise<void> | undefined;
  const tick = (): Promise<void> => {
    if (ticking) return ticking;
    ticking = (async () => {
      for (const [model, r] of [...runs]) {
        const due = r.state.phase === 'progressing' && now() >= r.state.judgeAt;
        const shared = sharing.state();
        if (shared === 'none') decideLocal(model, r);
        else if (shared === 'up') await sharing.tick(model, r, tickMs);
        const after = sharing.state();
        const e: CanaryTickEvent = { model, due, shared: after === 'none' ? 'local' : after };
        events.emit('canary-tick', e);
      }
    })().finally(() => {
      ticking = undefined;
    });
    return ticking;
  };

  const modelStatus = (model: string, r: ModelRun): CanaryModelStatus =>
    modelStatusOf(model, r, cfg.models[model], {
      sharing: SHARING_SHOWN[sharing.state()],
      phase: shownPhase(r),
      now: now(),
    });

  configure(config);

  return {
    configure,
    effective(model, m) {
      const r = runs.get(model);
      if (!r) return m;
      const hit = effectiveCache.get(model);
      if (hit && hit.src === m && hit.rev === r.state.rev) return hit.out;
      const w = effectiveWeights(m, r.cfg, r.state.share);
      const out: ModelConfig = {
        ...m,
        versions: Object.fromEntries(
          Object.entries(m.versions).map(([v, c]) => [v, { ...c, weight: w[v] ?? c.weight }]),
        ),
      };
      effectiveCache.set(model, { src: m, rev: r.state.rev, out });
      return out;
    },
    firstToken(model, version, seconds) {
      observe(windows.current(model, version).ttft, seconds);
      const r = runs.get(model);
      const s = r && stepStats(r, version);
      if (s) observe(s.ttft, seconds);
    },
    gaps(model, version, seconds, count) {
      const itl = windows.current(model, version).itl;
      const r = runs.get(model);
      const step = r && stepStats(r, version);
      for (let i = 0; i < count; i++) {
        const v = seconds[i] as number;
        observe(itl, v);
        if (step) observe(step.itl, v);
      }
    },
    finish(f) {
      const { rt, version } = f;
      if (!version || !cfg.models[rt.model]) return undefined;
      const fault = versionFault(f);
      if (fault === undefined) return undefined;
      const price = cfg.models[rt.model]?.versions[version]?.price;
      const c = price && f.usage ? requestCost(price, f.usage, f.durationSeconds) : undefined;
      const add = (s: VersionStats) => addFinished(s, f, fault, c);
      add(windows.current(rt.model, version));
      const r = runs.get(rt.model);
      const s = r && stepStats(r, version);
      if (s) add(s);
      if (c !== undefined && c > 0)
        cost.inc({ model: rt.model, model_version: version, tenant: rt.tenant ?? '' }, c);
      return c;
    },
    tick,
    async control(model, action) {
      const r = runs.get(model);
      if (!r) {
        const with_ = [...runs.keys()];
        throw errors.notFound(
          `model "${model}" has no canary section${with_.length ? ` (models with one: ${with_.join(', ')})` : ''}`,
        );
      }
      const apply = (base: ProgressionState) => {
        try {
          return applyAction(base, r.cfg, action, now());
        } catch (err) {
          throw new MeshError(Status.FAILED_PRECONDITION, (err as Error).message);
        }
      };
      const { state, decision } =
        sharing.state() === 'none' ? apply(r.state) : await sharing.control(model, r, apply);
      adopt(model, r, state);
      decided(model, r, decision, 'operator', state.reason, true);
      return modelStatus(model, r);
    },
    status: () => ({
      replica: deps.replicaId,
      redis: sharing.state(),
      models: [...runs].map(([model, r]) => modelStatus(model, r)),
    }),
    analysis: () => ({
      windows: analysisCfg.windows_ms.map((ms) => ({ label: windowLabel(ms), ms })),
      historyMs: analysisCfg.history_ms,
      models: Object.keys(cfg.models).map((name) => ({
        name,
        versions: versionsOf(name).map((v) => ({
          name: v,
          windows: Object.fromEntries(
            analysisCfg.windows_ms.map((ms) => [windowLabel(ms), summarize(windows.window(name, v, ms))]),
          ),
          series: windows.series(name, v, CHART_POINTS),
          fleetCostPerHour: fleetCostPerHour(cfg.models[name]?.versions[v]?.price),
        })),
      })),
    }),
    async close() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await ticking;
      sharing.close();
    },
  };
}
