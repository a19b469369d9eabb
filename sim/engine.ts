/**
 * The simulated inference engine: a scheduler in the shape of vLLM V1's. Every
 * request has tokens (prompt, then output) and a count of tokens whose KV is
 * computed. Each step gives every running request the tokens it still lacks
 * (one, when decoding), within a per-step token budget, admits waiting
 * requests first-come first-served while `maxNumSeqs` and the KV cache allow,
 * and preempts the most recent running request when a running one needs a
 * block and none is free. A request whose tokens are all computed at the end of
 * a step samples its next token. How long a step takes is the cost model's
 * business; when each token is emitted follows from that alone.
 */
import type { CancelTimer, SimClock } from './clock.js';
import type { StepBatch, StepCostModel } from './cost-model.js';
import { createFrontEndQueue, type FrontEndCosts } from './front-end.js';
import { extendBlockHashes, type KvCacheManager } from './kv-cache.js';
import type { TokenSource } from './text-generator.js';

/** Why a request ended. */
export type FinishReason = 'stop' | 'length' | 'abort';

/** Steps later than this behind their planned time restart the schedule from now instead of catching up. */
const MAX_CATCH_UP_MS = 100;

/**
 * Steps already due (time scale 0, or catching up) run back to back in one
 * turn of the event loop, at most this many, before yielding to I/O. Their
 * tokens then leave in one socket write per response instead of one per step,
 * which is what lets one process stream tens of thousands of tokens a second.
 */
export const MAX_STEPS_PER_TURN = 8;

/** A request as the engine needs it. */
export interface EngineRequestSpec {
  /** Unique id (vLLM's engine request id). */
  id: string;
  promptTokenIds: readonly number[];
  /** Output tokens at most; at least 1. */
  maxTokens: number;
  /** The token to emit at each output position. */
  nextToken: TokenSource;
  /**
   * Sees each sampled token before the engine decides whether the request is
   * finished; returning true ends it with `stop` (stop strings live here).
   */
  checkStop?: (tokenId: number) => boolean;
}

/** One emitted token. */
export interface EngineOutput {
  tokenId: number;
  /** Position in the output, from 0. */
  index: number;
  /** Set on the request's last token. */
  finishReason: Exclude<FinishReason, 'abort'> | null;
  /** Prompt tokens found in the prefix cache when the request was first scheduled. */
  numCachedTokens: number;
}

/** Receives a request's tokens. Not called for aborts: the aborting caller knows. */
export interface EngineListener {
  onToken(output: EngineOutput): void;
}

/** A submitted request. */
export interface EngineHandle {
  readonly id: string;
  /** Stops the request and frees its KV blocks. Does nothing once it finished. */
  abort(): void;
}

/** Timestamps and sizes of a finished request, for metrics. Times are clock milliseconds. */
export interface FinishedRequestStats {
  finishReason: FinishReason;
  promptTokens: number;
  generationTokens: number;
  maxTokens: number;
  arrivalMs: number;
  /** First time the request was scheduled; absent if it never left the queue. */
  scheduledMs: number | undefined;
  firstTokenMs: number | undefined;
  lastTokenMs: number | undefined;
  finishedMs: number;
}

/** Hooks for metrics; every one is optional. */
export interface EngineObserver {
  /** A request was scheduled for the first time and looked up `queriedTokens` in the prefix cache. */
  onPrefixCacheQuery?(queriedTokens: number, hitTokens: number): void;
  onPreemption?(): void;
  /** A step finished having computed `scheduledTokens` tokens. */
  onStep?(scheduledTokens: number, batch: StepBatch): void;
  /** A request emitted its first token. */
  onFirstToken?(promptTokens: number, timeToFirstTokenMs: number): void;
  /** A request emitted a token after its first. */
  onNextToken?(interTokenLatencyMs: number): void;
  onRequestFinished?(stats: FinishedRequestStats): void;
}

