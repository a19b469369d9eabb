/**
 * The router's view of its endpoints (sidecars): per endpoint, one
 * `Engine.WatchLoad` stream on a connection of its own, reconnecting with
 * backoff, and the Engine calls on connections replaced every so many calls
 * (common/rotating-client.ts: cancelled calls must not add up to the
 * server's rapid-reset limit, which would close the connection and every
 * stream on it). Load reports are folded into immutable snapshots that
 * routing decisions read.
 */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { LoadReport__Output } from '../../common/generated/llmmesh/v1/LoadReport.js';
import type { Logger } from '../../common/log.js';
import { loadProtos, type RelayEngineClient } from '../../common/proto.js';
import { OWN_CONNECTION, RotatingClient } from '../../common/rotating-client.js';
import { type LoadHistory, NO_HISTORY, observeReport } from '../scheduling/knee.js';
import { addRecent, type RecentAssignments } from '../scheduling/load.js';
import type { BreakerState, SchedulingEndpoint } from '../scheduling/types.js';
import { createPrefixIndex, type PrefixIndex, type PrefixIndexView } from './prefix-index.js';
import { createSnapshotKeeper, type Snapshot } from './snapshot.js';

export type { BreakerState } from '../scheduling/types.js';

/**
 * A report older than this marks the endpoint stale: not ready, yet still a
 * candidate when no endpoint with a fresh report is (see {@link EndpointView.stale}).
 */
export const STALE_AFTER_MS = 2_000;

/**
 * A late report counts for this many times {@link STALE_AFTER_MS}; after
 * that the endpoint is not usable at all (a sidecar that hangs with its load
 * stream still open must not be a fallback for good).
 */
export const STALE_LIMIT_FACTOR = 10;

const NO_FAILURES = Object.freeze({ failureRatio: 0, consecutiveFailures: 0 });

/** What routing knows about one endpoint at one instant. Never mutated. */
export interface EndpointView extends SchedulingEndpoint {
  readonly address: string;
  /** False until the first load report arrives, and while the watch stream is down. */
  readonly connected: boolean;
  readonly model: string;
  readonly version: string;
  /** Connected, reported ready, not draining, report fresh. */
  readonly ready: boolean;
  readonly draining: boolean;
  /** Streams this router has open to the endpoint now. */
  readonly routerInFlight: number;
  /**
   * `routerInFlight` when the last report arrived: the difference is what the
   * report cannot know yet (absent: assume nothing changed since).
   */
  readonly routerInFlightAtReport?: number;
  readonly report: LoadReport__Output | undefined;
  /** Why the endpoint is not ready. */
  readonly reason: string;
  /** Its circuit breaker; `half-open` means one probe may go through now. */
  readonly breaker: BreakerState;
  /** Share of endpoint faults among its recent attempts (0..1), from its breaker's window. */
  readonly failureRatio: number;
  /** Endpoint faults in a row, up to now. */
  readonly consecutiveFailures: number;
  /**
   * The endpoint's prefix index. Updated in place as deltas arrive (copying it
   * per report would cost more than it buys); a decision reads it synchronously.
   */
  readonly prefixIndex: PrefixIndexView;
}

/** An immutable snapshot of every endpoint; `pool(model, version)` gives the endpoints of one pool. */
export type EndpointSnapshot = Snapshot<EndpointView>;

/** The set of endpoints the router talks to. */
export interface EndpointSet {
  /**
   * The current snapshot (replaced whenever state changes; a change to one
   * endpoint rebuilds only that endpoint's view).
   */
  snapshot(): EndpointSnapshot;
  /** How many endpoints are known (cheap: no snapshot is built). */
  readonly size: number;
  /**
   * What Engine calls to an endpoint start on: its client, whose calls move
   * to a fresh connection every so many calls (common/rotating-client.ts).
   */
  client(address: string): EngineCalls | undefined;
  /** Replaces the endpoint list (discovery); new ones are dialled, removed ones closed. */
  setAddresses(addresses: readonly string[]): void;
  /** Counts a stream this router opened to `address`; returns its release. */
  track(address: string): () => void;
  /**
   * Marks the snapshot stale, e.g. after a breaker changed state; with an
   * address, only that endpoint's view is rebuilt (e.g. after its health changed).
   */
  invalidate(address?: string): void;
  /** Emits `change` after each snapshot replacement. */
  readonly events: EventEmitter;
  close(): void;
}

/** The Engine calls of one endpoint. */
export type EngineCalls = RotatingClient<RelayEngineClient & grpc.Client>;

