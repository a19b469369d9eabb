/**
 * Every gRPC metadata key llmmesh sets or reads, with who sets it and who
 * reads it. A key that nothing reads does not belong here (or anywhere).
 *
 * | key                   | where            | set by            | read by                     |
 * | --------------------- | ---------------- | ----------------- | --------------------------- |
 * | `authorization`       | request          | client            | router (tenant auth)        |
 * | `x-request-id`        | request          | router            | sidecar → engine HTTP header |
 * | `traceparent`         | request          | client, router    | router, sidecar (W3C trace) |
 * | `x-llmmesh-cache`     | request          | client → router   | sidecar (`bypass`)          |
 * | `x-llmmesh-cache`     | initial metadata | sidecar → router  | client (how the pod served) |
 * | `x-llmmesh-version`   | initial metadata | router            | client                      |
 * | `x-llmmesh-endpoint`  | initial metadata | router            | client                      |
 * | `x-llmmesh-handback`  | trailer          | sidecar           | router (migrate the stream) |
 * | `x-llmmesh-trace-id`  | trailer          | router            | client (paste into Jaeger)  |
 * | `x-llmmesh-cost`      | trailer          | router            | client (what the call cost) |
 * | `grpc-retry-pushback-ms` | trailer       | router, sidecar   | client (when to retry)      |
 */

/** Request: `Bearer <api key>` of a tenant (router auth). */
export const AUTHORIZATION_KEY = 'authorization';
/** Request: the request id; the router sets it on the Engine hop and the sidecar passes it to the engine. */
export const REQUEST_ID_KEY = 'x-request-id';
/** Request: W3C trace context. */
export const TRACEPARENT_KEY = 'traceparent';
/**
 * Request: `bypass` asks the sidecar not to look the request up in, nor store
 * it into, the response cache (the router forwards it from the client).
 * Initial metadata (same key): how the pod served the call, one of
 * `hit-l1`, `hit-l2`, `coalesced`, `miss`, `bypass`, `uncacheable`; the
 * router passes it on to the client.
 */
export const CACHE_KEY = 'x-llmmesh-cache';
/** Initial metadata: the model version serving the request. */
export const VERSION_KEY = 'x-llmmesh-version';
/** Initial metadata: the serving sidecar's `host:port` (the first one, when the stream migrated). */
export const ENDPOINT_KEY = 'x-llmmesh-endpoint';
/**
 * Trailer of an Engine call that ends `UNAVAILABLE` because the sidecar hands
 * the stream back (its value is the reason, e.g. `draining`): the router
 * continues the generation on another endpoint. It is not an endpoint fault.
 */
export const HANDBACK_KEY = 'x-llmmesh-handback';
/** Trailer: the request's trace id (paste into Jaeger). */
export const TRACE_ID_KEY = 'x-llmmesh-trace-id';
/**
 * Trailer: what the request cost, a decimal number in the currency of its
 * version's configured price (set only when the version has one).
 */
export const COST_KEY = 'x-llmmesh-cost';
/** Trailer: how long a client should wait before retrying (gRPC's retry pushback). */
export const RETRY_PUSHBACK_KEY = 'grpc-retry-pushback-ms';
