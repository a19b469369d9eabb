/**
 * A gRPC client whose connection is replaced after a set number of calls.
 *
 * A Node gRPC server (grpc-js over nghttp2, as every llmmesh sidecar and
 * router is) guards against HTTP/2 "rapid reset" floods: a connection on
 * which it receives more than 1000 RST_STREAM frames in a burst (33 more per
 * second after that) is closed with GOAWAY(INTERNAL_ERROR), and every stream
 * still open on it fails. Node 20 cannot raise that limit. A client that
 * cancels streams (a user stops a generation, a deadline or timeout passes,
 * a burst of clients goes away) would lose every other stream on the
 * connection, and the load stream with them. A connection that never
 * carries more than {@link CALLS_PER_CONNECTION} calls cannot receive more
 * resets than that, however fast they come: after that many calls, new calls
 * go to a fresh connection (opened a little ahead), and the old one closes
 * once the calls it carries have ended. While the fresh connection fails to
 * connect, the old one carries on, up to 900 calls.
 */
import * as grpc from '@grpc/grpc-js';

/** Calls one connection carries before new calls move to a fresh one (half the server's reset burst). */
export const CALLS_PER_CONNECTION = 500;
/** How many calls before the switch the next connection starts connecting. */
const CONNECT_AHEAD = 50;
/**
 * While the next connection is failing to connect, the current one carries
 * on, up to this many times its share (900 calls: still under the server's
 * burst of 1000), so that a new connection's trouble does not fail calls a
 * working one could carry.
 */
const MOST_PER_CONNECTION = 1.8;
/** Each client its own connection: grpc-js otherwise shares one among clients with the same target and options. */
export const OWN_CONNECTION: grpc.ChannelOptions = { 'grpc.use_local_subchannel_pool': 1 };

/** Makes a client with `options` added to its channel options. */
export type ClientFactory<C extends grpc.Client> = (options: grpc.ChannelOptions) => C;

/** A call as far as the rotation needs it: it says when it ended (grpc-js emits 'status' once for every call). */
export interface EndingCall {
  on(event: 'status', listener: () => void): unknown;
}

/** One connection (client) and the calls it carries. */
interface Connection<C> {
  readonly client: C;
  /** Calls started on it. */
  calls: number;
  /** Calls not ended yet. */
  open: number;
  /** No new calls go to it: closed when its last call ends. */
  retired: boolean;
}

/** See the module comment. */
export class RotatingClient<C extends grpc.Client> {
  private current: Connection<C>;
  private upcoming: Connection<C> | undefined;
  /** Retired connections whose calls have not all ended. */
  private readonly draining = new Set<Connection<C>>();
  private closed = false;

  constructor(
    private readonly make: ClientFactory<C>,
    private readonly callsPerConnection = CALLS_PER_CONNECTION,
  ) {
    if (!(callsPerConnection >= 1)) throw new RangeError('callsPerConnection must be at least 1');
    this.current = this.connect();
  }

  /**
   * Starts one call with `open` on the current connection (moving to the
   * next one first when this one has carried its share); returns the call.
   */
  call<T extends EndingCall>(open: (client: C) => T): T {
    if (this.dueToMove()) this.rotate();
    const conn = this.current;
    // Before the call is open: nothing may throw between its start and its caller.
    if (conn.calls + 1 >= this.callsPerConnection - CONNECT_AHEAD) this.prepare();
    const call = open(conn.client);
    conn.calls++;
    conn.open++;
    call.on('status', () => this.ended(conn));
    return call;
  }

  /** The current connection's client, for what is not a call (waiting for it to be ready). */
  get client(): C {
    return this.current.client;
  }

  /** Closes every connection: calls in flight run to their end, new ones fail. */
  close(): void {
    this.closed = true;
    for (const conn of [this.current, this.upcoming, ...this.draining]) conn?.client.close();
    this.upcoming = undefined;
    this.draining.clear();
  }

  private connect(): Connection<C> {
    return { client: this.make(OWN_CONNECTION), calls: 0, open: 0, retired: false };
  }

  /** Starts the next connection, so the first call on it does not wait for a handshake. */
  private prepare(): void {
    if (this.upcoming || this.closed) return;
    this.upcoming = this.connect();
    this.upcoming.client.getChannel().getConnectivityState(true);
  }

  /** The current connection has carried its share, and the next one is not failing (or it has carried the most). */
  private dueToMove(): boolean {
    const calls = this.current.calls;
    if (this.closed || calls < this.callsPerConnection) return false;
    if (calls >= Math.floor(this.callsPerConnection * MOST_PER_CONNECTION)) return true;
    const next = this.upcoming?.client.getChannel().getConnectivityState(false);
    return next !== grpc.connectivityState.TRANSIENT_FAILURE;
  }

  private rotate(): void {
    this.prepare();
    const retired = this.current;
    this.current = this.upcoming as Connection<C>;
    this.upcoming = undefined;
    retired.retired = true;
    // A channel closed at once would fail the calls it has not started yet (grpc-js starts them a tick later).
    if (retired.open === 0) retired.client.close();
    else this.draining.add(retired);
  }

  private ended(conn: Connection<C>): void {
    conn.open--;
    if (!conn.retired || conn.open > 0) return;
    this.draining.delete(conn);
    conn.client.close();
  }
}
