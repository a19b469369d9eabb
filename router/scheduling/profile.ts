/**
 * A scheduling profile: filters → weighted scorers → one picker, composed
 * from config and run over a pool's immutable snapshot. Each plugin's time is
 * measured; the decision keeps candidates and scores for tracing.
 */
import { performance } from 'node:perf_hooks';
import type { ProfileConfig } from '../config/schema.js';
import { failurePenalty, preferHealthy } from './health.js';
import { noteAssignment } from './load.js';
import type { PluginRegistry } from './registry.js';
import { zeroScores } from './scores.js';
import type {
  CandidateTrace,
  Filter,
  Picker,
  PluginDeps,
  SchedulingDecision,
  SchedulingEndpoint,
  SchedulingRequest,
  Scorer,
} from './types.js';

const EMPTY_SCORES: ArrayLike<number> = Object.freeze([]);

/** The `filtered` entry of the health step every profile runs after its filters. */
export const HEALTH_STEP = 'prefer-healthy';

/** A profile ready to schedule. */
export interface Scheduler {
  readonly name: string;
  /** True when the profile filters on breaker state (so a kept open endpoint is a deliberate, forced try). */
  readonly filtersBreakers: boolean;
  /**
   * Picks an endpoint of `pool` for `req`. The pick is counted against the
   * endpoint's load (its prompt too) until the endpoint's next report.
   */
  schedule<E extends SchedulingEndpoint>(req: SchedulingRequest, pool: readonly E[]): SchedulingDecision<E>;
}

/** Called with each plugin's duration (e.g. to feed a histogram). */
export type PluginTimer = (profile: string, plugin: string, ms: number) => void;

/** Builds a profile's plugins from the registry. Throws on an unknown type. */
export function createScheduler(
  name: string,
  config: ProfileConfig,
  registry: PluginRegistry,
  deps: PluginDeps,
  onPluginTime?: PluginTimer,
): Scheduler {
  const filters: Filter[] = config.filters.map((t) => registry.filter(t, deps));
  const scorers: Array<{ scorer: Scorer; weight: number }> = config.scorers.map((s) => ({
    scorer: registry.scorer(s.type, deps),
    weight: s.weight,
  }));
  const picker: Picker = registry.picker(config.picker, deps);
  /** Plugin keys in the order a decision times them: filters, scorers, picker. */
  const pluginKeys = [
    ...filters.map((f) => `filter/${f.type}`),
    ...scorers.map((s) => `scorer/${s.scorer.type}`),
    `picker/${picker.type}`,
  ];
  /** The `filtered` steps in order: filters, then the health step. */
  const stepTypes = [...filters.map((f) => f.type), HEALTH_STEP];
  const plan: Plan = {
    name,
    scorerTypes: scorers.map((s) => s.scorer.type),
    pluginKeys,
    stepTypes,
  };

  return {
    name,
    filtersBreakers: filters.some((f) => f.ejectsOpenBreakers === true),
    schedule<E extends SchedulingEndpoint>(
      req: SchedulingRequest,
      pool: readonly E[],
    ): SchedulingDecision<E> {
      // One clock read between two plugins ends the one and starts the next.
      const started = performance.now();
      let t = started;
      // Times and counts as numbers; the records that name them are built when read (traces).
      const times = new Array<number>(pluginKeys.length);
      const remaining = new Array<number>(stepTypes.length);
      // Filters only remove endpoints: what they return is still a list of E.
      let candidates = pool as readonly E[];
      for (let i = 0; i < filters.length; i++) {
        candidates = (filters[i] as Filter).filter(req, candidates) as readonly E[];
        const t1 = performance.now();
        times[i] = t1 - t;
        t = t1;
        remaining[i] = candidates.length;
      }
      // Retries never go back to an endpoint already tried. Applied after the
      // filters so that shares (breaker ejection) are of the whole pool.
      if (req.exclude.size > 0) candidates = candidates.filter((e) => !req.exclude.has(e.address));
      // Every profile: recent failures make an endpoint worse (see health.ts).
      candidates = preferHealthy(candidates);
      remaining[filters.length] = candidates.length;

      const totals = zeroScores(candidates.length);
      const scoreLists: ArrayLike<number>[] = [];
      t = performance.now();
      for (let s = 0; s < scorers.length; s++) {
        const { scorer, weight } = scorers[s] as { scorer: Scorer; weight: number };
        const scores = candidates.length > 0 ? scorer.score(req, candidates) : EMPTY_SCORES;
        for (let i = 0; i < candidates.length; i++)
          totals[i] = (totals[i] as number) + weight * (scores[i] as number);
        const t1 = performance.now();
        times[filters.length + s] = t1 - t;
        t = t1;
        scoreLists.push(scores);
      }
      for (let i = 0; i < candidates.length; i++) {
        const p = failurePenalty(candidates[i] as E);
        if (p > 0) totals[i] = (totals[i] as number) * (1 - p);
      }
      t = performance.now();
      const index = candidates.length > 0 ? picker.pick(candidates, totals) : -1;
      times[pluginKeys.length - 1] = performance.now() - t;
      const picked = index >= 0 ? candidates[index] : undefined;
      if (picked) noteAssignment(picked, req.promptChars ?? 0);
      if (onPluginTime)
        for (let k = 0; k < pluginKeys.length; k++)
          onPluginTime(name, pluginKeys[k] as string, times[k] as number);
      const totalMs = performance.now() - started;
      return new Decision(
        plan,
        picked,
        pool.length,
        totalMs,
        candidates,
        totals,
        scoreLists,
        times,
        remaining,
      );
    },
  };
}

