/**
 * The director owns one request's journey through the router:
 * auth → preflight → version split → admission → upstream (schedule,
 * attempts, retries, migration). Each stage lives in its own module; this
 * one only orders them and records the decisions on the request's trace.
 */
import { randomUUID } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { errors, MeshError, Status } from '../../common/errors.js';
import type { GenerateRequest__Output } from '../../common/generated/llmmesh/v1/GenerateRequest.js';
import { CACHE_KEY } from '../../common/metadata.js';
import { estimatePromptTokens } from '../../common/validate.js';
import type { RouterConfig } from '../config/schema.js';
import { chooseVersion, type VersionChoice } from '../routing/version-split.js';
import { freshlyUsable, isSaturated, pastLimit, usable } from '../scheduling/load.js';
import type { SchedulingEndpoint } from '../scheduling/types.js';
import type { EndpointSnapshot, EndpointView } from '../upstream/endpoints.js';
import type { RequestScope, RouterContext, Served } from './context.js';
import { checkContextLength, checkRequest, upstreamRequest } from './preflight.js';
import { createTenantCharge } from './tenant-charge.js';
import { runUpstream } from './upstream.js';

/** Runs requests through the pipeline. */
export interface Director {
  /** Runs `req` and feeds its chunks to `scope.onChunk`; returns what served it. */
  execute(req: GenerateRequest__Output, incoming: grpc.Metadata, scope: RequestScope): Promise<Served>;
}

