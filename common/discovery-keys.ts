/**
 * The Redis discovery contract between sidecars (which register themselves)
 * and routers (which list the registrations): one key per sidecar with a
 * short TTL, refreshed by heartbeat and deleted on clean shutdown.
 */

/** Default key prefix; a deployment may choose another (both sides must agree). */
export const DEFAULT_DISCOVERY_PREFIX = 'llmmesh:endpoints:';
/** Default registration TTL: a sidecar that stops heartbeating disappears within this. */
export const DEFAULT_REGISTRATION_TTL_MS = 10_000;
/** Default heartbeat interval (a third of the TTL, so one lost beat does not drop the pod). */
export const DEFAULT_HEARTBEAT_MS = 3_000;

/** The JSON value stored under a registration key. */
export interface EndpointRegistration {
  /** `host:port` routers dial. */
  address: string;
  model: string;
  version: string;
  /** Epoch ms of the last heartbeat. */
  updatedAt: number;
}

/** The key of one sidecar's registration. */
export function registrationKey(address: string, prefix = DEFAULT_DISCOVERY_PREFIX): string {
  return `${prefix}${address}`;
}

/** Parses a registration value; undefined when it is not one (ignored by routers). */
export function parseRegistration(value: string | null): EndpointRegistration | undefined {
  if (!value) return undefined;
  try {
    const v = JSON.parse(value) as Partial<EndpointRegistration>;
    if (typeof v.address !== 'string' || !v.address) return undefined;
    return {
      address: v.address,
      model: typeof v.model === 'string' ? v.model : '',
      version: typeof v.version === 'string' ? v.version : '',
      updatedAt: typeof v.updatedAt === 'number' ? v.updatedAt : 0,
    };
  } catch {
    return undefined;
  }
}
