import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LoadReport } from '../../common/generated/llmmesh/v1/LoadReport.js';
import { prefixBlockHashes } from '../../common/prefix-hash.js';
import { createLoadReporter, type LoadReportBase, type ReportSink } from './load-reporter.js';
import { createPrefixIndex } from './prefix-index.js';

/** A sink whose buffer the test fills and drains by hand, applying updates as a router does. */
function sink() {
  const reports: LoadReport[] = [];
  const index = new Set<number>();
  const s = {
    writableLength: 0,
    ended: false,
    reports,
    index,
    write(r: LoadReport) {
      reports.push(r);
      const u = r.prefixIndex;
      if (u) {
        if (u.reset) index.clear();
        for (const h of u.removed ?? []) index.delete(Number(h));
        for (const h of u.added ?? []) index.add(Number(h));
      }
      return true;
    },
    end() {
      s.ended = true;
    },
  };
  return s satisfies ReportSink;
}

const base = (inFlight = 0): LoadReportBase => ({ model: 'm', version: 'v1', ready: true, inFlight });

describe('load reporter', () => {
  it('sends each watcher a first report with the whole index, then reports with deltas', () => {
    const prefixIndex = createPrefixIndex({ capacity: 100 });
    prefixIndex.record(prefixBlockHashes('a'.repeat(128)));
    const reporter = createLoadReporter({ build: () => base(), prefixIndex, intervalMs: 60_000 });
    const w = sink();
    reporter.addWatcher(w);
    assert.equal(w.reports[0]?.prefixIndex?.reset, true);
    assert.equal(w.index.size, 2);
    reporter.publish();
    assert.equal(w.reports[1]?.prefixIndex, null, 'no change, no update');
    prefixIndex.record(prefixBlockHashes('b'.repeat(64)));
    reporter.publish();
    assert.equal(w.reports[2]?.prefixIndex?.reset, false);
    assert.deepEqual(w.reports[2]?.prefixIndex?.added, prefixBlockHashes('b'.repeat(64)));
    assert.ok((w.reports[2]?.sequence as number) > (w.reports[1]?.sequence as number));
    reporter.close();
  });

  it('a slow watcher skips gauge reports but loses no prefix change', () => {
    const prefixIndex = createPrefixIndex({ capacity: 3 });
    let inFlight = 0;
    const reporter = createLoadReporter({ build: () => base(inFlight), prefixIndex, intervalMs: 60_000 });
    const fast = sink();
    const slow = sink();
    reporter.addWatcher(fast);
    reporter.addWatcher(slow);
    slow.writableLength = 100; // its transport is backed up
    for (let i = 0; i < 5; i++) {
      inFlight = i;
      prefixIndex.record(prefixBlockHashes(String(i).repeat(128)));
      reporter.publish();
    }
    assert.equal(slow.reports.length, 1, 'only the first report');
    assert.equal(fast.reports.length, 6);
    slow.writableLength = 0;
    reporter.publish();
    assert.equal(slow.reports.at(-1)?.inFlight, 4, 'the newest gauges');
    assert.deepEqual([...slow.index].sort(), [...fast.index].sort());
    assert.deepEqual([...slow.index].sort(), prefixIndex.snapshot().sort());
    reporter.close();
  });

  it('reports a change on the next turn of the event loop, once per burst', async () => {
    const prefixIndex = createPrefixIndex();
    const seen: LoadReport[] = [];
    const reporter = createLoadReporter({
      build: () => base(),
      prefixIndex,
      intervalMs: 60_000,
      onReport: (r) => seen.push(r),
    });
    reporter.changed();
    reporter.changed();
    prefixIndex.record(prefixBlockHashes('x'.repeat(64))); // also a change
    assert.equal(seen.length, 0);
    await new Promise((r) => setImmediate(r));
    assert.equal(seen.length, 1);
    reporter.close();
  });

  it('publishes periodically without changes', async () => {
    const prefixIndex = createPrefixIndex();
    let resolve!: () => void;
    const two = new Promise<void>((r) => {
      resolve = r;
    });
    let n = 0;
    const reporter = createLoadReporter({
      build: () => base(),
      prefixIndex,
      intervalMs: 5,
      onReport: () => {
        if (++n === 2) resolve();
      },
    });
    // The reporter's timer does not hold the process open (the gRPC server does); this test must.
    const keepAlive = setTimeout(() => {}, 10_000);
    await two;
    clearTimeout(keepAlive);
    reporter.close();
  });

  it('ends every watcher on shutdown', () => {
    const reporter = createLoadReporter({
      build: () => base(),
      prefixIndex: createPrefixIndex(),
      intervalMs: 60_000,
    });
    const a = sink();
    const remove = reporter.addWatcher(a);
    assert.equal(reporter.watcherCount, 1);
    reporter.endAll();
    assert.equal(a.ended, true);
    assert.equal(reporter.watcherCount, 0);
    remove();
    reporter.close();
  });
});