/** Options of {@link createEndpointSet}. */
export interface EndpointSetOptions {
  logger: Logger;
  /** Identifies this router to sidecars. */
  watcherId: string;
  now?: () => number;
  /** First reconnect delay; doubles up to 5 s. */
  reconnectBaseMs?: number;
  staleAfterMs?: number;
  channelOptions?: grpc.ChannelOptions;
  credentials?: grpc.ChannelCredentials;
  /** Breaker state of an endpoint (default: always closed). */
  breakerState?: (address: string) => BreakerState;
  /**
   * Recent health of an endpoint (default: no failures). Read when a view is
   * rebuilt, so it should be cheap (the breakers cache it); call
   * `invalidate(address)` when it changes.
   */
  health?: (address: string) => { readonly failureRatio: number; readonly consecutiveFailures: number };
  /** Engine calls per connection before new ones move to a fresh connection (default: common/rotating-client.ts). */
  callsPerConnection?: number;
}

interface Entry {
  address: string;
  /** The load stream's client, on a connection of its own: however the calls end, it is not theirs to close. */
  loadClient: RelayEngineClient;
  /** The Engine calls' client. */
  calls: EngineCalls;
  watch: grpc.ClientReadableStream<LoadReport__Output> | undefined;
  report: LoadReport__Output | undefined;
  history: LoadHistory;
  recent: RecentAssignments | undefined;
  reportAt: number;
  connected: boolean;
  lastError: string;
  inFlight: number;
  inFlightAtReport: number;
  attempt: number;
  retryTimer: NodeJS.Timeout | undefined;
  closed: boolean;
  prefixIndex: PrefixIndex;
  /** The cached view and until when it stays valid (staleness is a function of time). */
  view: EndpointView | undefined;
  viewValidUntil: number;
}