/** What every decision of one profile shares: the names its records are built with. */
interface Plan {
  readonly name: string;
  readonly scorerTypes: readonly string[];
  readonly pluginKeys: readonly string[];
  readonly stepTypes: readonly string[];
}

/**
 * A decision. A class, not an object literal with getter closures: each such
 * literal gets its own accessor pairs and so its own hidden class, which old
 * space holds until a full collection, and through it the decision's closure
 * context (candidates, score lists) survives every scavenge in between.
 */
class Decision<E extends SchedulingEndpoint> implements SchedulingDecision<E> {
  #filtered: Array<{ type: string; remaining: number }> | undefined;
  #pluginMs: Record<string, number> | undefined;

  constructor(
    private readonly plan: Plan,
    readonly picked: E | undefined,
    readonly poolSize: number,
    readonly totalMs: number,
    private readonly list: readonly E[],
    private readonly totals: ArrayLike<number>,
    private readonly scoreLists: ReadonlyArray<ArrayLike<number>>,
    private readonly times: ArrayLike<number>,
    private readonly remaining: ArrayLike<number>,
  ) {}

  get profile(): string {
    return this.plan.name;
  }

  get filtered(): ReadonlyArray<{ type: string; remaining: number }> {
    this.#filtered ??= this.plan.stepTypes.map((type, k) => ({
      type,
      remaining: this.remaining[k] as number,
    }));
    return this.#filtered;
  }

  get pluginMs(): Readonly<Record<string, number>> {
    if (!this.#pluginMs) {
      const keys = this.plan.pluginKeys;
      const out: Record<string, number> = {};
      for (let k = 0; k < keys.length; k++) out[keys[k] as string] = this.times[k] as number;
      this.#pluginMs = out;
    }
    return this.#pluginMs;
  }

  candidates(): CandidateTrace[] {
    const types = this.plan.scorerTypes;
    return this.list.map((e, i) => ({
      address: e.address,
      scores: Object.fromEntries(
        types.map((t, k) => [t, (this.scoreLists[k] as ArrayLike<number>)[i] as number]),
      ),
      penalty: failurePenalty(e),
      total: this.totals[i] as number,
    }));
  }

  toJSON(): unknown {
    return {
      profile: this.plan.name,
      picked: this.picked?.address ?? null,
      poolSize: this.poolSize,
      filtered: this.filtered,
      candidates: this.candidates(),
      pluginMs: this.pluginMs,
      totalMs: this.totalMs,
    };
  }
}
