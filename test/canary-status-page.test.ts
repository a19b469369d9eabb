/**
 * The canary on the router's status page, in headless Chromium: the
 * progression with its timeline, the per-version comparison side by side,
 * and inline SVG charts; the page loads nothing but its own origin, and
 * follows a rollback without a reload.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import type { CanaryEvent } from '../router/canary/controller.js';
import { canaryRoutes, drive, PROBE_MS } from './helpers/canary.js';
import { MODEL } from './helpers/mesh.js';
import { type Pod, startPod } from './helpers/pods.js';
import { type RouterHarness, startRouterHarness } from './helpers/router-harness.js';
import { nextEvent } from './helpers/wait.js';

const CHROMIUM = process.env.LLMMESH_CHROMIUM ?? '/usr/bin/chromium';

describe('canary on the status page', () => {
  let pods: Pod[];
  let h: RouterHarness;
  let browser: Browser;
  before(async () => {
    pods = await Promise.all(['v1', 'v2'].map((version) => startPod({ version, probeIntervalMs: PROBE_MS })));
    h = await startRouterHarness({
      endpoints: pods.map((p) => p.sidecar.address),
      // Latency bounds out of reach: this test is about the page, not the judge.
      yaml: canaryRoutes(
        'steps: [10, 50, 100], interval_ms: 400, min_requests: 5, max_ttft_p90_ratio: 1000, max_itl_p90_ratio: 1000',
      ),
      admin: true,
    });
    await h.waitReady(2);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
      ],
    });
  });
  after(async () => {
    await browser?.close();
    await h?.close();
    for (const p of pods ?? []) await p.close();
  });

  it('shows the progression, its timeline, the comparison and charts, and follows a rollback', async () => {
    const load = drive(h, 8);
    await nextEvent<CanaryEvent>(h.router.events, 'canary', (e) => e.decision === 'advance', 30_000).finally(
      () => load.stop(),
    );
    const { errors } = await load.stop();
    assert.deepEqual(errors, []);

    const page = await browser.newPage();
    const origins = new Set<string>();
    page.on('request', (r) => origins.add(new URL(r.url()).origin));
    await page.goto(`${h.router.adminUrl}/`);
    const card = page.locator(`.canary[data-canary="${MODEL}"]`);
    await card.waitFor();
    assert.match((await card.locator('.phase').textContent()) ?? '', /progressing/);
    assert.equal((await card.locator('.share').textContent()) ?? '', '50 %');
    assert.match((await card.locator('.steps span.now').textContent()) ?? '', /50 %/);
    assert.ok((await card.locator('li[data-decision="start"]').count()) === 1);
    assert.match(
      (await card.locator('li[data-decision="advance"]').textContent()) ?? '',
      /advance → 50 % · healthy/,
    );

    // Side by side: each window has a column per version and a canary / baseline ratio.
    const table = page.locator(`table.compare[data-model="${MODEL}"][data-window="1m"]`);
    await table.waitFor();
    for (const v of ['v1', 'v2']) {
      const n = Number(
        (await table.locator(`tr[data-metric="requests"] td[data-version="${v}"]`).textContent()) ?? '',
      );
      assert.ok(n > 0, `${v} requests ${n}`);
      assert.match(
        (await table.locator(`tr[data-metric="ttftP90"] td[data-version="${v}"]`).textContent()) ?? '',
        /\d ms$/,
      );
      assert.notEqual(
        (await table.locator(`tr[data-metric="costPer1kRequests"] td[data-version="${v}"]`).textContent()) ??
          '',
        '–',
      );
    }
    assert.match(
      (await table.locator('tr[data-metric="ttftP90"] td.ratio').textContent()) ?? '',
      /^\d+\.\d\d×$/,
    );
    assert.equal(await page.locator(`table.compare[data-model="${MODEL}"][data-window="5m"]`).count(), 1);
    // Charts: inline SVG, a line per version.
    for (const chart of ['ttftP90', 'errorRate', 'requests']) {
      const svg = page.locator(`svg[data-chart="${chart}"][data-model="${MODEL}"]`);
      assert.equal(await svg.count(), 1, chart);
      assert.ok((await svg.locator('polyline[data-version="v1"], circle').count()) >= 1, chart);
    }

    // A rollback shows without a reload.
    const res = await fetch(`${h.router.adminUrl}/canary/rollback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL }),
    });
    assert.equal(res.status, 200, await res.text());
    await card.locator('.phase', { hasText: 'rolled_back' }).waitFor({ timeout: 10_000 });
    assert.equal((await card.locator('.share').textContent()) ?? '', '0 %');
    assert.match(
      (await card.locator('li[data-decision="rollback"]').textContent()) ?? '',
      /rollback → 0 % · operator/,
    );
    // Nothing but the router's own origin: no CDN, no network scripts.
    assert.deepEqual([...origins], [new URL(h.router.adminUrl as string).origin]);
    await page.close();
  });
});