/** Creates the endpoint set and starts watching `addresses`. */
export function createEndpointSet(addresses: readonly string[], options: EndpointSetOptions): EndpointSet {
  const now = options.now ?? Date.now;
  const staleAfterMs = options.staleAfterMs ?? STALE_AFTER_MS;
  const breakerState = options.breakerState ?? (() => 'closed' as const);
  const health = options.health ?? (() => NO_FAILURES);
  const reconnectBaseMs = options.reconnectBaseMs ?? 100;
  const { RelayEngine } = loadProtos();
  const entries = new Map<string, Entry>();
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const keeper = createSnapshotKeeper<Entry, EndpointView>();
  /** No view built so far turns stale before this time (an underestimate: a later report moves its view's expiry). */
  let nextExpiry = Number.POSITIVE_INFINITY;
  /** Views turned stale since the last `change` event. */
  let expiredUnannounced = false;
  /** Marks the views whose report aged out by `at` changed. */
  const expire = (at: number) => {
    if (at <= nextExpiry) return;
    let next = Number.POSITIVE_INFINITY;
    for (const e of entries.values()) {
      if (e.view === undefined) continue;
      if (at > e.viewValidUntil) {
        e.view = undefined;
        keeper.changed(e);
        expiredUnannounced = true;
      } else if (e.viewValidUntil < next) next = e.viewValidUntil;
    }
    nextExpiry = next;
  };
  let viewAt = 0;
  const viewNow = (e: Entry) => view(e, viewAt);

  const changed = (e: Entry) => {
    e.view = undefined;
    keeper.changed(e);
    events.emit('change');
  };

  const view = (e: Entry, at: number): EndpointView => {
    if (e.view && at <= e.viewValidUntil) return e.view;
    const r = e.report;
    const fresh = r !== undefined && at - e.reportAt <= staleAfterMs;
    const late = !fresh && r !== undefined && at - e.reportAt <= STALE_LIMIT_FACTOR * staleAfterMs;
    let reason = '';
    if (!e.connected) reason = e.lastError || 'no load report yet';
    else if (!fresh) reason = `no load report for ${at - e.reportAt} ms`;
    else if (r && !r.ready) reason = r.reason || (r.draining ? 'draining' : 'not ready');
    const h = health(e.address);
    const usable = e.connected && r?.ready === true && !r.draining;
    const v: EndpointView = {
      address: e.address,
      connected: e.connected,
      model: r?.model ?? '',
      version: r?.version ?? '',
      ready: usable && fresh,
      stale: usable && late,
      draining: r?.draining ?? false,
      routerInFlight: e.inFlight,
      routerInFlightAtReport: e.inFlightAtReport,
      report: r,
      history: e.history,
      recent: e.recent,
      reason,
      breaker: breakerState(e.address),
      failureRatio: h.failureRatio,
      consecutiveFailures: h.consecutiveFailures,
      prefixIndex: e.prefixIndex,
    };
    e.view = v;
    // A fresh view turns stale when the report ages out, a stale one unusable
    // at the limit; past that it stays so until a report.
    e.viewValidUntil = fresh
      ? e.reportAt + staleAfterMs
      : late
        ? e.reportAt + STALE_LIMIT_FACTOR * staleAfterMs
        : Number.POSITIVE_INFINITY;
    if (e.viewValidUntil < nextExpiry) nextExpiry = e.viewValidUntil;
    return v;
  };
  /** A change that emits no `change` event (this router's own streams). */
  const dirty = (e: Entry) => {
    e.view = undefined;
    keeper.changed(e);
  };

  const scheduleReconnect = (e: Entry) => {
    if (e.closed || e.retryTimer) return;
    const delay = Math.min(5_000, reconnectBaseMs * 2 ** Math.min(e.attempt, 6));
    e.attempt++;
    // Jitter spreads reconnects of many routers after a sidecar restart.
    e.retryTimer = setTimeout(
      () => {
        e.retryTimer = undefined;
        startWatch(e);
      },
      delay / 2 + (Math.random() * delay) / 2,
    );
    e.retryTimer.unref();
  };

  const startWatch = (e: Entry) => {
    if (e.closed) return;
    const call = e.loadClient.WatchLoad({ watcherId: options.watcherId });
    e.watch = call;
    // Deltas are relative to what this stream sent: start from nothing.
    e.prefixIndex.clear();
    call.on('data', (r: LoadReport__Output) => {
      if (e.watch !== call) return;
      if (r.prefixIndex) e.prefixIndex.apply(r.prefixIndex);
      e.report = r;
      e.reportAt = now();
      e.history = observeReport(e.history, r, e.reportAt);
      e.inFlightAtReport = e.inFlight;
      e.attempt = 0;
      if (!e.connected) {
        e.connected = true;
        options.logger.info('endpoint connected', {
          endpoint: e.address,
          model: r.model,
          version: r.version,
        });
      }
      changed(e);
    });
    const down = (why: string) => {
      if (e.watch !== call) return;
      e.watch = undefined;
      if (e.connected) options.logger.warn('endpoint load stream lost', { endpoint: e.address, reason: why });
      e.connected = false;
      e.lastError = `load stream to ${e.address} down: ${why}`;
      changed(e);
      scheduleReconnect(e);
    };
    call.on('error', (err: grpc.ServiceError) => down(err.details || err.message));
    call.on('end', () => down('stream ended'));
  };

  const add = (address: string) => {
    const client = (own: grpc.ChannelOptions) =>
      new RelayEngine(address, options.credentials ?? grpc.credentials.createInsecure(), {
        'grpc.keepalive_time_ms': 20_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.keepalive_permit_without_calls': 1,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 5_000,
        // No channelz service to read it: skip its per-call and per-message bookkeeping.
        'grpc.enable_channelz': 0,
        ...options.channelOptions,
        ...own,
      }) as RelayEngineClient & grpc.Client;
    const e: Entry = {
      address,
      loadClient: client(OWN_CONNECTION),
      calls: new RotatingClient(client, options.callsPerConnection),
      watch: undefined,
      report: undefined,
      history: NO_HISTORY,
      recent: undefined,
      reportAt: 0,
      connected: false,
      lastError: '',
      inFlight: 0,
      inFlightAtReport: 0,
      attempt: 0,
      retryTimer: undefined,
      closed: false,
      prefixIndex: createPrefixIndex(),
      view: undefined,
      viewValidUntil: 0,
    };
    entries.set(address, e);
    keeper.add(e);
    startWatch(e);
  };

  const remove = (e: Entry) => {
    e.closed = true;
    if (e.retryTimer) clearTimeout(e.retryTimer);
    e.watch?.cancel();
    e.watch = undefined;
    e.loadClient.close();
    e.calls.close();
    entries.delete(e.address);
    keeper.delete(e);
  };

  for (const a of new Set(addresses)) add(a);

  // Staleness is a function of time: a view turns stale when its report ages
  // out, with no report to say so. The snapshot looks for such views when the
  // earliest expiry has passed; the timer also tells listeners (gauges, health).
  const staleTimer = setInterval(
    () => {
      expire(now());
      if (!expiredUnannounced) return;
      expiredUnannounced = false;
      events.emit('change');
    },
    Math.max(50, Math.floor(staleAfterMs / 4)),
  );
  staleTimer.unref();

  return {
    get size() {
      return entries.size;
    },
    events,
    snapshot() {
      const at = now();
      expire(at);
      viewAt = at;
      return keeper.snapshot(viewNow);
    },
    client: (address) => entries.get(address)?.calls,
    setAddresses(next) {
      const want = new Set(next);
      for (const e of [...entries.values()]) if (!want.has(e.address)) remove(e);
      for (const a of want) if (!entries.has(a)) add(a);
      events.emit('change');
    },
    track(address) {
      const e = entries.get(address);
      if (!e) return () => {};
      e.inFlight++;
      e.recent = addRecent(e.recent, now());
      dirty(e);
      let done = false;
      return () => {
        if (done) return;
        done = true;
        e.inFlight--;
        dirty(e);
      };
    },
    invalidate(address) {
      if (address !== undefined) {
        const e = entries.get(address);
        if (e) changed(e);
        return;
      }
      for (const e of entries.values()) e.view = undefined;
      keeper.changedAll();
      events.emit('change');
    },
    close() {
      clearInterval(staleTimer);
      for (const e of [...entries.values()]) remove(e);
    },
  };
}
