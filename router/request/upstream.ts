/**
 * The upstream half of a request: pick an endpoint, run an attempt, and on
 * failure decide by the failure policy. Before the first chunk reached the
 * client a failed attempt is retried on another endpoint (up to
 * `max_attempts`, within the retry budget). After it the stream migrates:
 * the generation continues on another endpoint of the same version with the
 * output already delivered (token ids when every chunk carried them, so the
 * continuation is exact; text otherwise), up to `migration_limit` times.
 * The client sees one stream.
 */
import * as grpc from '@grpc/grpc-js';
import type { Span } from '@opentelemetry/api';
import { RelayChunk } from '../../common/chunk-relay.js';
import { errors, MeshError } from '../../common/errors.js';
import type { GenerateRequest__Output } from '../../common/generated/llmmesh/v1/GenerateRequest.js';
import { CACHE_KEY, REQUEST_ID_KEY, TRACEPARENT_KEY } from '../../common/metadata.js';
import { childContext, formatTraceparent } from '../../common/trace-context.js';
import { propagationFor, setSpanError } from '../../common/trace-propagation.js';
import type { UpstreamConfig } from '../config/schema.js';
import { countMigration } from '../metrics.js';
import type { AttemptTrace } from '../request-trace.js';
import type { VersionChoice } from '../routing/version-split.js';
import { queueDepth, usable } from '../scheduling/load.js';
import type { Scheduler } from '../scheduling/profile.js';
import { createSchedulingRequest } from '../scheduling/request.js';
import { firstTokenTimeout, runAttempt } from '../upstream/attempt.js';
import { isBreakerOpen } from '../upstream/breakers.js';
import type { EndpointView, EngineCalls } from '../upstream/endpoints.js';
import type { RequestScope, RouterContext, Served } from './context.js';
import { Delivered } from './delivered.js';
import { AttemptFailure } from './failure-policy.js';
import { EXTRA_HANDBACKS, migrationRefusal, notMigrated } from './migration.js';
import { recordScheduleSpan, startAttemptSpan } from './spans.js';

/** One request's upstream work. */
export interface UpstreamJob {
  request: GenerateRequest__Output;
  requestId: string;
  version: VersionChoice;
  scheduler: Scheduler;
  upstream: UpstreamConfig;
  /** The client's `x-llmmesh-cache` request metadata, forwarded to the sidecar. */
  cacheControl: string | undefined;
  /** Sees each chunk before the client does (tenant charging). */
  observe?: (chunk: RelayChunk) => Promise<void> | undefined;
}

/** Runs `job` until it completes or cannot go on; returns what served it. */
export function runUpstream(ctx: RouterContext, scope: RequestScope, job: UpstreamJob): Promise<Served> {
  return new UpstreamRun(ctx, scope, job).run();
}

/**
 * What one failed attempt leads to: try again (retry or migration), end with
 * an error, or finish the stream here (its `max_tokens` were all delivered).
 */
type Next = { kind: 'again' } | { kind: 'error'; error: MeshError } | { kind: 'finish' };

/**
 * The state of one request's upstream work across its attempts. Its
 * chunks go to the {@link Delivered} record, the attempts' sink, and reach
 * nothing else of it.
 */
class UpstreamRun {
  private readonly tried = new Set<string>();
  private readonly sreq;
  private readonly delivered: Delivered;
  private failuresBeforeFirst = 0;
  /** Attempts started (and endpoints picked that had no client), numbering the attempts' spans. */
  private attempts = 0;
  private migrations = 0;
  private handbacks = 0;
  private lastError: MeshError | undefined;
  /** The failure that made the stream move, while the next attempt is a continuation. */
  private movedBy: AttemptFailure | undefined;

  constructor(
    private readonly ctx: RouterContext,
    private readonly scope: RequestScope,
    private readonly job: UpstreamJob,
  ) {
    this.sreq = createSchedulingRequest(job.request, job.requestId, job.version.version, this.tried);
    this.delivered = new Delivered(scope.onChunk, job.observe);
  }

  /** What serves the stream: set by its first chunk, kept across migrations. */
  private get served(): Served | undefined {
    return this.delivered.served;
  }

  private set served(served: Served | undefined) {
    this.delivered.served = served;
  }