/** Options of {@link createEngine}. */
export interface EngineOptions {
  clock: SimClock;
  kvCache: KvCacheManager;
  costModel: StepCostModel;
  /** Requests running at once at most (vLLM's `max_num_seqs`). */
  maxNumSeqs: number;
  /** Tokens computed per step at most (vLLM's `max_num_batched_tokens`); prompts beyond it are prefilled in chunks. */
  maxNumBatchedTokens: number;
  /** Multiplies every step's duration; 0 runs steps back to back, yielding to the event loop between them. */
  timeScale: number;
  /** Read at the start of each step and multiplied into its duration (fault injection's slow factor; default 1). */
  stepTimeFactor?: () => number;
  /**
   * The API server's CPU cost (see `front-end.ts`). A request reaches the
   * scheduler only once the front end has taken it in, and each step's tokens
   * reach their listeners only once the front end has streamed them, both in
   * one first-come first-served queue. Absent: no front end, tokens leave as
   * their step ends.
   */
  frontEnd?: FrontEndCosts;
  /**
   * vLLM 0.6's multi-step scheduling (`--num-scheduler-steps`): a batch that
   * only decodes runs this many steps without admitting anyone, and its
   * tokens reach the front end together when the run ends. Default 1 (V1).
   */
  numSchedulerSteps?: number;
  /**
   * vLLM V0 without chunked prefill (as 0.6 ran with multi-step scheduling):
   * a step that admits waiting requests prefills their whole prompts and
   * nothing else, the running requests skipping it; decodes run only when no
   * prompt is admitted. Default false (V1: decodes first, prefill in the rest
   * of the budget, in chunks).
   */
  separatePrefillSteps?: boolean;
  /**
   * vLLM V0's asynchronous output processor (on by default in 0.6): the
   * outputs of a step are processed while the next step runs on the GPU and
   * reach the API server when that next step ends, so every hand-over to the
   * front end comes one step late (a prompt's first token waits for the step
   * after its prefill; a multi-step run's tokens for the step after the run).
   * When no step follows, they are handed over at once. Needs `frontEnd`;
   * default false (V1 hands a step's outputs over as it ends).
   */
  asyncOutputProcessing?: boolean;
  observer?: EngineObserver;
}

/** The engine's load at one instant. */
export interface EngineSnapshot {
  running: number;
  waiting: number;
  /** Fraction of KV blocks held by requests. */
  kvCacheUsage: number;
  numPreemptions: number;
}

/** One live request as the engine's scheduler holds it (see {@link Engine.inspect}). */
export interface EngineRequestState {
  id: string;
  /** `intake`: still in the front end's queue. */
  status: 'intake' | 'waiting' | 'running';
  promptTokens: number;
  /** Tokens whose KV is computed or taken from the prefix cache (prompt and output). */
  computedTokens: number;
  /** Output tokens produced so far. */
  outputTokens: number;
}

/** What {@link Engine.inspect} returns. */
export interface EngineInspection {
  /** Every live request: intake first, then waiting and running in the scheduler's order. */
  requests: EngineRequestState[];
  /** How long the front end's CPU is busy with work already queued (ms). */
  frontEndBacklogMs: number;
}

/** A simulated inference engine. */
export interface Engine {
  /** Queues a request; tokens arrive on `listener` asynchronously. Request ids must be unique among live requests. */
  submit(spec: EngineRequestSpec, listener: EngineListener): EngineHandle;
  snapshot(): EngineSnapshot;
  /**
   * The engine's true state at this instant, which no real router sees: for
   * a clairvoyant reference policy in benchmarks.
   */
  inspect(): EngineInspection;
  /** Drops every request (as aborted) and stops all timers. */
  shutdown(): void;
}

interface Sequence {
  spec: EngineRequestSpec;
  listener: EngineListener;
  tokens: number[];
  promptLength: number;
  numOutput: number;
  numComputed: number;
  blocks: number[];
  blockHashes: number[];
  numCommittedBlocks: number;
  /** `intake`: still in the front end's queue, unknown to the scheduler. */
  status: 'intake' | 'waiting' | 'running' | 'finished';
  /** Set when the request was aborted: its tokens still queued in the front end are dropped. */
  aborted: boolean;
  /** Cancels the front-end intake while the request is in it. */
  cancelIntake: (() => void) | undefined;
  everScheduled: boolean;
  numCachedTokens: number;
  arrivalMs: number;
  scheduledMs: number | undefined;
  firstTokenMs: number | undefined;
  lastTokenMs: number | undefined;
  /** Tokens processed by the output handler whose streamed chunk still waits for the front end's CPU. */
  pendingChunk: EngineOutput[] | undefined;
}

interface ScheduledWork {
  seq: Sequence;
  numNewTokens: number;
}

/** A token the engine produced, on its way through the front end. */
interface Delivery {
  seq: Sequence;
  output: EngineOutput;
}

