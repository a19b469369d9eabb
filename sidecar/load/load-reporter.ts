/**
 * The load plane of one sidecar: builds `LoadReport`s and pushes them to every
 * watching router, on every change (bursts within one event-loop turn become
 * one report) and at least every report interval.
 *
 * Gauges are snapshots, so a slow watcher may skip reports (it gets the newest
 * one when its stream drains, never a backlog). Prefix-index changes are not
 * snapshots: each watcher has its own tracker accumulating the net delta
 * since the last report it was actually sent, so skipping a report never
 * loses a change.
 */
import type { LoadReport } from '../../common/generated/llmmesh/v1/LoadReport.js';
import type { PrefixIndex, PrefixIndexTracker } from './prefix-index.js';

/** Default interval between load reports when nothing changes (DESIGN §1). */
export const DEFAULT_REPORT_INTERVAL_MS = 250;

/** Where one watcher's reports go (a grpc-js server stream satisfies it). */
export interface ReportSink {
  /** Bytes buffered and not yet handed to the transport; a report is sent only when 0. */
  readonly writableLength: number;
  write(report: LoadReport): boolean;
  end(): void;
}

/** A load report without the fields the reporter fills in. */
export type LoadReportBase = Omit<LoadReport, 'sequence' | 'prefixIndex'>;

/** Pushes load reports to watchers. */
export interface LoadReporter {
  /** Schedules a report for the next turn of the event loop. */
  changed(): void;
  /** Builds a report and sends it to every watcher that can take it, now. */
  publish(): void;
  /**
   * Adds a watcher and sends it its first report (with the whole prefix index,
   * `reset` set). Returns the function that removes it.
   */
  addWatcher(sink: ReportSink): () => void;
  readonly watcherCount: number;
  /** The current report (gauges only, no prefix index), with a new sequence number. */
  current(): LoadReport;
  /** Ends every watcher's stream (shutdown). */
  endAll(): void;
  /** Stops the periodic reports. */
  close(): void;
}

/** Options of {@link createLoadReporter}. */
export interface LoadReporterOptions {
  /** Builds the gauges of a report. */
  build(): LoadReportBase;
  prefixIndex: PrefixIndex;
  /** Default {@link DEFAULT_REPORT_INTERVAL_MS}. */
  intervalMs?: number;
  /** Called with every published report (without the prefix index). */
  onReport?(report: LoadReport): void;
}

/** Creates a reporter and starts its periodic timer. */
export function createLoadReporter(options: LoadReporterOptions): LoadReporter {
  const intervalMs = options.intervalMs ?? DEFAULT_REPORT_INTERVAL_MS;
  const watchers = new Map<ReportSink, PrefixIndexTracker>();
  let sequence = 0;
  let scheduled = false;
  let closed = false;

  const current = (): LoadReport => ({ ...options.build(), sequence: ++sequence });

  const send = (sink: ReportSink, tracker: PrefixIndexTracker, base: LoadReport) => {
    sink.write({ ...base, prefixIndex: tracker.take() ?? null });
  };

  const publish = () => {
    if (closed) return;
    const base = current();
    options.onReport?.(base);
    for (const [sink, tracker] of watchers) {
      // A watcher still flushing the previous report skips this one; its
      // tracker keeps the prefix delta for the next report it takes.
      if (sink.writableLength === 0) send(sink, tracker, base);
    }
  };

  const timer = setInterval(publish, intervalMs);
  timer.unref();
  options.prefixIndex.onChange(() => reporter.changed());

  const reporter: LoadReporter = {
    changed() {
      if (scheduled || closed) return;
      scheduled = true;
      setImmediate(() => {
        scheduled = false;
        publish();
      });
    },
    publish,
    addWatcher(sink) {
      const tracker = options.prefixIndex.track();
      watchers.set(sink, tracker);
      send(sink, tracker, current());
      return () => {
        if (!watchers.delete(sink)) return;
        tracker.close();
      };
    },
    get watcherCount() {
      return watchers.size;
    },
    current,
    endAll() {
      for (const [sink, tracker] of watchers) {
        tracker.close();
        sink.end();
      }
      watchers.clear();
    },
    close() {
      closed = true;
      clearInterval(timer);
    },
  };
  return reporter;
}