  /**
   * Runs attempts until the stream completes or cannot go on. Each
   * attempt's outcome decides the next step: a chain of promises rather
   * than an awaiting loop, so no suspended frame is kept for the stream's life.
   */
  run(): Promise<Served> {
    let outcome: Promise<'done' | Next>;
    try {
      outcome = this.nextAttempt();
    } catch (err) {
      return Promise.reject(err);
    }
    return outcome.then((next) => {
      if (next === 'done') return this.served as Served;
      if (next.kind === 'error') throw next.error;
      if (next.kind === 'finish') return this.endAtLength();
      return this.run();
    });
  }

  /** Picks an endpoint and starts an attempt on it; throws when none can be tried. */
  private nextAttempt(): Promise<'done' | Next> {
    const { ctx, scope, job } = this;
    const model = job.request.model;
    const version = job.version.version;
    for (;;) {
      const n = ++this.attempts;
      if (scope.signal.aborted) throw errors.cancelled('client cancelled');
      const pool = ctx.endpoints.snapshot().pool(model, version);
      const decision = job.scheduler.schedule(this.sreq, pool);
      ctx.metrics.scheduleDuration.observe({ profile: job.scheduler.name }, decision.totalMs / 1000);
      recordScheduleSpan(ctx.tracer, scope.spans, decision, job.version);
      const endpoint = decision.picked;
      if (!endpoint) throw this.noEndpoint(pool);
      this.tried.add(endpoint.address);
      const client = ctx.endpoints.client(endpoint.address);
      if (!client) continue;
      // A hung endpoint may take only part of the time left when another one could take over.
      const spare = pool.some((e) => usable(e) && e.breaker !== 'open' && !this.tried.has(e.address));
      const at: AttemptTrace = {
        endpoint: endpoint.address,
        decision,
        forced: job.scheduler.filtersBreakers && endpoint.breaker === 'open',
        outcome: 'ok',
        chunks: 0,
        startMs: ctx.now() - scope.rt.receivedAt,
      };
      scope.rt.attempts.push(at);
      return this.attempt(n, endpoint, client, at, spare);
    }
  }

  /**
   * Runs one attempt on `endpoint`; 'done' when the stream completed. It
   * returns the attempt's promise, chained, rather than awaiting it: no
   * suspended frame of its own is kept for the stream's life.
   */
  private attempt(
    n: number,
    endpoint: EndpointView,
    client: EngineCalls,
    at: AttemptTrace,
    spare: boolean,
  ): Promise<'done' | Next> {
    const { ctx, scope, job } = this;
    const continuation = this.delivered.chunks > 0 ? this.delivered.continuation() : undefined;
    at.continuation = continuation?.mode;
    const span = startAttemptSpan(ctx.tracer, scope.spans, {
      endpoint: endpoint.address,
      breaker: endpoint.breaker,
      attempt: n,
      version: job.version.version,
      continuation: continuation?.mode,
    });
    const served: Served = this.served ?? {
      version: job.version.version,
      endpoint: endpoint.address,
      requestId: job.requestId,
    };
    const before = this.delivered.chunks;
    let started: Promise<void>;
    try {
      started = runAttempt(
        {
          endpoint: endpoint.address,
          client,
          request: continuation ? { ...job.request, continuation: continuation.value } : job.request,
          metadata: this.metadata(span),
          deadline: scope.deadline,
          signal: scope.signal,
          firstTokenTimeoutMs: spare
            ? firstTokenTimeout(
                job.upstream.first_token_timeout_ms,
                job.upstream.first_token_deadline_share,
                scope.deadline,
                ctx.now(),
              )
            : job.upstream.first_token_timeout_ms,
          idleTimeoutMs: job.upstream.idle_timeout_ms,
          force: at.forced,
          busy: () => this.busy(endpoint.address),
          onCache: (cache) => {
            at.cache = cache;
            if (!this.served) served.cache = cache;
          },
          onFirstChunk: () => {
            at.firstChunkMs = ctx.now() - scope.rt.receivedAt;
            span.addEvent('first_token');
            this.served ??= served;
          },
          sink: this.delivered,
        },
        { breakers: ctx.breakers, track: ctx.endpoints.track, now: ctx.now },
      );
    } catch (err) {
      // As inside the attempt: whatever goes wrong setting it up is its failure.
      started = Promise.reject(err);
    }
    return started.then(
      () => {
        at.chunks = this.delivered.chunks - before;
        ctx.metrics.attempts.inc({ endpoint: endpoint.address, outcome: 'ok' });
        span.setAttribute('rpc.grpc.status_code', grpc.status.OK);
        span.end();
        this.served ??= served;
        return 'done' as const;
      },
      (err: unknown) => {
        at.chunks = this.delivered.chunks - before;
        return this.decide(err, at, span);
      },
    );
  }

