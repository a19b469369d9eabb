/**
 * Fault injection, as the router's breaker, retry and failover tests will use
 * it: injected error statuses at a chosen rate, streams that stall, a crash
 * that drops every connection mid-stream, a slow factor, a forced health
 * status, and the `/sim/faults` API that switches them at run time. Time is a
 * manual clock and randomness is scripted, so every outcome is exact.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import type { SimCrashInfo } from '../sim/server.js';
import { startVirtualSim, VIRTUAL_SIM_MODEL, type VirtualSim } from './helpers/virtual-sim.js';

const MODEL = VIRTUAL_SIM_MODEL;

/** Random draws taken in order from `values`, cycling. */
function scripted(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

// biome-ignore lint/suspicious/noExplicitAny: bodies are checked field by field
type Json = any;

async function call(
  url: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

/** Runs one generation to completion on the manual clock. */
async function generate(s: VirtualSim, body: object): Promise<{ status: number; body: Json }> {
  // Requests that reach the engine need simulated time; rejected ones answer at once.
  const noStart = new AbortController();
  const reached = once(s.sim.events, 'request-start', { signal: noStart.signal }).then(
    () => s.clock.runAll(),
    () => undefined,
  );
  const result = await call(s.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'hello', ...body });
  noStart.abort();
  await reached;
  return result;
}

/** Opens a stream and returns a reader of its SSE events (the `data:` payloads). */
async function openStream(s: VirtualSim, body: object, signal?: AbortSignal) {
  const res = await fetch(`${s.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, prompt: 'hello', stream: true, ...body }),
    ...(signal ? { signal } : {}),
  });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const events: string[] = [];
  let ended: 'done' | 'error' | undefined;
  // Reads until the stream ends or fails; records how.
  const finished = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        for (let at = buffer.indexOf('\n\n'); at !== -1; at = buffer.indexOf('\n\n')) {
          events.push(buffer.slice('data: '.length, at));
          buffer = buffer.slice(at + 2);
        }
      }
      ended = 'done';
    } catch {
      ended = 'error';
    }
  })();
  return { events, finished, ended: () => ended, cancel: () => reader.cancel() };
}

describe('sim faults: the /sim/faults API', () => {
  it('reports, merges, validates and resets the faults', async () => {
    const s = await startVirtualSim({ faults: { slowFactor: 2 } });
    try {
      const none = {
        error_rate: 0,
        error_status: 500,
        stall_after_tokens: null,
        crash_after_tokens: null,
        slow_factor: 1,
        health_status: null,
      };
      assert.deepEqual((await call(s.url, 'GET', '/sim/faults')).body, { ...none, slow_factor: 2 });
      await call(s.url, 'POST', '/sim/faults', { error_rate: 0.25 });
      const merged = await call(s.url, 'POST', '/sim/faults', { error_status: 429, slow_factor: null });
      assert.equal(merged.status, 200);
      assert.deepEqual(merged.body, { ...none, error_rate: 0.25, error_status: 429 });

      const bad = await call(s.url, 'POST', '/sim/faults', { error_status: 418 });
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.body.error, {
        message: 'error_status must be one of 429, 500, 503',
        type: 'BadRequestError',
        param: 'error_status',
        code: 400,
      });
      assert.equal(
        (await call(s.url, 'GET', '/sim/faults')).body.error_status,
        429,
        'a bad patch changes nothing',
      );

      assert.deepEqual((await call(s.url, 'DELETE', '/sim/faults')).body, none);
      assert.deepEqual((await call(s.url, 'GET', '/sim/faults')).body, none);
      assert.equal((await call(s.url, 'PUT', '/sim/faults', {})).status, 405);
    } finally {
      await s.sim.close();
    }
  });
});

describe('sim faults: injected errors', () => {
  it('answers the chosen share of requests with the chosen status and vLLM error JSON', async () => {
    // Draws below the rate fail: 0.1 and 0.4 do, 0.9 and 0.6 do not.
    const s = await startVirtualSim({ faultRandom: scripted([0.1, 0.9, 0.4, 0.6]) });
    const errors: Array<{ status: number }> = [];
    s.sim.events.on('request-error', (e) => errors.push(e));
    try {
      await call(s.url, 'POST', '/sim/faults', { error_rate: 0.5, error_status: 503 });
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        const answer = await generate(s, { max_tokens: 2 });
        statuses.push(answer.status);
        if (answer.status !== 200) {
          assert.deepEqual(answer.body, {
            error: {
              message: 'Simulated fault: this request was answered with HTTP 503.',
              type: 'ServiceUnavailableError',
              param: null,
              code: 503,
            },
          });
        }
      }
      assert.deepEqual(statuses, [503, 200, 503, 200]);
      assert.equal(s.sim.stats.failed, 2);
      assert.equal(s.sim.stats.finished, 2);
      assert.deepEqual(
        errors.map((e) => e.status),
        [503, 503],
      );

      for (const [status, type] of [
        [429, 'RateLimitError'],
        [500, 'InternalServerError'],
      ] as const) {
        await call(s.url, 'POST', '/sim/faults', { error_rate: 1, error_status: status });
        const answer = await generate(s, {});
        assert.equal(answer.status, status);
        assert.equal(answer.body.error.type, type);
      }
      // Invalid requests are still the client's fault, whatever the error rate.
      assert.equal((await generate(s, { max_tokens: 0 })).status, 400);
    } finally {
      await s.sim.close();
    }
  });

  it('starts with the faults given as options, and DELETE clears them', async () => {
    const s = await startVirtualSim({ faults: { errorRate: 1, errorStatus: 429 } });
    try {
      assert.equal((await generate(s, {})).status, 429);
      await call(s.url, 'DELETE', '/sim/faults');
      assert.equal((await generate(s, {})).status, 200);
    } finally {
      await s.sim.close();
    }
  });
});

describe('sim faults: stall', () => {
  it('stops a stream after N tokens and keeps its connection open until the client leaves', async () => {
    const s = await startVirtualSim({ faults: { stallAfterTokens: 3 } });
    try {
      const stalled = once(s.sim.events, 'request-stall');
      const reached = once(s.sim.events, 'request-start');
      const stream = await openStream(s, { max_tokens: 10 });
      await reached;
      s.clock.runAll();
      assert.deepEqual((await stalled)[0].afterTokens, 3);
      // The engine dropped the request (its KV blocks are free) and has nothing left to do...
      assert.equal(s.clock.pending(), 0);
      assert.equal(s.sim.stats.running, 0);
      assert.equal(s.sim.stats.stalled, 1);
      // ...and after a round trip to the same server, the stream has its 3 tokens and is still open.
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      assert.match(metrics, /vllm:kv_cache_usage_perc\{[^}]*\} 0\.0\n/);
      assert.equal(stream.events.length, 3);
      assert.ok(stream.events.every((e) => JSON.parse(e).choices[0].finish_reason === null));
      assert.equal(stream.ended(), undefined);
      assert.equal(s.sim.stats.aborted, 0);

      // The client gives up: the simulator sees it go.
      const aborted = once(s.sim.events, 'request-abort');
      await stream.cancel();
      await aborted;
      assert.equal(s.sim.stats.aborted, 1);
      assert.equal(s.sim.stats.finished, 0);
    } finally {
      await s.sim.close();
    }
  });

  it('never answers a non-streaming request that stalls', async () => {
    const s = await startVirtualSim({ faults: { stallAfterTokens: 0 } });
    try {
      const controller = new AbortController();
      const reached = once(s.sim.events, 'request-start');
      let settled = false;
      const answer = fetch(`${s.url}/v1/completions`, {
        method: 'POST',
        body: JSON.stringify({ prompt: 'hi', max_tokens: 5 }),
        signal: controller.signal,
      }).finally(() => {
        settled = true;
      });
      await reached;
      const stalled = once(s.sim.events, 'request-stall');
      s.clock.runAll();
      await stalled;
      await fetch(`${s.url}/health`);
      assert.equal(settled, false);
      const aborted = once(s.sim.events, 'request-abort');
      controller.abort();
      await assert.rejects(answer);
      await aborted;
    } finally {
      await s.sim.close();
    }
  });
});

describe('sim faults: crash', () => {
  it('drops every connection mid-stream after N tokens and stops listening', async () => {
    const crashes: SimCrashInfo[] = [];
    const s = await startVirtualSim({ onCrash: (info) => crashes.push(info) });
    try {
      const reached = once(s.sim.events, 'request-start');
      const bystander = await openStream(s, { prompt: 'a long story', max_tokens: 1000 });
      await reached;
      await call(s.url, 'POST', '/sim/faults', { crash_after_tokens: 5 });
      const crashed = once(s.sim.events, 'crash');
      const reachedVictim = once(s.sim.events, 'request-start');
      const victim = await openStream(s, { prompt: 'the one that crashes', max_tokens: 20 });
      await reachedVictim;
      s.clock.runAll();
      const [info] = (await crashed) as [SimCrashInfo];
      await Promise.all([victim.finished, bystander.finished]);

      assert.equal(crashes.length, 1);
      assert.equal(info.afterTokens, 5);
      // The first stream past 5 tokens crashed the process: the bystander, whose tokens came first.
      assert.equal(bystander.events.length, 5);
      assert.ok(victim.events.length < 5);
      for (const stream of [victim, bystander]) {
        assert.ok(!stream.events.includes('[DONE]'), 'no stream ends cleanly');
        assert.equal(stream.ended(), 'error', 'the connection dropped');
      }
      await assert.rejects(fetch(`${s.url}/health`), 'nothing listens any more');
    } finally {
      await s.sim.close();
    }
  });
});

describe('sim faults: slow factor and health', () => {
  it('stretches every step by the slow factor', async () => {
    // The engine alone: the slow factor stretches GPU steps, not the API server's work.
    const s = await startVirtualSim({ enablePrefixCaching: false, frontEnd: false });
    try {
      const elapsed = async () => {
        const t0 = s.clock.now();
        await generate(s, { prompt: 'the same prompt each time', max_tokens: 10 });
        return s.clock.now() - t0;
      };
      const normal = await elapsed();
      await call(s.url, 'POST', '/sim/faults', { slow_factor: 3 });
      const slow = await elapsed();
      // Exact but for the float resolution of an epoch-based clock.
      assert.ok(Math.abs(slow / normal - 3) < 1e-4, `${normal} ms → ${slow} ms`);
    } finally {
      await s.sim.close();
    }
  });

  it('forces the /health status while requests are still served', async () => {
    const s = await startVirtualSim();
    try {
      assert.equal((await call(s.url, 'GET', '/health')).status, 200);
      await call(s.url, 'POST', '/sim/faults', { health_status: 503 });
      assert.equal((await call(s.url, 'GET', '/health')).status, 503);
      assert.equal((await generate(s, {})).status, 200);
      await call(s.url, 'POST', '/sim/faults', { health_status: null });
      assert.equal((await call(s.url, 'GET', '/health')).status, 200);
    } finally {
      await s.sim.close();
    }
  });
});
