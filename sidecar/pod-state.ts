/**
 * The one owner of the pod's serving state: whether it takes new work
 * (`ready`), whether it is draining, and why not. Everything that shows or
 * acts on that state (load reports, gRPC health, `/readyz`, metrics, the
 * refusal of new calls) reads it here, so they never disagree.
 */
import type { EngineState } from './load/engine-prober.js';

/** Why new calls are refused. */
export interface Refusal {
  reason: 'draining' | 'not_ready';
  message: string;
}

/** The pod's serving state. */
export interface PodState {
  /** The engine is ready and the pod is not draining: new calls are served. */
  readonly ready: boolean;
  readonly draining: boolean;
  /** Why the pod is not ready (`draining`, or the engine's reason); empty when ready. */
  readonly reason: string;
  /** Why a new call is refused now, or undefined when it is served. */
  refusal(): Refusal | undefined;
  /** Starts draining (idempotent); listeners see the change at once. */
  startDraining(): void;
  /** The engine's readiness may have changed: notify listeners when `ready` did. */
  engineChanged(): void;
  /** Called whenever `ready` or `draining` flips. */
  onChange(listener: (state: PodState) => void): void;
}

/** Creates the state over the engine prober's state; `engineLabel` names the engine in messages. */
export function createPodState(engine: () => Readonly<EngineState>, engineLabel: string): PodState {
  let draining = false;
  const listeners: Array<(state: PodState) => void> = [];
  let lastReady: boolean | undefined;

  const state: PodState = {
    get ready() {
      return engine().ready && !draining;
    },
    get draining() {
      return draining;
    },
    get reason() {
      if (draining) return 'draining';
      const e = engine();
      return e.ready ? '' : e.reason;
    },
    refusal() {
      if (draining) return { reason: 'draining', message: `sidecar for ${engineLabel} is draining` };
      const e = engine();
      if (!e.ready) return { reason: 'not_ready', message: e.reason };
      return undefined;
    },
    startDraining() {
      if (draining) return;
      draining = true;
      notify(true);
    },
    engineChanged() {
      notify(false);
    },
    onChange(listener) {
      listeners.push(listener);
    },
  };

  const notify = (force: boolean) => {
    const ready = state.ready;
    if (!force && ready === lastReady) return;
    lastReady = ready;
    for (const l of listeners) l(state);
  };
  lastReady = state.ready;
  return state;
}
