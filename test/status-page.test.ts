/**
 * The router's status page in a real headless browser (Debian's chromium,
 * driven by playwright-core): it lists the endpoints and shows a breaker
 * opening when an engine starts failing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import { createInferenceClient, type InferenceClient } from '../client/index.js';
import { silentLogger } from '../common/log.js';
import { validateRouterConfig } from '../router/config/load.js';
import { type Router, startRouter } from '../router/server.js';
import { type Sidecar, startSidecar } from '../sidecar/server.js';
import { createSimServer, type SimServer } from '../sim/server.js';
import { nextEvent, waitUntil } from './helpers/wait.js';

const MODEL = 'llama-3-8b-chat';
const CHROMIUM = process.env.LLMMESH_CHROMIUM ?? '/usr/bin/chromium';

describe('status page in a browser', () => {
  const pods: Array<{ sim: SimServer; url: string; sidecar: Sidecar }> = [];
  let router: Router;
  let client: InferenceClient;
  let browser: Browser;

  before(async () => {
    for (let i = 0; i < 2; i++) {
      const sim = createSimServer({ servedModelName: MODEL, timeScale: 0 });
      const { url } = await sim.listen(0, '127.0.0.1');
      const sidecar = await startSidecar({
        engineUrl: url,
        listen: '127.0.0.1:0',
        model: MODEL,
        version: i === 0 ? 'v1' : 'v2',
        admin: false,
        responseCache: false,
        probeIntervalMs: 50,
        logger: silentLogger,
      });
      pods.push({ sim, url, sidecar });
    }
    router = await startRouter({
      config: validateRouterConfig({
        listen: '127.0.0.1:0',
        admin: '127.0.0.1:0',
        discovery: { kind: 'static', endpoints: pods.map((p) => p.sidecar.address) },
        models: { [MODEL]: { versions: { v1: { weight: 90 }, v2: { weight: 10 } } } },
        breaker: {
          volume_threshold: 1,
          error_threshold_percentage: 1,
          max_ejection_percent: 100,
          reset_timeout_ms: 600_000,
        },
      }),
      logger: silentLogger,
    });
    await waitUntil(
      router.endpoints.events,
      'change',
      () => router.endpoints.snapshot().endpoints.filter((e) => e.ready).length === 2,
      'two ready endpoints',
    );
    client = createInferenceClient(router.address, { maxAttempts: 1 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  after(async () => {
    await browser?.close();
    client?.close();
    await router?.close(0);
    for (const p of pods) {
      await p.sidecar.close();
      await p.sim.close();
    }
  });

  it('shows versions and endpoints, and a breaker opening', async () => {
    const page = await browser.newPage();
    await page.goto(`${router.adminUrl}/`);
    const [v1, v2] = [pods[0]!.sidecar.address, pods[1]!.sidecar.address];
    await page.locator(`tr[data-endpoint="${v1}"]`).waitFor();
    await page.locator(`tr[data-endpoint="${v2}"]`).waitFor();
    assert.match(await page.locator(`tr[data-endpoint="${v1}"]`).innerText(), /ready/);
    assert.match(await page.locator(`tr[data-version="${MODEL}/v2"]`).innerText(), /10\.0 %/);
    assert.equal(await page.locator(`tr[data-endpoint="${v2}"] td.breaker`).innerText(), 'closed');

    // v2's engine starts failing every request: its breaker opens.
    const res = await fetch(`${pods[1]!.url}/sim/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ error_rate: 1, error_status: 500 }),
    });
    assert.equal(res.status, 200);
    const opened = nextEvent<{ endpoint: string; to: string }>(
      router.events,
      'breaker',
      (t) => t.endpoint === v2 && t.to === 'open',
    );
    await client.generate({ model: MODEL, prompt: 'x', routing: { version: 'v2' } }).catch(() => {});
    await opened;
    // The page refreshes itself: no reload.
    await page
      .locator(`tr[data-endpoint="${v2}"] td.breaker`, { hasText: 'open' })
      .waitFor({ timeout: 10_000 });
    assert.equal(await page.locator(`tr[data-endpoint="${v1}"] td.breaker`).innerText(), 'closed');
    await page.close();
  });
});