  /** What a failed attempt leads to, by the failure policy. */
  private decide(err: unknown, at: AttemptTrace, span: Span): 'done' | Next {
    const { ctx } = this;
    if (isBreakerOpen(err)) {
      // The breaker opened (or its probe was taken) since the snapshot:
      // nothing was sent, so this is no attempt; pick again.
      at.outcome = 'breaker_open';
      ctx.metrics.attempts.inc({ endpoint: at.endpoint, outcome: 'breaker_open' });
      span.end();
      this.lastError ??= err;
      return { kind: 'again' };
    }
    const failure = upstreamFailure(err, at.endpoint);
    at.code = failure.codeName;
    at.error = failure.message;
    at.kind = failure.kind;
    setSpanError(span, failure.code, failure.codeName, failure.message);
    span.setAttribute('llmmesh.outcome', failure.kind);
    span.end();
    const next =
      this.delivered.chunks === 0 ? this.beforeFirstChunk(failure, at) : this.afterFirstChunk(failure, at);
    ctx.metrics.attempts.inc({ endpoint: at.endpoint, outcome: at.outcome });
    return next;
  }

  /** True while the endpoint's last report shows requests waiting: a slow first token is then load, not a fault. */
  private busy(address: string): boolean {
    const e = this.ctx.endpoints
      .snapshot()
      .pool(this.job.request.model, this.job.version.version)
      .find((v) => v.address === address);
    return e !== undefined && queueDepth(e) > 0;
  }

  /** The Engine call's metadata: request id, trace context, the client's cache control. */
  private metadata(span: Span): grpc.Metadata {
    const { scope, job } = this;
    const md = new grpc.Metadata();
    md.set(REQUEST_ID_KEY, job.requestId);
    md.set(
      TRACEPARENT_KEY,
      span.isRecording()
        ? propagationFor(span, scope.spans.ctx).traceparent
        : formatTraceparent(childContext(scope.spans.trace)),
    );
    if (job.cacheControl !== undefined) md.set(CACHE_KEY, job.cacheControl);
    return md;
  }

  /** Nothing reached the client yet: retry on another endpoint, or give up. */
  private beforeFirstChunk(failure: AttemptFailure, at: AttemptTrace): Next {
    const { ctx, scope, job } = this;
    if (failure.kind === 'cancelled') {
      at.outcome = 'cancelled';
      return { kind: 'error', error: errors.cancelled('client cancelled') };
    }
    if (failure.kind === 'handback') {
      // A draining pod refused before doing any work: go elsewhere without
      // spending an attempt or the retry budget (a rolling update is no storm).
      this.handbacks++;
      at.outcome = this.handbacks <= job.upstream.max_attempts + EXTRA_HANDBACKS ? 'retried' : 'failed';
      return at.outcome === 'retried' ? { kind: 'again' } : { kind: 'error', error: failure };
    }
    this.failuresBeforeFirst++;
    const retry =
      failure.policy.retryBeforeFirstChunk && this.failuresBeforeFirst < job.upstream.max_attempts;
    at.outcome = retry ? 'retried' : 'failed';
    if (!retry) return { kind: 'error', error: failure };
    if (ctx.now() >= scope.deadline) {
      return {
        kind: 'error',
        error: errors.deadlineExceeded(`deadline passed before a retry (last error: ${failure.message})`),
      };
    }
    if (!ctx.retryBudget.tryRetry()) {
      at.outcome = 'failed';
      ctx.metrics.retryBudgetExhausted.inc({ model: job.request.model });
      const error = new MeshError(failure.code, `${failure.message} (not retried: retry budget exhausted)`, {
        cause: failure,
        retryPushbackMs: failure.retryPushbackMs,
      });
      return { kind: 'error', error };
    }
    ctx.metrics.retries.inc({ model: job.request.model });
    ctx.log.info('retrying on another endpoint', {
      requestId: job.requestId,
      endpoint: at.endpoint,
      reason: failure.kind,
      err: failure.message,
    });
    this.lastError = failure;
    return { kind: 'again' };
  }

