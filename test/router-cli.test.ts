/**
 * `llmmesh router` as operators run it: `--check` on the full config, and a
 * running router process that hot-reloads its file, re-reads it on SIGHUP,
 * and rejects an invalid edit while serving on with the last good config.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RouterStatus } from '../router/status.js';
import { startEngineStub } from './helpers/engine-stub.js';
import { listeningOn, runCommand, runToEnd } from './helpers/processes.js';

const FULL = `listen: 127.0.0.1:50051
admin: 127.0.0.1:9090
discovery: { kind: dns, name: llm-sidecars.llm.svc.cluster.local, port: 7001, interval_ms: 5000 }
models:
  llama-3-8b-chat:
    versions: { v1: { weight: 90 }, v2: { weight: 10 } }
    sticky: session_key
    profile: cache-aware
    fallback: true
    deadline_ms: 120000
    canary: { version: v2, baseline: v1, steps: [5, 25, 50, 100], interval_ms: 300000, min_requests: 200, max_error_rate_increase: 0.01, max_ttft_p90_ratio: 1.25, max_itl_p90_ratio: 1.25, on_failure: rollback }
  mixtral:
    versions: { a: { weight: 1, price: { input_per_1k: 0.5, output_per_1k: 1.5 } }, b: { weight: 1, price: { gpu_hour: 2.5, gpus_per_pod: 2, pods: 4, slots_per_pod: 128 } } }
profiles:
  cache-aware:
    filters: [ready, not-draining, circuit-closed, not-saturated]
    scorers: [{ type: prefix-cache, weight: 3 }, { type: session-affinity, weight: 2 }, { type: queue-depth, weight: 1 }, { type: kv-cache, weight: 1 }]
    picker: max-score
  spread: { filters: [ready], scorers: [{ type: least-request }], picker: p2c }
upstream: { max_attempts: 3, default_timeout_ms: 600000, first_token_timeout_ms: 30000, first_token_deadline_share: 0.5, idle_timeout_ms: 15000, migration_limit: 2, retry_budget: { ratio: 0.2, min_retries: 10, window_ms: 10000 } }
breaker: { error_threshold_percentage: 50, volume_threshold: 5, consecutive_failures: 5, reset_timeout_ms: 10000, window_ms: 5000, max_ejection_percent: 50 }
admission: { max_concurrency: 4096, saturation_queue_depth: 8, max_queue_length: 1024, max_queue_wait_ms: 2000, pushback_ms: 1000, min_pushback_ms: 50 }
analysis: { windows_ms: [60000, 300000], bucket_ms: 10000, history_ms: 1800000, redis: redis://127.0.0.1:6379, redis_prefix: llmmesh:canary }
prefix_balance: { abs: 0.3, rel: 2 }
`;

describe('llmmesh router', () => {
  it('--check accepts every documented key and names the bad field of a broken one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmmesh-check-'));
    writeFileSync(join(dir, 'full.yaml'), FULL);
    const ok = await runToEnd(['router', '--config', join(dir, 'full.yaml'), '--check']);
    assert.equal(ok.code, 0, ok.stderr);
    // (Every field's own validation is covered by router/config/load.spec.ts; here, the command.)
    const cases: Array<[string, RegExp]> = [
      [
        FULL.replace('max_ejection_percent: 50', 'max_ejection_percent: 150'),
        /breaker\.max_ejection_percent: /,
      ],
      [
        FULL.replace('baseline: v1', 'baseline: v9'),
        /models\.llama-3-8b-chat\.canary\.baseline: unknown version "v9"/,
      ],
    ];
    for (const [text, problem] of cases) {
      writeFileSync(join(dir, 'bad.yaml'), text);
      const ko = await runToEnd(['router', '--config', join(dir, 'bad.yaml'), '--check']);
      assert.equal(ko.code, 1, text);
      assert.match(ko.stderr, problem);
    }
  });

  it('hot-reloads the file, re-reads it on SIGHUP, and keeps the last good config on an invalid edit', async () => {
    const stub = await startEngineStub({ model: 'm', version: 'v1' });
    const dir = mkdtempSync(join(tmpdir(), 'llmmesh-reload-'));
    const path = join(dir, 'routes.yaml');
    const routes = (w: string) =>
      `models: { m: { versions: { v1: { weight: ${w} }, v2: { weight: 10 } } } }\n`;
    writeFileSync(path, routes('90'));
    const router = runCommand(
      [
        'router',
        '--config',
        path,
        '--listen',
        '127.0.0.1:0',
        '--admin',
        '127.0.0.1:0',
        '--endpoints',
        stub.address,
      ],
      { LLMMESH_LOG_LEVEL: 'info' },
    );
    let stderr = '';
    const waiters = new Set<() => void>();
    router.proc.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
      for (const w of waiters) w();
    });
    /** Resolves when the router has logged `msg` `n` times. */
    const logged = (msg: string, n: number) =>
      new Promise<void>((resolve, reject) => {
        const count = () => stderr.split('\n').filter((l) => l.includes(`"msg":"${msg}"`)).length;
        const check = () => {
          if (count() < n) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        void router.exit.then(() => reject(new Error(`router exited before logging ${msg}:\n${stderr}`)));
        check();
      });
    let adminUrl: string | undefined;
    const status = async () => (await (await fetch(`${adminUrl}/status`)).json()) as RouterStatus;
    const metrics = async () => (await fetch(`${adminUrl}/metrics`)).text();
    try {
      ({ adminUrl } = await listeningOn(router, 'router'));
      writeFileSync(path, routes('50'));
      await logged('config reloaded', 1);
      assert.equal((await status()).models[0]?.versions[0]?.weight, 50);

      // SIGHUP on the file as it was loaded: said and counted as unchanged.
      router.proc.kill('SIGHUP');
      await logged('config unchanged; nothing to reload', 1);
      const afterHup = await metrics();
      assert.match(afterHup, /llm_router_config_reloads_total\{result="applied"\} 1/);
      assert.match(afterHup, /llm_router_config_reloads_total\{result="unchanged"\} 1/);

      writeFileSync(path, routes('"many"'));
      await logged('config rejected; keeping the last good config', 1);
      assert.match(stderr, /models\.m\.versions\.v1\.weight/);
      const rejected = await status();
      assert.equal(rejected.models[0]?.versions[0]?.weight, 50, 'the last good config serves on');
      assert.match(rejected.config.lastRejection?.error ?? '', /models\.m\.versions\.v1\.weight/);
      const m = await metrics();
      assert.match(m, /llm_router_config_reloads_total\{result="rejected"\} 1/);
      assert.match(m, /llm_router_config_last_reload_successful 0/);

      // A good edit clears the rejection.
      writeFileSync(path, routes('70'));
      await logged('config reloaded', 2);
      const recovered = await status();
      assert.equal(recovered.models[0]?.versions[0]?.weight, 70);
      assert.equal(recovered.config.lastRejection, null);
      assert.equal(recovered.config.lastError, '');
      assert.ok(recovered.config.lastReloadAt > 0);
    } finally {
      router.proc.kill('SIGTERM');
      await router.exit;
      await stub.close();
    }
  });
});
