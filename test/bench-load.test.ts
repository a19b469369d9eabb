/**
 * The load generator against a small in-process mesh: request counts and
 * warm-up honoured, both target kinds, errors by status, versions, and the
 * `llmmesh bench` command writing its reports.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runLoad } from '../bench/load-generator.js';
import type { RequestRecord } from '../bench/stats.js';
import { createWorkload } from '../bench/workloads.js';
import { MODEL, startTestMesh, type TestMesh } from './helpers/mesh.js';
import { runToEnd } from './helpers/processes.js';

describe('bench load generator', () => {
  let mesh: TestMesh;
  let dir: string;
  before(async () => {
    mesh = await startTestMesh({ pods: [{ version: 'v1' }, { version: 'v2' }] });
    dir = await mkdtemp(join(tmpdir(), 'llmmesh-bench-'));
  });
  after(async () => {
    await mesh.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('closed loop: sends warm-up + the requested count, counts only the requested ones', async () => {
    const workload = createWorkload('fixed', { seed: 1, params: { promptLen: 16, outputLen: 8 } });
    const records: RequestRecord[] = [];
    const result = await runLoad({
      target: { name: 'router', kind: 'inference', address: mesh.router.address },
      model: MODEL,
      workload,
      mode: { kind: 'closed', concurrency: 4 },
      requests: 20,
      warmupRequests: 3,
      onRecord: (r) => records.push(r),
    });
    assert.equal(result.sent, 23);
    assert.equal(result.nextIndex, 23);
    assert.equal(result.stats.requests, 20);
    assert.equal(result.stats.ok, 20);
    assert.deepEqual(result.stats.errors, {});
    assert.equal(result.stats.outputTokens, 160, 'usage: 8 completion tokens each');
    assert.equal(result.stats.chunks, 160, 'one chunk per token');
    assert.equal(result.stats.itl.count, 20 * 7);
    assert.equal(result.stats.ttft.count, 20);
    assert.ok(result.stats.promptTokens >= 20 * 16);
    // Versions come from the x-llmmesh-version header; both pods serve.
    const versions = result.stats.versions;
    assert.equal((versions.v1?.requests ?? 0) + (versions.v2?.requests ?? 0), 20);
    assert.equal(
      Object.values(result.endpoints).reduce((a, b) => a + b, 0),
      20,
    );
    for (const r of records) {
      assert.ok(['v1', 'v2'].includes(r.version));
      assert.ok(mesh.pods.some((p) => p.sidecar.address === r.endpoint));
      assert.ok((r.ttftMs ?? -1) >= 0 && r.e2eMs >= (r.ttftMs ?? 0));
    }
  });

  it('open loop: honours the request count and continues the workload from startIndex', async () => {
    const workload = createWorkload('shared-prefix', {
      seed: 5,
      params: { groups: 2, promptsPerGroup: 2, systemPromptLen: 64, questionLen: 8, outputLen: 4 },
    });
    const result = await runLoad({
      target: { name: 'router', kind: 'inference', address: mesh.router.address },
      model: MODEL,
      workload,
      mode: { kind: 'open', ratePerS: 500 },
      requests: 12,
      startIndex: 100,
    });
    assert.equal(result.sent, 12);
    assert.equal(result.nextIndex, 112);
    assert.equal(result.stats.ok, 12);
    assert.equal(result.stats.outputTokens, 48);
    assert.match(result.workload, /^shared-prefix: 2 groups/);
  });

  it('engine target: calls a sidecar directly; failures are counted by status', async () => {
    const pod = mesh.pods[0];
    assert.ok(pod);
    const workload = createWorkload('fixed', { seed: 2, params: { promptLen: 8, outputLen: 5 } });
    const ok = await runLoad({
      target: { name: 'direct', kind: 'engine', address: pod.sidecar.address },
      model: MODEL,
      workload,
      mode: { kind: 'closed', concurrency: 2 },
      requests: 6,
    });
    assert.equal(ok.stats.ok, 6);
    assert.equal(ok.stats.outputTokens, 30);
    assert.deepEqual(Object.keys(ok.stats.versions), ['v1'], 'the version from the first chunk');
    assert.deepEqual(ok.endpoints, { [pod.sidecar.address]: 6 });

    const bad = await runLoad({
      target: { name: 'router', kind: 'inference', address: mesh.router.address },
      model: 'no-such-model',
      workload,
      mode: { kind: 'closed', concurrency: 2 },
      requests: 5,
    });
    assert.equal(bad.stats.ok, 0);
    assert.deepEqual(bad.stats.errors, { NOT_FOUND: 5 });
  });

  it('llmmesh bench writes JSON, Markdown and self-contained HTML reports', async () => {
    const { code, stdout, stderr } = await runToEnd([
      'bench',
      '--target',
      `router=${mesh.router.address},direct=engine@${mesh.pods[1]?.sidecar.address}`,
      '--workload',
      'multi-turn',
      '--conversations',
      '2',
      '--turns',
      '2',
      '--output-len',
      '4',
      '--concurrency',
      '1,2',
      '--requests',
      '4',
      '--out',
      dir,
      '--name',
      'cli',
      '--quiet',
    ]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /\| multi-turn \| router \| concurrency 1 \| 4 \| 0 \|/);
    const report = JSON.parse(await readFile(join(dir, 'cli.json'), 'utf8'));
    assert.equal(report.runs.length, 4, '2 targets × 2 concurrencies');
    assert.deepEqual(
      report.runs.map((r: { series: string; stats: { ok: number } }) => [r.series, r.stats.ok]),
      [
        ['router', 4],
        ['direct', 4],
        ['router', 4],
        ['direct', 4],
      ],
    );
    const html = await readFile(join(dir, 'cli.html'), 'utf8');
    assert.match(html, /<svg /);
    assert.doesNotMatch(html, /https?:\/\/|<script|<link/i);
    assert.match(await readFile(join(dir, 'cli.md'), 'utf8'), /^## llmmesh bench/);
  });

  it('llmmesh bench rejects bad options with a usage error', async () => {
    const { code, stderr } = await runToEnd(['bench', '--rate', '5', '--concurrency', '2']);
    assert.equal(code, 2);
    assert.match(stderr, /give --rate or --concurrency, not both/);
    const bad = await runToEnd(['bench', '--workload', 'nope']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--workload must be one of fixed, shared-prefix, multi-turn, long-prompt/);
  });
});
