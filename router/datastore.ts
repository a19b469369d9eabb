/**
 * The router's state that follows the config: the config in force, the
 * schedulers built from its profiles, and the discovery that feeds the
 * endpoint set. A new config is applied all or nothing: everything that can
 * fail is built before anything is swapped, so a rejected config leaves the
 * last good one serving untouched.
 */
import { ConfigError } from './config/load.js';
import { profileFor, type RouterConfig } from './config/schema.js';
import { createDiscovery, type Discovery, type DiscoveryDeps, sameDiscovery } from './discovery/discovery.js';
import { createScheduler, type PluginTimer, type Scheduler } from './scheduling/profile.js';
import { type PluginRegistry, profileProblems } from './scheduling/registry.js';

/** One config and the schedulers built from it; a request takes one and keeps it. */
export interface ConfigState {
  readonly config: RouterConfig;
  /** The scheduler of `model`'s profile, or undefined for an unknown model. */
  scheduler(model: string): Scheduler | undefined;
}

/** The config in force and what is built from it. */
export interface Datastore {
  /** The config in force. */
  config(): RouterConfig;
  /** The config in force with its schedulers (a reload mid-request changes nothing for it). */
  state(): ConfigState;
  /**
   * Makes `next` the config in force. Throws a {@link ConfigError} (and changes
   * nothing) when it cannot be applied; `onApplied` runs after the swap.
   */
  apply(next: RouterConfig): void;
  close(): Promise<void>;
}

/** What the datastore needs. */
export interface DatastoreDeps {
  registry: PluginRegistry;
  random: () => number;
  pluginTimer: PluginTimer;
  discovery: DiscoveryDeps;
  /** Applies the parts of `next` other objects own (gate, breakers, budgets, admission). */
  onApplied: (next: RouterConfig, before: RouterConfig) => void;
}

/** Creates the datastore for `config` and starts its discovery. */
export function createDatastore(config: RouterConfig, deps: DatastoreDeps): Datastore {
  const build = (cfg: RouterConfig): ConfigState => {
    const byProfile = new Map<string, Scheduler>();
    const byModel = new Map<string, Scheduler>();
    const pluginDeps = {
      random: deps.random,
      saturationQueueDepth: cfg.admission.saturation_queue_depth,
      maxEjectionPercent: cfg.breaker.max_ejection_percent,
      prefixBalance: {
        absThreshold: cfg.prefix_balance.abs,
        relThreshold: cfg.prefix_balance.rel,
        minRequests: cfg.prefix_balance.requests,
        prefillTokensPerRequest: cfg.prefix_balance.prefill_tokens_per_request,
      },
    };
    for (const model of Object.keys(cfg.models)) {
      const { name, profile } = profileFor(cfg, model);
      let scheduler = byProfile.get(name);
      if (!scheduler) {
        // Checked against the registry this router runs with (it may hold more than the built-ins).
        const problems = profileProblems(deps.registry, `profiles.${name}`, profile);
        if (problems.length > 0) throw new ConfigError('<config>', problems);
        try {
          scheduler = createScheduler(name, profile, deps.registry, pluginDeps, deps.pluginTimer);
        } catch (err) {
          throw new ConfigError('<config>', [`profiles.${name}: ${(err as Error).message}`]);
        }
        byProfile.set(name, scheduler);
      }
      byModel.set(model, scheduler);
    }
    return { config: cfg, scheduler: (model) => byModel.get(model) };
  };

  let current = build(config);
  let discovery: Discovery = createDiscovery(config.discovery, deps.discovery);

  return {
    config: () => current.config,
    state: () => current,
    apply(next) {
      // Schedulers (what a bad profile breaks) are built before anything is swapped.
      const nextState = build(next);
      const before = current;
      current = nextState;
      let newDiscovery: Discovery | undefined;
      try {
        deps.onApplied(next, before.config);
        if (!sameDiscovery(before.config.discovery, next.discovery)) {
          newDiscovery = createDiscovery(next.discovery, deps.discovery);
        }
      } catch (err) {
        // Put the last good config back everywhere it went.
        current = before;
        deps.onApplied(before.config, next);
        throw err;
      }
      if (newDiscovery) {
        void discovery.close();
        discovery = newDiscovery;
      }
    },
    close: () => discovery.close(),
  };
}
