/**
 * Circuit breakers end to end: a pod whose engine starts answering 503 (a
 * fault-injecting proxy between its sidecar and its simulator) is ejected
 * while clients see no error, and comes back after it recovers; client
 * faults (4xx) never open a breaker.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MeshError } from '../client/index.js';
import { Status } from '../common/errors.js';
import type { BreakerTransition } from '../router/upstream/breakers.js';
import { MODEL } from './helpers/mesh.js';
import { startPod } from './helpers/pods.js';
import { startRouterHarness } from './helpers/router-harness.js';
import { nextEvent } from './helpers/wait.js';

const routes = (breaker: string) =>
  `models:\n  ${MODEL}:\n    versions:\n      v1: { weight: 1 }\nupstream:\n  max_attempts: 3\n  retry_budget: { ratio: 1, min_retries: 1000 }\nbreaker:\n${breaker}`;

describe('circuit breakers', () => {
  it('ejects a pod answering 503 with zero client errors, and lets it back after recovery', async (t) => {
    const pods = await Promise.all([
      startPod({ version: 'v1' }),
      startPod({ version: 'v1' }),
      startPod({ version: 'v1', faultProxy: true }),
    ]);
    const sick = pods[2]!;
    const h = await startRouterHarness({
      endpoints: pods.map((p) => p.sidecar.address),
      yaml: routes('  volume_threshold: 3\n  error_threshold_percentage: 50\n  reset_timeout_ms: 300\n'),
      admin: true,
    });
    const sickAddress = sick.sidecar.address;
    const isSick = (tr: BreakerTransition) => tr.endpoint === sickAddress;
    let clientErrors = 0;
    const send = async (n: number, tag: string) => {
      const served: string[] = [];
      await Promise.all(
        Array.from({ length: 4 }, async (_, w) => {
          for (let i = w; i < n; i += 4) {
            try {
              const r = await h.client.generate({
                model: MODEL,
                prompt: `${tag} ${i}`,
                sampling: { maxTokens: 2 },
              });
              served.push(r.endpoint);
            } catch {
              clientErrors++;
            }
          }
        }),
      );
      return served;
    };
    try {
      await h.waitReady(3);
      sick.proxy!.fault = 503;
      const opened = nextEvent<BreakerTransition>(
        h.router.events,
        'breaker',
        (tr) => isSick(tr) && tr.to === 'open',
      );
      const served = await send(60, 'faulty');
      await opened;
      assert.ok(!served.includes(sickAddress), 'the sick pod served nothing');
      assert.ok(sick.proxy!.generations >= 3, 'the sick pod was tried until its breaker opened');
      assert.equal(h.router.breakers.state(sickAddress) === 'closed', false);
      const status = h.router.status().endpoints.find((e) => e.address === sickAddress);
      assert.notEqual(status?.breaker, 'closed');
      assert.match(
        await h.metric('llm_router_breaker_state'),
        new RegExp(`endpoint="${sickAddress}"\\} [12]`),
      );

      // While open (and between probes), the pod gets at most the probes half-open lets through.
      const triedBefore = sick.proxy!.generations;
      sick.proxy!.fault = undefined;
      const closed = nextEvent<BreakerTransition>(
        h.router.events,
        'breaker',
        (tr) => isSick(tr) && tr.to === 'closed',
      );
      let recovered = false;
      void closed.then(() => {
        recovered = true;
      });
      for (let round = 0; round < 100 && !recovered; round++) {
        if (h.router.breakers.state(sickAddress) === 'open') {
          await nextEvent<BreakerTransition>(
            h.router.events,
            'breaker',
            (tr) => isSick(tr) && tr.to === 'half-open',
          );
        }
        if (!recovered) await send(8, `probe ${round}`);
      }
      await closed;
      assert.ok(sick.proxy!.generations > triedBefore, 'a half-open probe reached the pod');
      const back = await send(60, 'recovered');
      assert.ok(back.includes(sickAddress), 'the recovered pod serves again');
      t.diagnostic(`client errors during ejection and recovery: ${clientErrors}`);
      assert.equal(clientErrors, 0);
      assert.match(await h.metric('llm_router_breaker_transitions_total'), /to="open"\} [1-9]/);
    } finally {
      await h.close();
      for (const p of pods) await p.close();
    }
  });

  it('client faults (engine 400s) never open a breaker', async () => {
    const pod = await startPod({ version: 'v1' });
    const h = await startRouterHarness({
      endpoints: [pod.sidecar.address],
      yaml: routes('  volume_threshold: 1\n  error_threshold_percentage: 1\n  max_ejection_percent: 100\n'),
    });
    const transitions: BreakerTransition[] = [];
    h.router.events.on('breaker', (tr: BreakerTransition) => transitions.push(tr));
    try {
      await h.waitReady(1);
      for (let i = 0; i < 20; i++) {
        await assert.rejects(
          // Short words: the router's character-based lower bound lets it through,
          // and the engine's exact count rejects it with a 400.
          h.client.generate({
            model: MODEL,
            prompt: `${i} ${'a '.repeat(7000)}`,
            sampling: { maxTokens: 2000 },
          }),
          (e: MeshError) => e.code === Status.INVALID_ARGUMENT && /maximum context length/.test(e.message),
        );
      }
      assert.equal(h.router.breakers.state(pod.sidecar.address), 'closed');
      assert.deepEqual(transitions, []);
      const r = await h.client.generate({ model: MODEL, prompt: 'fine', sampling: { maxTokens: 2 } });
      assert.equal(r.usage?.completionTokens, 2);
      assert.equal(
        h.traces.filter((tr) => tr.attempts.length > 1).length,
        0,
        'client faults are not retried',
      );
    } finally {
      await h.close();
      await pod.close();
    }
  });

  it('never ejects more than the configured share: with every pod failing, requests still try one', async () => {
    const pods = await Promise.all([
      startPod({ version: 'v1', faultProxy: true }),
      startPod({ version: 'v1', faultProxy: true }),
    ]);
    const h = await startRouterHarness({
      endpoints: pods.map((p) => p.sidecar.address),
      yaml: routes('  volume_threshold: 1\n  reset_timeout_ms: 600000\n  max_ejection_percent: 50\n'),
    });
    try {
      await h.waitReady(2);
      for (const p of pods) p.proxy!.fault = 503;
      for (let i = 0; i < 10; i++) {
        await assert.rejects(
          h.client.generate({ model: MODEL, prompt: `all down ${i}` }),
          (e: MeshError) => e.code === Status.UNAVAILABLE && /injected fault 503/.test(e.message),
        );
      }
      const states = pods.map((p) => h.router.breakers.state(p.sidecar.address));
      assert.deepEqual(states, ['open', 'open']);
      const before = pods.reduce((n, p) => n + p.proxy!.generations, 0);
      await assert.rejects(h.client.generate({ model: MODEL, prompt: 'still trying' }), (e: MeshError) =>
        /injected fault 503/.test(e.message),
      );
      assert.ok(
        pods.reduce((n, p) => n + p.proxy!.generations, 0) > before,
        'one pod stays in the pool (forced try)',
      );
      assert.ok(h.traces.at(-1)?.attempts.every((a) => a.forced));
      // The forced try succeeding closes that pod's breaker.
      for (const p of pods) p.proxy!.fault = undefined;
      const r = await h.client.generate({ model: MODEL, prompt: 'recovered', sampling: { maxTokens: 1 } });
      assert.equal(h.router.breakers.state(r.endpoint), 'closed');
      assert.equal(h.traces.at(-1)?.attempts[0]?.forced, true);
    } finally {
      await h.close();
      for (const p of pods) await p.close();
    }
  });
});
