/**
 * What the router's endpoint snapshot costs per stream as pools grow: a
 * stream opened (`track`), the snapshot read for its decision, the stream
 * closed and the snapshot read again, over 10, 100 and 1000 endpoints.
 * The decision itself is bench/schedule-cost.ts.
 *
 *   node --import tsx bench/snapshot-cost.ts [--root DIR] [--iterations 20000] [--json]
 *
 * `--root` loads the router code of another checkout (an older commit in a
 * git worktree), so both can be timed by the same script.
 */
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    root: { type: 'string', default: '.' },
    iterations: { type: 'string', default: '20000' },
    sizes: { type: 'string', default: '10,100,1000' },
    json: { type: 'boolean', default: false },
  },
});
const root = resolve(String(values.root));
const iterations = Number(values.iterations);
const sizes = String(values.sizes).split(',').map(Number);
const load = (path: string) => import(pathToFileURL(resolve(root, path)).href);
const { createEndpointSet } = (await load(
  'router/upstream/endpoints.ts',
)) as typeof import('../router/upstream/endpoints.js');
const { silentLogger } = (await load('common/log.ts')) as typeof import('../common/log.js');

const rows: Array<{ endpoints: number; p50Us: number; p99Us: number; meanUs: number }> = [];
for (const n of sizes) {
  // Nothing listens there: the endpoints stay unconnected, which costs a view the same.
  const addresses = Array.from({ length: n }, (_, i) => `127.0.0.1:${20_000 + i}`);
  const set = createEndpointSet(addresses, {
    logger: silentLogger,
    watcherId: 'bench',
    reconnectBaseMs: 60_000,
  });
  const times = new Float64Array(iterations);
  const warmup = Math.min(2000, iterations);
  for (let i = -warmup; i < iterations; i++) {
    const address = addresses[(Math.abs(i) * 7919) % n] as string;
    const t0 = performance.now();
    const release = set.track(address);
    set.snapshot().pool('', '');
    release();
    set.snapshot().pool('', '');
    const t1 = performance.now();
    if (i >= 0) times[i] = t1 - t0;
  }
  set.close();
  const sorted = Array.from(times).sort((a, b) => a - b);
  rows.push({
    endpoints: n,
    p50Us: (sorted[Math.floor(iterations * 0.5)] ?? 0) * 1000,
    p99Us: (sorted[Math.floor(iterations * 0.99)] ?? 0) * 1000,
    meanUs: (sorted.reduce((s, x) => s + x, 0) / iterations) * 1000,
  });
}

if (values.json) process.stdout.write(`${JSON.stringify({ root, iterations, rows }, null, 2)}\n`);
else {
  process.stdout.write(
    `endpoint snapshot per stream (track, read, release, read), ${iterations} streams per size\n`,
  );
  process.stdout.write('endpoints   mean µs    p50 µs    p99 µs\n');
  for (const r of rows)
    process.stdout.write(
      `${String(r.endpoints).padStart(9)} ${r.meanUs.toFixed(2).padStart(9)} ${r.p50Us.toFixed(2).padStart(9)} ${r.p99Us.toFixed(2).padStart(9)}\n`,
    );
}
process.exit(0);