/** Creates the director of one router. */
export function createDirector(ctx: RouterContext): Director {
  const { metrics, endpoints, log } = ctx;

  /** Why no endpoint of a model can serve, endpoint by endpoint. */
  const whyUnavailable = (model: string, cfg: RouterConfig) => {
    const snap = endpoints.snapshot();
    return Object.keys(cfg.models[model]?.versions ?? {})
      .flatMap((v) => snap.pool(model, v).map((e) => `${e.address} (${v}): ${e.reason || 'busy'}`))
      .join('; ');
  };

  const chooseVersionFor = (
    req: GenerateRequest__Output,
    cfg: RouterConfig,
    snap: EndpointSnapshot,
  ): VersionChoice => {
    const file = cfg.models[req.model];
    if (!file) throw errors.notFound(`unknown model "${req.model}"`);
    // A canary progression overlays the file's weights (router/canary/).
    const model = ctx.canary ? ctx.canary.effective(req.model, file) : file;
    const routing = {
      model: req.model,
      pinnedVersion: req.routing?.version || undefined,
      sessionKey: req.routing?.sessionKey || undefined,
    };
    const choose = (usableHere: (e: EndpointView) => boolean) =>
      chooseVersion(routing, model, (v) => snap.pool(req.model, v).some(usableHere), ctx.random);
    try {
      try {
        return choose(freshlyUsable);
      } catch (err) {
        if (!(err instanceof MeshError) || err.code !== Status.UNAVAILABLE) throw err;
        // No version has a pod with a fresh report (a burst delays every
        // report): pods whose last report said ready are the fallback, as for the pick.
        return choose(usable);
      }
    } catch (err) {
      if (!(err instanceof MeshError) || err.code !== Status.UNAVAILABLE) throw err;
      // Say why each endpoint of the model cannot serve, so the caller (and the
      // on-call engineer) sees "engine at 10.0.0.7:8000 unreachable", not just "no endpoint".
      const why = whyUnavailable(req.model, cfg);
      throw errors.unavailable(why ? `${err.message}: ${why}` : `${err.message}: no endpoint serves it`);
    }
  };

  const recordVersion = (
    req: GenerateRequest__Output,
    choice: VersionChoice,
    scope: RequestScope,
    requestId: string,
  ) => {
    const server = scope.spans.server;
    server.setAttribute('llmmesh.version', choice.version);
    server.setAttribute('llmmesh.version_reason', choice.reason);
    metrics.versionChoices.inc({ model: req.model, model_version: choice.version, reason: choice.reason });
    ctx.split.record(req.model, choice.version);
    if (!choice.fallbackFrom) return;
    server.setAttribute('llmmesh.fallback_from', choice.fallbackFrom);
    metrics.versionFallbacks.inc({ model: req.model, from: choice.fallbackFrom, to: choice.version });
    log.warn('version fallback', {
      model: req.model,
      from: choice.fallbackFrom,
      to: choice.version,
      requestId,
    });
  };

  /**
   * True while every usable endpoint of the pool meets `test`. Endpoints with
   * a fresh report decide when there are any: a pod whose report is late
   * looks as idle as it last said, and the pick takes it only when no fresh
   * one is left.
   */
  const wholePool = (model: string, version: string, test: (e: SchedulingEndpoint) => boolean) => {
    let fresh = 0;
    let freshMet = 0;
    let stale = 0;
    let staleMet = 0;
    for (const e of endpoints.snapshot().pool(model, version)) {
      if (!usable(e) || e.breaker === 'open') continue;
      const met = test(e);
      if (e.ready) {
        fresh++;
        if (met) freshMet++;
      } else {
        stale++;
        if (met) staleMet++;
      }
    }
    return fresh > 0 ? freshMet === fresh : stale > 0 && staleMet === stale;
  };

  /**
   * True while every usable endpoint of the pool is saturated, or past the
   * most it runs at once (published or learned) by `saturation` requests by
   * this router's count ({@link pastLimit}): admission then queues.
   */
  const saturatedPool = (model: string, version: string, saturation: number) => () =>
    wholePool(model, version, (e) => isSaturated(e, saturation) || pastLimit(e, saturation));

  /**
   * True while every usable endpoint of the pool is past the most it runs at
   * once by `saturation` requests by this router's count, which shows a
   * finish at once: a freed slot then lets nobody in, so a queue that built
   * up in the engines drains instead of standing.
   */
  const pastLimitPool = (model: string, version: string, saturation: number) => () =>
    wholePool(model, version, (e) => pastLimit(e, saturation));

  return {
    async execute(req, incoming, scope) {
      const { rt } = scope;
      // A request that waited for its turn (the lifecycle's start gate) may be
      // gone or out of time by now: set nothing up, charge nothing.
      if (scope.signal.aborted) throw errors.cancelled('client cancelled');
      if (ctx.now() >= scope.deadline)
        throw errors.deadlineExceeded('deadline passed before the request started');
      // One config for the whole request: a reload mid-request changes nothing here.
      const state = ctx.datastore.state();
      const cfg = state.config;
      // Who is calling comes first: an unauthenticated caller learns nothing else.
      const tenant = ctx.gate.authenticate(cfg.auth, incoming, req.model);
      if (tenant) {
        rt.tenant = tenant.name;
        scope.spans.server.setAttribute('llmmesh.tenant', tenant.name);
      }
      const model = checkRequest(req, cfg);
      const scheduler = state.scheduler(req.model);
      if (!scheduler) throw errors.internal(`no scheduler for model "${req.model}"`);
      let charge: ReturnType<typeof createTenantCharge> | undefined;
      if (tenant && cfg.auth) {
        const promptTokens = estimatePromptTokens(req);
        const admitted = await ctx.gate.admit(cfg.auth, tenant, promptTokens);
        metrics.tenantTokens.inc({ tenant: tenant.name, kind: 'prompt' }, promptTokens);
        charge = createTenantCharge(admitted, (n) =>
          metrics.tenantTokens.inc({ tenant: tenant.name, kind: 'output' }, n),
        );
      }
      const requestId = req.requestId || randomUUID();
      rt.requestId = requestId;
      const request = upstreamRequest(req, requestId, model);

      // One endpoint snapshot for the version choice and the context check.
      const snap = endpoints.snapshot();
      const choice = chooseVersionFor(req, cfg, snap);
      rt.version = choice;
      let contextLen = Number.POSITIVE_INFINITY;
      for (const e of snap.pool(req.model, choice.version)) {
        const len = e.report?.capacity?.maxModelLen || Number.POSITIVE_INFINITY;
        if (len < contextLen) contextLen = len;
      }
      checkContextLength(req, request.sampling?.maxTokens ?? 0, contextLen, choice.version);
      recordVersion(req, choice, scope, requestId);

      // Admission: wait (by priority) while the router is full or the pool saturated.
      const queuedAt = ctx.now();
      const releaseAdmission = await ctx.admission.admit({
        priority: rt.priority,
        poolKey: `${req.model}\u0000${choice.version}`,
        saturated: saturatedPool(req.model, choice.version, cfg.admission.saturation_queue_depth),
        pastLimit: pastLimitPool(req.model, choice.version, cfg.admission.saturation_queue_depth),
        deadline: scope.deadline,
        signal: scope.signal,
      });
      rt.queuedMs = ctx.now() - queuedAt;
      // Returned, not awaited: this frame (and what it holds) is not kept for the stream's life.
      let upstream: Promise<Served>;
      try {
        ctx.retryBudget.recordRequest();
        const cacheControl = incoming.get(CACHE_KEY)[0];
        upstream = runUpstream(ctx, scope, {
          request,
          requestId,
          version: choice,
          scheduler,
          upstream: cfg.upstream,
          cacheControl: cacheControl === undefined ? undefined : String(cacheControl),
          observe: charge,
        });
      } catch (err) {
        releaseAdmission();
        throw err;
      }
      return upstream.finally(releaseAdmission);
    },
  };
}
