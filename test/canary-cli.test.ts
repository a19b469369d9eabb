/**
 * `llmmesh canary` against a running router with an admin token: status,
 * pause, resume, rollback and promote, each logged in the timeline and
 * counted; refused without the token; a refused action says why.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { canaryRoutes, PROBE_MS } from './helpers/canary.js';
import { MODEL } from './helpers/mesh.js';
import { type Pod, startPod } from './helpers/pods.js';
import { runToEnd } from './helpers/processes.js';
import { type RouterHarness, startRouterHarness } from './helpers/router-harness.js';

const TOKEN = 'canary-admin-token';

describe('llmmesh canary', () => {
  let pods: Pod[];
  let h: RouterHarness;
  before(async () => {
    pods = await Promise.all(['v1', 'v2'].map((version) => startPod({ version, probeIntervalMs: PROBE_MS })));
    h = await startRouterHarness({
      endpoints: pods.map((p) => p.sidecar.address),
      yaml: canaryRoutes(
        'steps: [10, 50, 100], interval_ms: 600000',
        `admin_token_sha256: ${createHash('sha256').update(TOKEN).digest('hex')}\n`,
      ),
      admin: true,
      adminToken: TOKEN,
    });
    await h.waitReady(2);
  });
  after(async () => {
    await h.close();
    for (const p of pods) await p.close();
  });

  it('shows and steers the progression with the admin token', async () => {
    const admin = h.router.adminUrl as string;
    const canary = (...args: string[]) =>
      runToEnd(['canary', ...args, '--admin', admin, '--admin-token', TOKEN]);

    const refused = await runToEnd(['canary', 'status', '--admin', admin]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /--admin-token/);
    // The action route needs the token too.
    const bare = await fetch(`${admin}/canary/pause`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL }),
    });
    assert.equal(bare.status, 401);

    const status = await canary('status');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`model ${MODEL}: canary v2 vs baseline v1`));
    assert.match(status.stdout, /phase +progressing +share 10 % +steps \[10\] → 50 → 100/);
    assert.match(status.stdout, /judging +this replica alone \(no Redis\)/);

    const paused = await canary('pause', '--model', MODEL);
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /phase +paused/);
    const again = await canary('pause', '--model', MODEL);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /cannot pause: the canary is paused \(HTTP 409\)/);

    const rolled = await canary('rollback', '--model', MODEL);
    assert.equal(rolled.code, 0, rolled.stderr);
    assert.match(rolled.stdout, /phase +rolled_back +share 0 %/);
    assert.match(rolled.stdout, /weights +v1 100, v2 0/);
    const r = await h.client.generate({ model: MODEL, prompt: 'x', sampling: { maxTokens: 1 } });
    assert.equal(r.modelVersion, 'v1');

    const promoted = await canary('promote', '--model', MODEL, '--json');
    assert.equal(promoted.code, 0, promoted.stderr);
    const doc = JSON.parse(promoted.stdout) as Array<{
      phase: string;
      share: number;
      timeline: Array<{ decision: string }>;
    }>;
    assert.deepEqual([doc[0]?.phase, doc[0]?.share], ['completed', 100]);
    assert.deepEqual(
      doc[0]?.timeline.map((e) => e.decision),
      ['start', 'pause', 'rollback', 'promote'],
    );

    const unknown = await canary('resume', '--model', 'nope');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /model "nope" has no canary section/);

    const counted = await h.metric('llm_canary_decisions_total');
    for (const d of ['pause', 'rollback', 'promote']) {
      assert.match(counted, new RegExp(`decision="${d}",reason="operator"\\} 1`));
    }
  });
});
