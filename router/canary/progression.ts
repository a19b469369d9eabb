/**
 * The state of one model's canary progression and its transitions: the step,
 * the canary's share, the phase, and a timeline of decisions. Pure functions
 * of (state, input, time): the controller applies them locally or through
 * Redis, and the same state object is what replicas share.
 */
import type { ModelConfig } from '../config/schema.js';
import type { Judgement } from './judge.js';
import type { CanaryConfig } from './schema.js';

/** Where a progression is. */
export type CanaryPhase = 'progressing' | 'paused' | 'rolled_back' | 'completed';

/** A decision, as counted in `llm_canary_decisions_total{decision}`. */
export type CanaryDecision =
  | 'start'
  | 'advance'
  | 'hold'
  | 'complete'
  | 'rollback'
  | 'pause'
  | 'resume'
  | 'promote';

/** One entry of the timeline. */
export interface TimelineEntry {
  at: number;
  decision: CanaryDecision;
  /** Short reason (the metric label): healthy, too_few_requests, error_rate, ttft_p90, itl_p90, operator, config. */
  reason: string;
  detail: string;
  /** Step index and canary share (percent) after the decision. */
  step: number;
  share: number;
  /** Repeated holds at one step are folded into one entry. */
  count: number;
}

/** The shared state of one progression. */
export interface ProgressionState {
  /** Identifies the config section it follows: a new section starts over. */
  key: string;
  /** Bumped by every change (replicas adopt the highest). */
  rev: number;
  /** Bumped when the judged data starts over (a new step, a resume). */
  epoch: number;
  phase: CanaryPhase;
  step: number;
  /** Canary share in percent now. */
  share: number;
  stepStartedAt: number;
  /** When the current step is judged next. */
  judgeAt: number;
  /** Why the phase is what it is (the last decision's detail). */
  reason: string;
  timeline: TimelineEntry[];
}

const TIMELINE_MAX = 50;

/** The key of a canary section: its canonical JSON. */
export function canaryKey(cfg: CanaryConfig): string {
  return JSON.stringify(cfg, Object.keys(cfg).sort());
}

/** A fresh progression at the first step. */
export function startProgression(cfg: CanaryConfig, now: number): ProgressionState {
  const share = cfg.steps[0] ?? 100;
  const s: ProgressionState = {
    key: canaryKey(cfg),
    rev: 1,
    epoch: 1,
    phase: share >= 100 ? 'completed' : 'progressing',
    step: 0,
    share,
    stepStartedAt: now,
    judgeAt: now + cfg.interval_ms,
    reason: 'started from the config',
    timeline: [],
  };
  push(s, { at: now, decision: 'start', reason: 'config', detail: s.reason, step: 0, share, count: 1 });
  return s;
}

function push(s: ProgressionState, e: TimelineEntry): void {
  const last = s.timeline[s.timeline.length - 1];
  if (e.decision === 'hold' && last?.decision === 'hold' && last.step === e.step) {
    last.count++;
    last.at = e.at;
    last.detail = e.detail;
    return;
  }
  s.timeline.push(e);
  if (s.timeline.length > TIMELINE_MAX) s.timeline.splice(0, s.timeline.length - TIMELINE_MAX);
}

function next(s: ProgressionState): ProgressionState {
  return { ...s, rev: s.rev + 1, timeline: s.timeline.map((e) => ({ ...e })) };
}

/** The state after a judgement of the current step, and the decision taken. */
export function applyJudgement(
  state: ProgressionState,
  cfg: CanaryConfig,
  j: Judgement,
  now: number,
): { state: ProgressionState; decision: CanaryDecision } {
  const s = next(state);
  let decision: CanaryDecision;
  if (j.verdict === 'hold') {
    decision = 'hold';
    s.judgeAt = now + cfg.interval_ms;
  } else if (j.verdict === 'fail') {
    decision = cfg.on_failure === 'rollback' ? 'rollback' : 'pause';
    s.phase = cfg.on_failure === 'rollback' ? 'rolled_back' : 'paused';
    if (decision === 'rollback') s.share = 0;
  } else {
    const step = s.step + 1;
    const share = cfg.steps[step] ?? 100;
    s.step = Math.min(step, cfg.steps.length - 1);
    s.share = share;
    s.epoch++;
    s.stepStartedAt = now;
    s.judgeAt = now + cfg.interval_ms;
    decision = share >= 100 ? 'complete' : 'advance';
    if (share >= 100) s.phase = 'completed';
  }
  s.reason = j.detail;
  push(s, { at: now, decision, reason: j.reason, detail: j.detail, step: s.step, share: s.share, count: 1 });
  return { state: s, decision };
}

/** An operator's action. */
export type CanaryAction = 'pause' | 'resume' | 'promote' | 'rollback';

/** The state after an operator's action; throws a RangeError naming why it cannot apply. */
export function applyAction(
  state: ProgressionState,
  cfg: CanaryConfig,
  action: CanaryAction,
  now: number,
): { state: ProgressionState; decision: CanaryDecision } {
  const s = next(state);
  const detail = `${action} by the operator`;
  switch (action) {
    case 'pause':
      if (s.phase !== 'progressing') throw new RangeError(`cannot pause: the canary is ${s.phase}`);
      s.phase = 'paused';
      break;
    case 'resume':
      if (s.phase === 'progressing') throw new RangeError('cannot resume: the canary is progressing');
      if (s.phase === 'completed') throw new RangeError('cannot resume: the canary is complete');
      if (s.phase === 'rolled_back') {
        // Start over from the first step: the canary proved bad at some share.
        s.step = 0;
        s.share = cfg.steps[0] ?? 100;
      }
      s.phase = 'progressing';
      s.epoch++;
      s.stepStartedAt = now;
      s.judgeAt = now + cfg.interval_ms;
      break;
    case 'promote':
      if (s.phase === 'completed') throw new RangeError('cannot promote: the canary is complete');
      s.phase = 'completed';
      s.share = 100;
      s.step = cfg.steps.length - 1;
      break;
    case 'rollback':
      if (s.phase === 'rolled_back') throw new RangeError('cannot roll back: the canary is rolled back');
      s.phase = 'rolled_back';
      s.share = 0;
      break;
  }
  s.reason = detail;
  push(s, { at: now, decision: action, reason: 'operator', detail, step: s.step, share: s.share, count: 1 });
  return { state: s, decision: action };
}

/**
 * The weights requests are routed by: the file's weights with the canary and
 * its baseline sharing their combined weight by the progression's share.
 * Other versions keep their weights. The file's combined weight of the two
 * (or 100 when both are 0) is split, so a 5 % step of 100 + 0 is 95 / 5.
 */
export function effectiveWeights(
  model: ModelConfig,
  cfg: CanaryConfig,
  share: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [v, c] of Object.entries(model.versions)) out[v] = c.weight;
  const total = (out[cfg.version] ?? 0) + (out[cfg.baseline] ?? 0) || 100;
  out[cfg.version] = (total * share) / 100;
  out[cfg.baseline] = total - (total * share) / 100;
  return out;
}
