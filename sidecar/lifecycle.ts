/**
 * How a sidecar stops. `drain` is what SIGTERM does: the pod reports
 * draining and refuses new work at once, running streams may finish within
 * the grace period, and those still running shortly before it ends are
 * handed back to the router (`UNAVAILABLE` + `x-llmmesh-handback: draining`,
 * engine requests aborted) so that it continues them elsewhere: nothing is
 * cancelled. `close` stops at once.
 */
import type { Logger } from '../common/log.js';
import type { GenerateHandler } from './generate/handler.js';
import { DEFAULT_DRAIN_GRACE_MS, handbackDelayMs } from './options.js';
import type { PodState } from './pod-state.js';

/** What stopping needs. */
export interface LifecycleDeps {
  pod: PodState;
  generate: GenerateHandler;
  /** Hand-back margin (see {@link handbackDelayMs}). */
  handbackMs?: number;
  logger: Logger;
  /** Stops everything, giving calls still open `graceMs` to end. */
  finish(graceMs: number): Promise<void>;
  /** Counts for the log line. */
  load(): { inFlight: number; queued: number };
}

/** Drain and close of one sidecar; either settles the same shutdown. */
export function createLifecycle(deps: LifecycleDeps): {
  drain(graceMs?: number): Promise<void>;
  close(): Promise<void>;
} {
  const { pod, generate, logger: log } = deps;
  let closing: Promise<void> | undefined;
  // close() during a drain cuts the grace period short.
  let force: () => void = () => {};
  const forced = new Promise<'forced'>((resolve) => {
    force = () => resolve('forced');
  });

  /** Lets streams run until the hand-back point, hands back the rest, and waits for them to end. */
  const drainStreams = async (graceMs: number): Promise<'idle' | 'forced' | 'timeout'> => {
    const start = Date.now();
    const timers: NodeJS.Timeout[] = [];
    const after = (ms: number) =>
      new Promise<'timeout'>((resolve) => {
        timers.push(setTimeout(() => resolve('timeout'), ms));
      });
    const idle = () => generate.idle().then(() => 'idle' as const);
    try {
      const first = await Promise.race([idle(), forced, after(handbackDelayMs(graceMs, deps.handbackMs))]);
      if (first !== 'timeout') return first;
      const handedBack = generate.handBack('draining');
      log.warn('drain grace period nearly over; handing streams back to the router', { handedBack });
      return await Promise.race([idle(), forced, after(Math.max(0, graceMs - (Date.now() - start)))]);
    } finally {
      for (const t of timers) clearTimeout(t);
    }
  };

  return {
    drain(graceMs = DEFAULT_DRAIN_GRACE_MS) {
      closing ??= (async () => {
        const deadline = Date.now() + graceMs;
        pod.startDraining();
        log.info('draining', { ...deps.load(), graceMs });
        const outcome = await drainStreams(graceMs);
        if (outcome === 'timeout') {
          log.warn('drain grace period over; cancelling what is left', { active: generate.active });
        }
        await deps.finish(outcome === 'idle' ? Math.max(0, deadline - Date.now()) : 0);
        log.info('drained');
      })();
      return closing;
    },
    close() {
      force();
      closing ??= (async () => {
        pod.startDraining();
        await deps.finish(0);
      })();
      return closing;
    },
  };
}
