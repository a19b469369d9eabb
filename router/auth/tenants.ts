/**
 * Tenants and API keys: a client sends `authorization: Bearer <key>`; the
 * router knows only the SHA-256 of each key, compares in constant time, and
 * checks the tenant may use the model it asks for.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import { MeshError, Status } from '../../common/errors.js';

/** A tenant as configured. */
export interface TenantConfig {
  name: string;
  /** Lowercase hex SHA-256 of the tenant's API key. */
  key_sha256: string;
  /** Models the tenant may use; `*` allows all. */
  models: string[];
  limits?: { requests_per_second?: number; tokens_per_minute?: number };
}

/** An authenticated tenant. */
export interface Tenant {
  readonly name: string;
  readonly models: ReadonlySet<string>;
  readonly limits: { requestsPerSecond?: number; tokensPerMinute?: number };
}

/** Authenticates calls and authorizes models. */
export interface Authenticator {
  /** The tenant whose key the call carries. Throws UNAUTHENTICATED. */
  authenticate(metadata: Metadata): Tenant;
  /** Throws PERMISSION_DENIED when `tenant` may not use `model`. */
  authorize(tenant: Tenant, model: string): void;
}

/** Creates an authenticator over `tenants` (hashes are validated by the config schema). */
export function createAuthenticator(tenants: readonly TenantConfig[]): Authenticator {
  const entries = tenants.map((t) => ({
    hash: Buffer.from(t.key_sha256.toLowerCase(), 'hex'),
    tenant: {
      name: t.name,
      models: new Set(t.models),
      limits: {
        requestsPerSecond: t.limits?.requests_per_second,
        tokensPerMinute: t.limits?.tokens_per_minute,
      },
    } satisfies Tenant,
  }));
  return {
    authenticate(metadata) {
      const raw = metadata.get('authorization')[0];
      if (raw === undefined) {
        throw new MeshError(
          Status.UNAUTHENTICATED,
          'missing credentials: send "authorization: Bearer <api key>"',
        );
      }
      const m = /^Bearer\s+(\S+)\s*$/i.exec(String(raw));
      if (!m)
        throw new MeshError(
          Status.UNAUTHENTICATED,
          'malformed authorization header: expected "Bearer <api key>"',
        );
      const presented = createHash('sha256')
        .update(m[1] ?? '')
        .digest();
      // Compare against every tenant, without an early exit, so timing says
      // nothing about which (or whether a) key matched.
      let found: Tenant | undefined;
      for (const e of entries) {
        if (timingSafeEqual(presented, e.hash) && !found) found = e.tenant;
      }
      if (!found) throw new MeshError(Status.UNAUTHENTICATED, 'invalid API key');
      return found;
    },
    authorize(tenant, model) {
      if (tenant.models.has('*') || tenant.models.has(model)) return;
      throw new MeshError(Status.PERMISSION_DENIED, `tenant "${tenant.name}" may not use model "${model}"`);
    },
  };
}

/** SHA-256 hex of an API key, as configs store it. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}