/** Creates an engine. */
export function createEngine(options: EngineOptions): Engine {
  const { clock, kvCache, costModel, maxNumSeqs, maxNumBatchedTokens, timeScale, observer = {} } = options;
  const stepTimeFactor = options.stepTimeFactor ?? (() => 1);
  // At time scale 0 the front end costs nothing and changes nothing: skip its bookkeeping.
  const frontEnd = timeScale > 0 ? options.frontEnd : undefined;
  const numSchedulerSteps = options.numSchedulerSteps ?? 1;
  const separatePrefillSteps = options.separatePrefillSteps ?? false;
  const asyncOutputProcessing = options.asyncOutputProcessing ?? false;
  // Steps still to run in the current multi-step run, after the one in flight; no admission meanwhile.
  let runStepsLeft = 0;
  const frontEndQueue = frontEnd ? createFrontEndQueue(clock, timeScale) : undefined;
  const chunkMs = frontEnd?.chunkMs ?? 0;
  // Tokens of the step being completed, handed to the front end together when it ends.
  let outbox: Delivery[] = [];
  // With asynchronous output processing: tokens handed over when the step now running ends.
  let deferred: Delivery[] = [];
  const blockSize = kvCache.blockSize;
  if (!(timeScale >= 0)) throw new RangeError(`timeScale must be >= 0, got ${timeScale}`);

  const waiting: Sequence[] = [];
  // Requests still in the front end's intake queue.
  const intake = new Set<Sequence>();
  const running: Sequence[] = [];
  let numPreemptions = 0;
  let timer: CancelTimer | undefined;
  // True while a step's timer is pending (the step is "on the GPU").
  let stepInFlight = false;
  // When the last step ended on the simulated timeline; steps run back to back from there.
  let lastStepEndMs: number | undefined;
  let stopped = false;

  const reportFinished = (seq: Sequence, reason: FinishReason) =>
    observer.onRequestFinished?.({
      finishReason: reason,
      promptTokens: seq.promptLength,
      generationTokens: seq.numOutput,
      maxTokens: seq.spec.maxTokens,
      arrivalMs: seq.arrivalMs,
      scheduledMs: seq.scheduledMs,
      firstTokenMs: seq.firstTokenMs,
      lastTokenMs: seq.lastTokenMs,
      finishedMs: clock.now(),
    });

  // `report` false: the front end reports the finish once it has streamed the last token, as vLLM's does.
  const finish = (seq: Sequence, reason: FinishReason, report = true) => {
    if (seq.status === 'intake') {
      // The engine never saw it: nothing to free, nothing for its metrics.
      intake.delete(seq);
      seq.cancelIntake?.();
      seq.status = 'finished';
      seq.aborted = true;
      return;
    }
    if (seq.status === 'running') running.splice(running.indexOf(seq), 1);
    else if (seq.status === 'waiting') waiting.splice(waiting.indexOf(seq), 1);
    seq.status = 'finished';
    if (reason === 'abort') seq.aborted = true;
    kvCache.free(seq.blocks);
    if (report) reportFinished(seq, reason);
  };

  const preempt = (seq: Sequence) => {
    running.splice(running.indexOf(seq), 1);
    kvCache.free(seq.blocks);
    seq.numComputed = 0;
    seq.numCommittedBlocks = 0;
    seq.status = 'waiting';
    waiting.unshift(seq);
    numPreemptions++;
    observer.onPreemption?.();
  };

  const addToBatch = (batch: StepBatch, seq: Sequence, numNew: number) => {
    const decoding = seq.numOutput > 0 && numNew === 1 && seq.numComputed === seq.tokens.length - 1;
    if (decoding) {
      batch.decodeRequests++;
      batch.decodeContextTokens += seq.numComputed;
    } else {
      batch.prefillRequests++;
      batch.prefillTokens += numNew;
      // Σ positions numComputed .. numComputed+numNew-1.
      batch.prefillAttentionPositions += numNew * seq.numComputed + (numNew * (numNew - 1)) / 2;
    }
  };

  // Admits waiting requests first-come first-served into `work` within `budget`; returns the budget left.
  // `wholePrompts`: only a prompt that fits whole is admitted (V0 without chunked prefill).
  const admit = (work: ScheduledWork[], batch: StepBatch, budget: number, wholePrompts: boolean) => {
    const now = clock.now();
    while (waiting.length > 0 && running.length < maxNumSeqs && budget > 0) {
      const seq = waiting[0]!;
      // At most all tokens but the last can come from the cache: the last must be computed to sample.
      const cachedPrefix = kvCache.findCachedPrefix(
        seq.blockHashes,
        Math.floor((seq.tokens.length - 1) / blockSize),
      );
      const cachedTokens = cachedPrefix.length * blockSize;
      const uncached = seq.tokens.length - cachedTokens;
      if (wholePrompts && uncached > budget && work.length > 0) break;
      const numNew = Math.min(uncached, budget);
      if (!kvCache.allocate(seq.blocks, cachedTokens + numNew, cachedPrefix)) break;
      waiting.shift();
      running.push(seq);
      seq.status = 'running';
      seq.numComputed = cachedTokens;
      seq.numCommittedBlocks = cachedPrefix.length;
      if (!seq.everScheduled) {
        seq.everScheduled = true;
        seq.scheduledMs = now;
        seq.numCachedTokens = cachedTokens;
        observer.onPrefixCacheQuery?.(seq.tokens.length, cachedTokens);
      }
      work.push({ seq, numNewTokens: numNew });
      addToBatch(batch, seq, numNew);
      budget -= numNew;
    }
    return budget;
  };

  const schedule = (): ScheduledWork[] => {
    const work: ScheduledWork[] = [];
    const batch: StepBatch = {
      prefillRequests: 0,
      prefillTokens: 0,
      prefillAttentionPositions: 0,
      decodeRequests: 0,
      decodeContextTokens: 0,
    };
    let budget = maxNumBatchedTokens;
    let preempted = false;

    // V0 without chunked prefill: a step that can take a waiting prompt in prefills only.
    if (separatePrefillSteps && runStepsLeft === 0 && waiting.length > 0) {
      admit(work, batch, budget, true);
      if (work.length > 0) {
        startStep(work, batch);
        return work;
      }
    }

    // Running requests first, in admission order.
    for (let i = 0; i < running.length && budget > 0; i++) {
      const seq = running[i]!;
      const numNew = Math.min(seq.tokens.length - seq.numComputed, budget);
      let allocated = kvCache.allocate(seq.blocks, seq.numComputed + numNew);
      while (!allocated) {
        const victim = running[running.length - 1]!;
        preempt(victim);
        preempted = true;
        if (victim === seq) break;
        allocated = kvCache.allocate(seq.blocks, seq.numComputed + numNew);
      }
      if (!allocated) break;
      work.push({ seq, numNewTokens: numNew });
      addToBatch(batch, seq, numNew);
      budget -= numNew;
    }

    // Then waiting requests, unless this step had to preempt (as vLLM does); V0's were admitted above.
    if (runStepsLeft === 0 && !preempted && !separatePrefillSteps) budget = admit(work, batch, budget, false);

    if (runStepsLeft > 0) runStepsLeft--;
    else if (numSchedulerSteps > 1 && batch.prefillRequests === 0 && work.length > 0)
      runStepsLeft = numSchedulerSteps - 1;
    if (work.length > 0) startStep(work, batch);
    return work;
  };

  // Steps that may still run in the current turn, and the due step to run next in it.
  let stepsLeftThisTurn = 0;
  let dueStep: (() => void) | undefined;

  const startStep = (work: ScheduledWork[], batch: StepBatch) => {
    const now = clock.now();
    // Back to back with the previous step when the timer merely fired late; from now after a gap.
    const behind = lastStepEndMs === undefined ? Number.POSITIVE_INFINITY : now - lastStepEndMs;
    const start = behind >= 0 && behind <= MAX_CATCH_UP_MS ? (lastStepEndMs as number) : now;
    const end = start + costModel(batch) * timeScale * stepTimeFactor();
    lastStepEndMs = end;
    stepInFlight = true;
    const complete = () => completeStep(work, batch);
    if (end <= now && stepsLeftThisTurn > 0) {
      stepsLeftThisTurn--;
      dueStep = complete;
      return;
    }
    timer = clock.schedule(end - now, () => runTurn(complete));
  };

  // Runs `first`, then every step it leaves due, up to MAX_STEPS_PER_TURN.
  const runTurn = (first: () => void) => {
    stepsLeftThisTurn = MAX_STEPS_PER_TURN - 1;
    let next: (() => void) | undefined = first;
    while (next) {
      dueStep = undefined;
      next();
      next = dueStep;
    }
    stepsLeftThisTurn = 0;
  };

  const completeStep = (work: ScheduledWork[], batch: StepBatch) => {
    timer = undefined;
    stepInFlight = false;
    const now = clock.now();
    let scheduledTokens = 0;
    for (const { seq, numNewTokens } of work) {
      scheduledTokens += numNewTokens;
      // Aborted while its step ran: the result is dropped, as vLLM drops it.
      if (seq.status !== 'running') continue;
      seq.numComputed += numNewTokens;
      commitFullBlocks(seq);
      if (seq.numComputed < seq.tokens.length) continue; // a prefill chunk, more to come
      emitToken(seq, now);
    }
    observer.onStep?.(scheduledTokens, batch);
    // A multi-step run ends after its last step, or as soon as nothing is left running in it.
    if (running.length === 0) runStepsLeft = 0;
    if (asyncOutputProcessing) {
      // This step processed the previous one's outputs: they leave now, this step's wait for the next.
      const previous = deferred;
      deferred = [];
      if (outbox.length > 0 && runStepsLeft === 0) {
        deferred = outbox;
        outbox = [];
      }
      handOver(previous);
    } else if (outbox.length > 0 && runStepsLeft === 0) {
      const deliveries = outbox;
      outbox = [];
      handOver(deliveries);
    }
    if (stopped) return;
    let started = false;
    if (running.length > 0 || waiting.length > 0) started = schedule().length > 0;
    if (!started) {
      lastStepEndMs = undefined;
      // No step follows to process them in: they are processed now.
      const rest = deferred;
      deferred = [];
      handOver(rest);
    }
  };

  const handOver = (deliveries: Delivery[]) => {
    if (deliveries.length === 0) return;
    frontEndQueue!.run(deliveries.length * frontEnd!.outputTokenMs, () => deliver(deliveries));
  };

  const commitFullBlocks = (seq: Sequence) => {
    const full = Math.min(Math.floor(seq.numComputed / blockSize), seq.blockHashes.length);
    for (let i = seq.numCommittedBlocks; i < full; i++) kvCache.commit(seq.blocks[i]!, seq.blockHashes[i]!);
    seq.numCommittedBlocks = Math.max(seq.numCommittedBlocks, full);
  };

  const emitToken = (seq: Sequence, now: number) => {
    const index = seq.numOutput;
    const tokenId = seq.spec.nextToken(index);
    seq.tokens.push(tokenId);
    seq.numOutput++;
    extendBlockHashes(seq.blockHashes, seq.tokens, blockSize);
    const first = seq.firstTokenMs === undefined;
    if (first) {
      seq.firstTokenMs = now;
      // vLLM times the first token where its front end processes it; without a front end, that is now.
      if (!frontEnd) observer.onFirstToken?.(seq.promptLength, now - seq.arrivalMs);
    } else {
      // Inter-token latency is stamped by the engine core in vLLM, front-end delays excluded.
      observer.onNextToken?.(now - (seq.lastTokenMs ?? now));
    }
    seq.lastTokenMs = now;
    const stop = seq.spec.checkStop?.(tokenId) ?? false;
    const finishReason = stop ? 'stop' : seq.numOutput >= seq.spec.maxTokens ? 'length' : null;
    const output: EngineOutput = { tokenId, index, finishReason, numCachedTokens: seq.numCachedTokens };
    if (frontEnd) {
      if (finishReason) finish(seq, finishReason, false);
      outbox.push({ seq, output });
      return;
    }
    if (finishReason) finish(seq, finishReason);
    seq.listener.onToken(output);
  };

  // The output handler has processed a step's tokens: vLLM's TTFT and e2e clocks stamp them here.
  const deliver = (deliveries: Delivery[]) => {
    const now = clock.now();
    for (const { seq, output } of deliveries) {
      if (seq.aborted || stopped) continue;
      if (output.index === 0) observer.onFirstToken?.(seq.promptLength, now - seq.arrivalMs);
      if (output.finishReason) reportFinished(seq, output.finishReason);
      if (chunkMs === 0) {
        seq.listener.onToken(output);
      } else if (seq.pendingChunk) {
        // The request's previous chunk is still waiting for the CPU: this token rides in it.
        seq.pendingChunk.push(output);
      } else {
        seq.pendingChunk = [output];
        frontEndQueue!.run(chunkMs, () => sendChunk(seq));
      }
    }
  };

  // One streamed event, with every token that joined it while it waited: now the client sees them.
  const sendChunk = (seq: Sequence) => {
    const chunk = seq.pendingChunk ?? [];
    seq.pendingChunk = undefined;
    for (const output of chunk) {
      if (seq.aborted || stopped) return;
      seq.listener.onToken(output);
    }
  };

  const kick = () => {
    if (stopped || stepInFlight || timer) return;
    // Start on the next turn of the event loop, so requests arriving together share a step.
    timer = clock.schedule(0, () =>
      runTurn(() => {
        timer = undefined;
        if (!stepInFlight && schedule().length === 0) lastStepEndMs = undefined;
      }),
    );
  };

  return {
    submit(spec, listener) {
      if (stopped) throw new Error('engine is shut down');
      if (!(spec.maxTokens >= 1)) throw new RangeError(`maxTokens must be >= 1, got ${spec.maxTokens}`);
      if (spec.promptTokenIds.length === 0) throw new RangeError('the prompt must have at least one token');
      // A request that could not fit in an otherwise empty cache would wait forever.
      if (Math.ceil((spec.promptTokenIds.length + spec.maxTokens) / blockSize) > kvCache.numBlocks) {
        throw new RangeError(
          `request ${spec.id} needs more KV blocks than the cache has (${kvCache.numBlocks})`,
        );
      }
      const tokens = [...spec.promptTokenIds];
      const blockHashes: number[] = [];
      extendBlockHashes(blockHashes, tokens, blockSize);
      const seq: Sequence = {
        spec,
        listener,
        tokens,
        promptLength: tokens.length,
        numOutput: 0,
        numComputed: 0,
        blocks: [],
        blockHashes,
        numCommittedBlocks: 0,
        status: 'intake',
        aborted: false,
        cancelIntake: undefined,
        everScheduled: false,
        numCachedTokens: 0,
        arrivalMs: clock.now(),
        scheduledMs: undefined,
        firstTokenMs: undefined,
        lastTokenMs: undefined,
        pendingChunk: undefined,
      };
      const enter = () => {
        seq.cancelIntake = undefined;
        intake.delete(seq);
        if (stopped || seq.status !== 'intake') return;
        // vLLM stamps arrival once the front end hands the request over; TTFT and e2e count from here.
        seq.arrivalMs = clock.now();
        seq.status = 'waiting';
        waiting.push(seq);
        kick();
      };
      if (frontEndQueue) {
        intake.add(seq);
        // Each stage of the intake yields the CPU and queues behind whatever became ready meanwhile.
        const stages = Math.max(1, frontEnd!.requestStages ?? 1);
        const stageMs = frontEnd!.requestMs / stages;
        let stagesLeft = stages;
        const stage = () => {
          stagesLeft--;
          if (stagesLeft === 0) return enter();
          if (seq.status === 'intake') seq.cancelIntake = frontEndQueue.run(stageMs, stage);
        };
        const cancel = frontEndQueue.run(stageMs, stage);
        if (seq.status === 'intake' && seq.cancelIntake === undefined) seq.cancelIntake = cancel;
      } else {
        enter();
      }
      return {
        id: spec.id,
        abort: () => {
          if (seq.status !== 'finished') finish(seq, 'abort');
        },
      };
    },
    snapshot: () => ({
      running: running.length,
      waiting: waiting.length,
      kvCacheUsage: kvCache.usage(),
      numPreemptions,
    }),
    inspect() {
      const state = (seq: Sequence, status: EngineRequestState['status']): EngineRequestState => ({
        id: seq.spec.id,
        status,
        promptTokens: seq.promptLength,
        computedTokens: seq.numComputed,
        outputTokens: seq.numOutput,
      });
      return {
        requests: [
          ...[...intake].map((seq) => state(seq, 'intake')),
          ...waiting.map((seq) => state(seq, 'waiting')),
          ...running.map((seq) => state(seq, 'running')),
        ],
        frontEndBacklogMs: frontEndQueue?.backlogMs() ?? 0,
      };
    },
    shutdown() {
      stopped = true;
      timer?.();
      timer = undefined;
      dueStep = undefined;
      stepInFlight = false;
      for (const seq of [...running, ...waiting, ...intake]) finish(seq, 'abort');
      outbox = [];
    },
  };
}