  /** Chunks reached the client: continue on another endpoint, or end the stream saying how far it got. */
  private afterFirstChunk(failure: AttemptFailure, at: AttemptTrace): Next {
    const { ctx, scope, job } = this;
    if (failure.kind === 'cancelled') {
      at.outcome = 'cancelled';
      return { kind: 'error', error: errors.cancelled('client cancelled') };
    }
    if (failure.policy.migrateAfterFirstChunk && this.budgetSpent()) {
      at.outcome = 'failed';
      return { kind: 'finish' };
    }
    const refusal = migrationRefusal(failure, {
      migrations: this.migrations,
      handbacks: this.handbacks,
      deadline: scope.deadline,
      now: ctx.now(),
      limit: job.upstream.migration_limit,
    });
    at.outcome = refusal ? 'failed' : 'migrated';
    if (refusal?.keepStatus) return { kind: 'error', error: failure };
    if (refusal) return { kind: 'error', error: notMigrated(failure, this.delivered, refusal.reason) };
    // A drain hand-back is planned, not a failure: it does not use up the limit.
    if (failure.kind === 'handback') this.handbacks++;
    else this.migrations++;
    this.movedBy = failure;
    countMigration(ctx.metrics, job.request.model, job.version.version, failure.kind);
    ctx.log.info('migrating stream', {
      requestId: job.requestId,
      endpoint: at.endpoint,
      reason: failure.kind,
      tokens: this.delivered.tokens,
      err: failure.message,
    });
    return { kind: 'again' };
  }

  /**
   * True when the delivered output already used the whole `max_tokens`
   * (the pod failed between its last token and its finish chunk): nothing is
   * left to generate, so the stream is finished here instead of elsewhere.
   */
  private budgetSpent(): boolean {
    const max = this.job.request.sampling?.maxTokens ?? 0;
    return max > 0 && this.delivered.tokens >= max;
  }

  /** Ends a stream whose budget is spent with the final chunk the pod did not send. */
  private async endAtLength(): Promise<Served> {
    const served = this.served as Served;
    const last = RelayChunk.of({
      finishReason: 'FINISH_REASON_LENGTH',
      // The prompt's count is the engine's to give; the pod that knew it failed.
      usage: { promptTokens: 0, completionTokens: this.delivered.tokens, cachedTokens: 0 },
    });
    await this.job.observe?.(last);
    await this.scope.onChunk(last, served);
    return served;
  }

  /** The error when the scheduler found no endpoint to try. */
  private noEndpoint(pool: readonly EndpointView[]): MeshError {
    const version = this.job.version.version;
    if (this.movedBy) {
      return notMigrated(
        this.movedBy,
        this.delivered,
        `no other endpoint of version "${version}" can take it`,
      );
    }
    return this.lastError ?? errors.unavailable(noEndpointMessage(this.job.request.model, version, pool));
  }
}

/** The attempt's failure, classified, with the endpoint named once in its message. */
function upstreamFailure(err: unknown, endpoint: string): AttemptFailure {
  const failure = err instanceof AttemptFailure ? err : new AttemptFailure('internal', MeshError.from(err));
  if (failure.message.includes(endpoint)) return failure;
  const named = new MeshError(failure.code, `endpoint ${endpoint}: ${failure.message}`, {
    cause: failure,
    retryPushbackMs: failure.retryPushbackMs,
    metadata: failure.metadata,
  });
  return new AttemptFailure(failure.kind, named);
}

function noEndpointMessage(model: string, version: string, pool: readonly EndpointView[]): string {
  if (pool.length === 0) return `no endpoint serves model "${model}" version "${version}"`;
  const reasons = pool
    .map((e) => `${e.address}: ${e.reason || (e.breaker === 'open' ? 'circuit breaker open' : 'busy')}`)
    .join('; ');
  return `no ready endpoint for model "${model}" version "${version}" (${reasons})`;
}
