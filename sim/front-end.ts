/**
 * The API-server front end of a vLLM deployment, apart from the GPU: one
 * Python process that parses each HTTP request, applies the chat template,
 * tokenises, hands the request to the engine core, and then detokenises and
 * streams every token the engine core sends back. It runs on one CPU, so under
 * a burst its work queues: new requests wait behind earlier ones before the
 * engine even sees them, and tokens the GPU has already produced wait behind
 * that intake before they reach the client.
 *
 * The model is one first-come first-served server on the simulator's clock.
 * Its costs are simulated milliseconds, multiplied by the time scale like
 * every step, so nothing here burns real CPU; at time scale 0 it costs nothing.
 */
import type { SimClock } from './clock.js';

/** CPU cost of the API server, per request and per streamed token (simulated ms). */
export interface FrontEndCosts {
  /** Per request before the engine sees it: HTTP, chat template, tokenisation, hand-off. */
  requestMs: number;
  /**
   * The request's intake is this many equal stages (default 1), each queued
   * anew when the one before ends. vLLM's API server is one asyncio event
   * loop: a request's handler awaits between parsing, the chat template,
   * tokenisation and the hand-off to the engine core, and each await puts it
   * at the back of the loop's ready queue. Under a burst every request does
   * its first stage before any does its second, so the whole burst reaches
   * the engine together near the end of the intake, not one by one.
   */
  requestStages?: number;
  /**
   * Per output token, in the output handler that takes each step's outputs
   * from the engine core: detokenise and hand the token to its request. With
   * no `chunkMs`, this also covers building and writing its chunk.
   */
  outputTokenMs: number;
  /**
   * Per streamed event (SSE chunk): the request's generator wakes up, builds
   * the response chunk, serialises and writes it. Tokens the output handler
   * hands over while a request's chunk still waits for the CPU join that
   * chunk, as vLLM's per-request output collector merges deltas when its
   * consumer is behind; so a backlogged front end sends fewer, larger chunks.
   * Absent or 0: each step's tokens reach the client as the handler ends.
   */
  chunkMs?: number;
}

/** A first-come first-served queue of CPU work on the simulator's clock. */
export interface FrontEndQueue {
  /**
   * Queues `costMs` of work behind everything queued before it and calls
   * `done` when it is complete; synchronously when it costs nothing and the
   * queue is idle. Returns a function that cancels the callback.
   */
  run(costMs: number, done: () => void): () => void;
  /** Simulated ms of queued work not yet done, at the clock's current time. */
  backlogMs(): number;
}

interface Job {
  endMs: number;
  done: (() => void) | undefined;
}

/** Creates the queue; `timeScale` multiplies every cost, as it does every step. */
export function createFrontEndQueue(clock: SimClock, timeScale: number): FrontEndQueue {
  // When the CPU is next free, on the clock's timeline. Jobs end in the order they were queued.
  let freeAtMs = Number.NEGATIVE_INFINITY;
  // Jobs not yet done, in order; one timer, for the first, however many wait (a burst of thousands).
  const jobs: Job[] = [];
  let head = 0;
  let timerSet = false;

  const arm = () => {
    while (head < jobs.length && jobs[head]!.done === undefined) head++;
    if (head >= jobs.length) {
      jobs.length = 0;
      head = 0;
      return;
    }
    timerSet = true;
    clock.schedule(jobs[head]!.endMs - clock.now(), fire);
  };
  const fire = () => {
    timerSet = false;
    const now = clock.now();
    while (head < jobs.length && jobs[head]!.endMs <= now) {
      const job = jobs[head++]!;
      const done = job.done;
      job.done = undefined;
      done?.();
    }
    if (!timerSet) arm();
  };

  return {
    run(costMs, done) {
      const now = clock.now();
      const end = Math.max(now, freeAtMs) + costMs * timeScale;
      freeAtMs = end;
      if (end <= now) {
        done();
        return () => {};
      }
      const job: Job = { endMs: end, done };
      jobs.push(job);
      if (!timerSet) arm();
      return () => {
        job.done = undefined;
      };
    },
    backlogMs: () => Math.max(0, freeAtMs - clock.now()),
  };
}
