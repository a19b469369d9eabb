/**
 * Pure pieces of the canary analysis: what a finished request says about its
 * version, and a model's progression as `/status.json` shows it.
 */
import type { ModelConfig } from '../config/schema.js';
import { classifyFailure, FAILURE_POLICY, type OutcomeKind } from '../request/failure-policy.js';
import { type CanaryPhase, effectiveWeights } from './progression.js';
import { emptyStats, summarize, type VersionStats } from './stats.js';
import type { CanaryModelStatus, FinishedRequest, ModelRun } from './types.js';

/**
 * Whether a finished request met an endpoint fault (hidden by a retry or
 * not); undefined when it says nothing about its version (the client's own
 * doing: bad input, cancelling).
 */
export function versionFault(f: FinishedRequest): boolean | undefined {
  const attemptFault = f.rt.attempts.some(
    (a) => a.kind && FAILURE_POLICY[a.kind as OutcomeKind]?.endpointFault,
  );
  if (f.error === undefined) return attemptFault;
  const kind = classifyFailure(f.error, { clientCancelled: f.cancelled, deadlinePassed: false }).kind;
  if ((kind === 'client-fault' || kind === 'cancelled') && !attemptFault) return undefined;
  return attemptFault || FAILURE_POLICY[kind].endpointFault;
}

/** Adds a finished request to a version's statistics. */
export function addFinished(
  s: VersionStats,
  f: FinishedRequest,
  fault: boolean,
  cost: number | undefined,
): void {
  s.requests++;
  if (fault) s.faults++;
  if (f.usage) {
    s.inputTokens += f.usage.promptTokens;
    s.outputTokens += f.usage.completionTokens;
  }
  s.streamSeconds += f.streamSeconds;
  if (cost !== undefined) s.cost += cost;
}

/** A model's progression as `/status.json` shows it. */
export function modelStatusOf(
  model: string,
  r: ModelRun,
  m: ModelConfig | undefined,
  at: { sharing: CanaryModelStatus['sharing']; phase: CanaryPhase; now: number },
): CanaryModelStatus {
  const { sharing, phase } = at;
  const fileWeights = Object.fromEntries(Object.entries(m?.versions ?? {}).map(([v, c]) => [v, c.weight]));
  return {
    model,
    version: r.cfg.version,
    baseline: r.cfg.baseline,
    phase,
    reason:
      sharing === 'redis-unavailable' && r.state.phase === 'progressing'
        ? 'shared state (Redis) unreachable: paused at this step until it returns'
        : r.state.reason,
    step: r.state.step,
    steps: r.cfg.steps,
    share: r.state.share,
    weights: m ? effectiveWeights(m, r.cfg, r.state.share) : {},
    fileWeights,
    intervalMs: r.cfg.interval_ms,
    minRequests: r.cfg.min_requests,
    maxErrorRateIncrease: r.cfg.max_error_rate_increase,
    maxTtftP90Ratio: r.cfg.max_ttft_p90_ratio,
    maxItlP90Ratio: r.cfg.max_itl_p90_ratio,
    onFailure: r.cfg.on_failure,
    nextJudgementInMs: phase === 'progressing' ? Math.max(0, r.state.judgeAt - at.now) : null,
    sharing,
    judge: sharing === 'local' ? true : r.leader,
    current: {
      canary: summarize(r.stats.get(r.cfg.version) ?? emptyStats()),
      baseline: summarize(r.stats.get(r.cfg.baseline) ?? emptyStats()),
    },
    lastJudgement: r.lastJudgement,
    timeline: r.state.timeline,
  };
}
