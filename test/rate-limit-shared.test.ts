/**
 * One tenant's tokens-per-minute budget shared by two router replicas through
 * real Redis, while clients hammer it (retrying 50 ms after each refusal) and
 * the routers' event loops are busy. Two gates are two replicas: each has its
 * own Redis connection, its own local fallback buckets and its own lag.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { silentLogger } from '../common/log.js';
import { createGate } from '../router/auth/gate.js';
import type { Tenant } from '../router/auth/tenants.js';
import { validateRouterConfig } from '../router/config/load.js';
import { SHARED_REDIS_URL } from './helpers/redis.js';

const TOKENS_PER_MINUTE = 3_000;
const PROMPT_TOKENS = 100;
const OUTPUT_TOKENS = 4; // streamed in two charges after admission
const CLIENTS_PER_REPLICA = 40;
const RUN_MS = 4_000;
const BLOCK_MS = 90; // each replica's event loop is blocked this long...
const BLOCK_EVERY_MS = 100; // ...this often

describe('shared token limits under hammering', () => {
  it('two replicas charge at most 1.1× the budget while busy event loops delay Redis replies', async (t) => {
    const name = `hammer-${randomUUID().slice(0, 8)}`;
    const config = validateRouterConfig({
      listen: '127.0.0.1:0',
      discovery: { kind: 'static', endpoints: [] },
      models: { m: { versions: { v1: { weight: 1 } } } },
      auth: {
        redis: SHARED_REDIS_URL,
        replicas: 2,
        tenants: [
          {
            name,
            key_sha256: '0'.repeat(64),
            models: ['*'],
            limits: { tokens_per_minute: TOKENS_PER_MINUTE },
          },
        ],
      },
    });
    const auth = config.auth;
    assert.ok(auth);
    const tenant: Tenant = {
      name,
      models: new Set(['*']),
      limits: { tokensPerMinute: TOKENS_PER_MINUTE },
    };
    const fallbacks: string[] = [];
    const gates = [0, 1].map(() =>
      createGate(
        silentLogger,
        () => {},
        (reason) => fallbacks.push(reason),
      ),
    );
    for (const g of gates) g.prepare(auth);

    // A busy router: its event loop is blocked for 90 ms every 100 ms, in the
    // check phase, right after the requests that timers (the clients' retries)
    // sent and before their replies are read, as when a router's own work piles up.
    const busy = setInterval(
      () =>
        setImmediate(() => {
          const until = performance.now() + BLOCK_MS;
          while (performance.now() < until) {
            // Blocking on purpose.
          }
        }),
      BLOCK_EVERY_MS,
    );

    let charged = 0;
    let refusals = 0;
    const started = Date.now();
    const client = async (gate: (typeof gates)[number]) => {
      while (Date.now() - started < RUN_MS) {
        try {
          const admitted = await gate.admit(auth, tenant, PROMPT_TOKENS);
          charged += PROMPT_TOKENS;
          for (let i = 0; i < 2; i++) {
            await new Promise((r) => setImmediate(r));
            await admitted.charge(OUTPUT_TOKENS / 2);
            charged += OUTPUT_TOKENS / 2;
          }
        } catch {
          refusals++;
          await new Promise((r) => setTimeout(r, 50)); // the client's retry delay
        }
      }
    };
    try {
      await Promise.all(gates.flatMap((g) => Array.from({ length: CLIENTS_PER_REPLICA }, () => client(g))));
    } finally {
      clearInterval(busy);
      for (const g of gates) g.close();
    }
    const elapsedMin = (Date.now() - started) / 60_000;
    const allowed = TOKENS_PER_MINUTE * (1 + elapsedMin);
    const ratio = charged / allowed;
    t.diagnostic(
      `charged ${charged} tokens against ${Math.round(allowed)} allowed (${ratio.toFixed(2)}×); ` +
        `${refusals} refusals; ${fallbacks.length} local decisions (${[...new Set(fallbacks)].join(', ') || 'none'})`,
    );
    assert.ok(refusals > 100, 'the clients did hammer the limit');
    assert.ok(
      ratio <= 1.1,
      `overshoot ${ratio.toFixed(2)}× (charged ${charged}, allowed ${Math.round(allowed)})`,
    );
    const redis = new Redis(SHARED_REDIS_URL);
    await redis.del(`llmmesh:ratelimit:${name}:tpm`);
    await redis.quit();
  });
});
