import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadRouterConfigFile } from './load.js';
import type { RouterConfig } from './schema.js';
import { watchConfigFile } from './watch.js';

const yaml = (v2: number | string) =>
  `models:\n  m:\n    versions:\n      v1: { weight: 90 }\n      v2: { weight: ${v2} }\n`;

function watcher(path: string) {
  const reloads: RouterConfig[] = [];
  const errors: string[] = [];
  let notify: () => void = () => {};
  const w = watchConfigFile({
    path,
    load: () => loadRouterConfigFile(path),
    onReload: (c) => {
      reloads.push(c);
      notify();
    },
    onError: (e) => {
      errors.push((e as Error).message);
      notify();
    },
    debounceMs: 20,
  });
  const next = () =>
    new Promise<void>((resolve) => {
      notify = resolve;
    });
  return { w, reloads, errors, next };
}

describe('config hot reload', () => {
  it('applies a valid edit, rejects an invalid one naming the field, then recovers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmmesh-watch-'));
    const path = join(dir, 'routes.yaml');
    writeFileSync(path, yaml(10));
    const { w, reloads, errors, next } = watcher(path);
    try {
      let event = next();
      writeFileSync(path, yaml(30));
      await event;
      assert.equal(reloads.at(-1)?.models.m?.versions.v2?.weight, 30);

      event = next();
      writeFileSync(path, yaml('"lots"'));
      await event;
      assert.equal(reloads.length, 1, 'the invalid file was not applied');
      assert.match(errors[0] ?? '', /models\.m\.versions\.v2\.weight/);

      event = next();
      writeFileSync(path, yaml(0));
      await event;
      assert.equal(reloads.at(-1)?.models.m?.versions.v2?.weight, 0);
    } finally {
      w.close();
    }
  });

  it('sees a Kubernetes ConfigMap update (the ..data symlink swapped to a new directory)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmmesh-cm-'));
    // The kubelet layout: routes.yaml -> ..data/routes.yaml, ..data -> ..2026_01_01_v1
    mkdirSync(join(dir, '..v1'));
    writeFileSync(join(dir, '..v1', 'routes.yaml'), yaml(10));
    symlinkSync('..v1', join(dir, '..data'));
    symlinkSync('..data/routes.yaml', join(dir, 'routes.yaml'));
    const path = join(dir, 'routes.yaml');
    const { w, reloads, next } = watcher(path);
    try {
      const event = next();
      mkdirSync(join(dir, '..v2'));
      writeFileSync(join(dir, '..v2', 'routes.yaml'), yaml(50));
      symlinkSync('..v2', join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
      await event;
      assert.equal(reloads.at(-1)?.models.m?.versions.v2?.weight, 50);
    } finally {
      w.close();
    }
  });

  it('reload() re-reads on demand (SIGHUP), and says so when the file is unchanged', () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmmesh-hup-'));
    const path = join(dir, 'routes.yaml');
    writeFileSync(path, yaml(10));
    let unchanged = 0;
    const reloads: RouterConfig[] = [];
    const w = watchConfigFile({
      path,
      load: () => loadRouterConfigFile(path),
      onReload: (c) => reloads.push(c),
      onError: (e) => assert.fail(String(e)),
      onUnchanged: () => unchanged++,
      // No event may beat reload() to the change below.
      debounceMs: 60_000,
    });
    try {
      w.reload();
      assert.equal(reloads.length, 0);
      assert.equal(unchanged, 1);
      writeFileSync(path, yaml(20));
      w.reload();
      assert.equal(reloads.length, 1);
      assert.equal(reloads[0]?.models.m?.versions.v2?.weight, 20);
    } finally {
      w.close();
    }
  });
});
