/** The canary analysis' public types: events, status, the request hooks. */
import type { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from '../../common/log.js';
import type { ModelConfig, RouterConfig } from '../config/schema.js';
import type { RouterMetrics } from '../metrics.js';
import type { RequestTrace } from '../request-trace.js';
import type { Judgement } from './judge.js';
import type {
  CanaryAction,
  CanaryDecision,
  CanaryPhase,
  ProgressionState,
  TimelineEntry,
} from './progression.js';
import type { CanaryConfig } from './schema.js';
import type { StatsSummary, VersionStats } from './stats.js';
import type { SeriesPoint } from './windows.js';

/** A canary event, emitted on the router's events as `canary`. */
export interface CanaryEvent {
  model: string;
  decision: CanaryDecision;
  reason: string;
  detail: string;
  phase: CanaryPhase;
  step: number;
  share: number;
  /** True when this replica decided (false: adopted from another replica, or a local pause). */
  local: boolean;
}

/**
 * Emitted as `canary-tick` after every tick, per model: whether a judgement
 * was due, and whether the shared state could be used (tests wait on it).
 */
export interface CanaryTickEvent {
  model: string;
  due: boolean;
  shared: 'local' | 'up' | 'down';
}

/** The progression of one model as `/status.json` shows it. */
export interface CanaryModelStatus {
  model: string;
  version: string;
  baseline: string;
  /** The progression's phase; `paused` too while shared state is unavailable (see `sharing`). */
  phase: CanaryPhase;
  /** Why: the last decision's detail, or the shared state's problem. */
  reason: string;
  step: number;
  steps: number[];
  /** Canary share of the two versions' traffic now, percent. */
  share: number;
  /** Weights in force (the file's, with the overlay) and the file's own. */
  weights: Record<string, number>;
  fileWeights: Record<string, number>;
  intervalMs: number;
  minRequests: number;
  maxErrorRateIncrease: number;
  maxTtftP90Ratio: number;
  maxItlP90Ratio: number;
  onFailure: 'rollback' | 'pause';
  /** Time until the next judgement (null unless progressing). */
  nextJudgementInMs: number | null;
  /** `local`: this replica judges alone (no Redis); `redis`: shared; `redis-unavailable`: paused until Redis returns. */
  sharing: 'local' | 'redis' | 'redis-unavailable';
  /** This replica holds the judging lease (always true without Redis). */
  judge: boolean;
  /** This step's statistics so far (this replica's, or all replicas' at the last judgement). */
  current: { canary: StatsSummary; baseline: StatsSummary };
  lastJudgement: (Judgement & { at: number; canary: StatsSummary; baseline: StatsSummary }) | null;
  timeline: TimelineEntry[];
}

/** One version's comparison. */
export interface VersionAnalysis {
  name: string;
  /** Summaries by window, keyed by the window's label (`1m`, `5m`). */
  windows: Record<string, StatsSummary>;
  /** Chart points over the history, oldest first. */
  series: SeriesPoint[];
  /** The fleet's cost per hour (GPU-hour prices), else null. */
  fleetCostPerHour: number | null;
}

/** The per-version comparison as `/status.json` shows it. */
export interface AnalysisStatus {
  windows: Array<{ label: string; ms: number }>;
  historyMs: number;
  models: Array<{ name: string; versions: VersionAnalysis[] }>;
}

/** What the canary status of a router holds. */
export interface CanaryStatus {
  replica: string;
  redis: 'none' | 'up' | 'down';
  models: CanaryModelStatus[];
}

/** What one finished request tells the analysis. */
export interface FinishedRequest {
  rt: RequestTrace;
  /** The version that served (or was chosen); '' when none was. */
  version: string;
  usage?: { promptTokens: number; completionTokens: number };
  /** From the first to the last chunk. */
  streamSeconds: number;
  durationSeconds: number;
  /** The final error, if the request failed. */
  error?: unknown;
  cancelled: boolean;
}

/** The canary analysis of one router. */
export interface Canary {
  /** Applies a (new) config: windows, canary sections (reset when changed), Redis. */
  configure(config: RouterConfig): void;
  /** `m` with the progression's weights, or `m` itself when `model` has no canary. */
  effective(model: string, m: ModelConfig): ModelConfig;
  firstToken(model: string, version: string, seconds: number): void;
  /** The first `count` of `seconds`: a stream's inter-token gaps, handed over in batches. */
  gaps(model: string, version: string, seconds: ArrayLike<number>, count: number): void;
  /** Records a finished request; returns its cost when its version has a price. */
  finish(r: FinishedRequest): number | undefined;
  /** Judges and shares now (the timer calls it; tests may too). Resolves when done. */
  tick(): Promise<void>;
  /** An operator's action; throws a MeshError (NOT_FOUND, FAILED_PRECONDITION, UNAVAILABLE). */
  control(model: string, action: CanaryAction): Promise<CanaryModelStatus>;
  status(): CanaryStatus;
  analysis(): AnalysisStatus;
  close(): Promise<void>;
}

/** What the canary needs. */
export interface CanaryDeps {
  metrics: RouterMetrics;
  log: Logger;
  now: () => number;
  events: EventEmitter;
  replicaId: string;
  /** Redis client factory (default: common/redis.ts). */
  redis?: (url: string, onState: (up: boolean) => void) => Redis;
  /** Run the tick timer (default true; unit tests tick by hand). */
  timer?: boolean;
}

/** The progression of one model in one router (internal to the canary). */
export interface ModelRun {
  cfg: CanaryConfig;
  state: ProgressionState;
  /** Step statistics of this replica for `state.epoch`. */
  epoch: number;
  stats: Map<string, VersionStats>;
  lastJudgement: CanaryModelStatus['lastJudgement'];
  leader: boolean;
}
