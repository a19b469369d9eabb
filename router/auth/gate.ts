/**
 * The router's front gate for a config: who is calling (tenant API keys),
 * whether they may use the model, and whether they are within their rate
 * limits. Rebuilt when the config changes; Redis connections are kept.
 */
import type { Metadata } from '@grpc/grpc-js';
import type { Redis } from 'ioredis';
import type { Logger } from '../../common/log.js';
import { createRedisConnection } from '../../common/redis.js';
import type { AuthConfig } from '../config/schema.js';
import { createRateLimiter, type FallbackReason, type RateLimiter } from './rate-limiter.js';
import { type Authenticator, createAuthenticator, type Tenant } from './tenants.js';

/** An admitted caller whose output tokens are charged as they stream. */
export interface Admitted {
  readonly tenant: Tenant;
  /** Charges `tokens` more output tokens to the tenant; resolves once recorded. */
  charge(tokens: number): Promise<void>;
}

/** The gate of one router. */
export interface Gate {
  /**
   * Authenticates the call (UNAUTHENTICATED), authorizes `model`
   * (PERMISSION_DENIED); returns undefined when auth is off.
   */
  authenticate(auth: AuthConfig | undefined, metadata: Metadata, model: string): Tenant | undefined;
  /** Takes the request's prompt tokens from the tenant's budget (RESOURCE_EXHAUSTED with pushback). */
  admit(auth: AuthConfig, tenant: Tenant, promptTokens: number): Promise<Admitted>;
  /** True while rate limits are decided per replica because Redis is unreachable. */
  degraded(auth: AuthConfig | undefined): boolean;
  /** Opens what `auth` needs (the Redis connection) before the first request. */
  prepare(auth: AuthConfig | undefined): void;
  close(): void;
}

/**
 * Creates a gate. `onDegradedChange` reports switches between shared and local
 * rate limiting (a gauge); `onFallback` every single local decision while Redis
 * is configured (a counter: brief flaps are invisible to a gauge).
 */
export function createGate(
  logger: Logger,
  onDegradedChange: (degraded: boolean) => void = () => {},
  onFallback: (reason: FallbackReason) => void = () => {},
): Gate {
  const authenticators = new WeakMap<AuthConfig, Authenticator>();
  const limiters = new WeakMap<AuthConfig, RateLimiter>();
  const redisByUrl = new Map<string, Redis>();

  const redisFor = (url: string): Redis => {
    let r = redisByUrl.get(url);
    if (!r) {
      // Failures surface through the limiter's degraded state; a request never fails on them.
      r = createRedisConnection({ url });
      redisByUrl.set(url, r);
    }
    return r;
  };

  const limiterFor = (auth: AuthConfig): RateLimiter => {
    let l = limiters.get(auth);
    if (!l) {
      l = createRateLimiter({
        redis: auth.redis ? redisFor(auth.redis) : undefined,
        replicas: auth.replicas,
        redisTimeoutMs: auth.redis_timeout_ms,
        logger,
        onDegradedChange,
        onFallback,
      });
      limiters.set(auth, l);
    }
    return l;
  };

  return {
    authenticate(auth, metadata, model) {
      if (!auth) return undefined;
      let a = authenticators.get(auth);
      if (!a) {
        a = createAuthenticator(auth.tenants);
        authenticators.set(auth, a);
      }
      const tenant = a.authenticate(metadata);
      a.authorize(tenant, model);
      return tenant;
    },
    async admit(auth, tenant, promptTokens) {
      const limiter = limiterFor(auth);
      await limiter.admit(tenant.name, tenant.limits, promptTokens);
      return {
        tenant,
        charge: (tokens) => limiter.charge(tenant.name, tenant.limits, tokens),
      };
    },
    prepare(auth) {
      if (auth) limiterFor(auth);
    },
    degraded(auth) {
      return auth ? limiterFor(auth).degraded : false;
    },
    close() {
      for (const r of redisByUrl.values()) r.disconnect();
      redisByUrl.clear();
    },
  };
}
