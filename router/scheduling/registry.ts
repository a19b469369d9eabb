/**
 * The plugin registry: factories by kebab-case type name, one map per kind.
 * Profiles in the config name plugins by these types.
 */
import type { ProfileConfig } from '../config/schema.js';
import {
  createBelowLimitFilter,
  createCircuitClosedFilter,
  createNotDrainingFilter,
  createNotSaturatedFilter,
  createReadyFilter,
} from './filters.js';
import {
  createMaxScorePicker,
  createP2cPicker,
  createRandomPicker,
  createRoundRobinPicker,
} from './pickers.js';
import {
  createKvCacheScorer,
  createLeastRequestScorer,
  createPrefixCacheScorer,
  createPrefixSpreadScorer,
  createQueueDepthScorer,
  createRoundRobinScorer,
  createSessionAffinityScorer,
} from './scorers.js';
import type { Filter, Picker, PluginDeps, Scorer } from './types.js';

/** Makes a plugin instance (instances may keep state, e.g. a round-robin turn). */
export type PluginFactory<T> = (deps: PluginDeps) => T;

/** Plugin factories by type name. */
export interface PluginRegistry {
  registerFilter(type: string, factory: PluginFactory<Filter>): void;
  registerScorer(type: string, factory: PluginFactory<Scorer>): void;
  registerPicker(type: string, factory: PluginFactory<Picker>): void;
  filter(type: string, deps: PluginDeps): Filter;
  scorer(type: string, deps: PluginDeps): Scorer;
  picker(type: string, deps: PluginDeps): Picker;
  /** Registered type names by kind. */
  types(): { filters: string[]; scorers: string[]; pickers: string[] };
  /** True when a plugin of that kind and type is registered. */
  has(kind: 'filter' | 'scorer' | 'picker', type: string): boolean;
}

const KEBAB = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

/** An empty registry. */
export function createPluginRegistry(): PluginRegistry {
  const filters = new Map<string, PluginFactory<Filter>>();
  const scorers = new Map<string, PluginFactory<Scorer>>();
  const pickers = new Map<string, PluginFactory<Picker>>();
  const register = <T>(
    kind: string,
    map: Map<string, PluginFactory<T>>,
    type: string,
    f: PluginFactory<T>,
  ) => {
    if (!KEBAB.test(type)) throw new Error(`${kind} type "${type}" must be kebab-case`);
    if (map.has(type)) throw new Error(`${kind} type "${type}" is already registered`);
    map.set(type, f);
  };
  const make = <T>(kind: string, map: Map<string, PluginFactory<T>>, type: string, deps: PluginDeps) => {
    const f = map.get(type);
    if (!f) throw new Error(`unknown ${kind} "${type}" (known: ${[...map.keys()].join(', ')})`);
    return f(deps);
  };
  return {
    registerFilter: (t, f) => register('filter', filters, t, f),
    registerScorer: (t, f) => register('scorer', scorers, t, f),
    registerPicker: (t, f) => register('picker', pickers, t, f),
    filter: (t, d) => make('filter', filters, t, d),
    scorer: (t, d) => make('scorer', scorers, t, d),
    picker: (t, d) => make('picker', pickers, t, d),
    types: () => ({
      filters: [...filters.keys()],
      scorers: [...scorers.keys()],
      pickers: [...pickers.keys()],
    }),
    has: (kind, type) => (kind === 'filter' ? filters : kind === 'scorer' ? scorers : pickers).has(type),
  };
}

/** A registry holding every built-in plugin (the types the config schema accepts). */
export function createBuiltinRegistry(): PluginRegistry {
  const r = createPluginRegistry();
  r.registerFilter('ready', createReadyFilter);
  r.registerFilter('not-draining', createNotDrainingFilter);
  r.registerFilter('circuit-closed', createCircuitClosedFilter);
  r.registerFilter('not-saturated', createNotSaturatedFilter);
  r.registerFilter('below-limit', createBelowLimitFilter);
  r.registerScorer('least-request', createLeastRequestScorer);
  r.registerScorer('queue-depth', createQueueDepthScorer);
  r.registerScorer('kv-cache', createKvCacheScorer);
  r.registerScorer('prefix-cache', createPrefixCacheScorer);
  r.registerScorer('prefix-spread', createPrefixSpreadScorer);
  r.registerScorer('session-affinity', createSessionAffinityScorer);
  r.registerScorer('round-robin', createRoundRobinScorer);
  r.registerPicker('max-score', createMaxScorePicker);
  r.registerPicker('p2c', createP2cPicker);
  r.registerPicker('random', createRandomPicker);
  r.registerPicker('round-robin', createRoundRobinPicker);
  return r;
}

/**
 * Problems with a profile's plugin types against `registry`, one line per
 * unknown type, each naming its config path under `path` (e.g.
 * `profiles.fast.scorers[1].type: unknown scorer "magic" (known: …)`).
 */
export function profileProblems(registry: PluginRegistry, path: string, profile: ProfileConfig): string[] {
  const known = registry.types();
  const out: string[] = [];
  const unknown = (kind: string, type: string, list: string[]) =>
    `unknown ${kind} "${type}" (known: ${list.join(', ')})`;
  profile.filters.forEach((t, i) => {
    if (!registry.has('filter', t)) out.push(`${path}.filters[${i}]: ${unknown('filter', t, known.filters)}`);
  });
  profile.scorers.forEach((s, i) => {
    if (!registry.has('scorer', s.type))
      out.push(`${path}.scorers[${i}].type: ${unknown('scorer', s.type, known.scorers)}`);
  });
  if (!registry.has('picker', profile.picker))
    out.push(`${path}.picker: ${unknown('picker', profile.picker, known.pickers)}`);
  return out;
}
