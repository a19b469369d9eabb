/**
 * Benchmark reports: one JSON document per run of `llmmesh bench` (for
 * machines), rendered as Markdown tables (for people and BENCHMARKS.md) and
 * as an offline HTML page (see `html-report.ts`).
 */
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import type { LoadMode, LoadResult } from './load-generator.js';
import type { LatencyStats, RunStats } from './stats.js';
import type { BenchTarget } from './targets.js';

/** One measured run in a report. */
export interface RunReport {
  /** The scenario or section it belongs to, e.g. `overhead c=64`. */
  scenario: string;
  /** What is compared inside the scenario, e.g. `router`, `direct`, a profile name. */
  series: string;
  target: BenchTarget;
  mode: LoadMode;
  workload: string;
  stats: RunStats;
  /** Counted requests by serving endpoint. */
  endpoints?: Record<string, number>;
  /** Scenario-specific figures (e.g. the engines' prefix-cache hit rate, router CPU). */
  extra?: Record<string, number | string>;
}

/** A precomputed table (e.g. the router's added latency). */
export interface ReportTable {
  title: string;
  columns: string[];
  rows: Array<Array<string | number>>;
  /** Shown under the table. */
  note?: string;
}

/** The machine a report was measured on. */
export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  os: string;
  /** 1-minute load average when the run started (other work on a shared machine shows here). */
  loadAverage: number;
}

/** A whole report. */
export interface BenchReport {
  title: string;
  createdAt: string;
  machine: MachineInfo;
  /** The command that produced it. */
  command: string;
  /** Free-form method notes, one paragraph each. */
  notes: string[];
  tables: ReportTable[];
  runs: RunReport[];
}

/** Describes this machine. */
export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${platform()} ${release()}`,
    loadAverage: Math.round((loadavg()[0] ?? 0) * 100) / 100,
  };
}

/** Creates an empty report. */
export function createReport(title: string, command: string, now: Date = new Date()): BenchReport {
  return {
    title,
    createdAt: now.toISOString(),
    machine: machineInfo(),
    command,
    notes: [],
    tables: [],
    runs: [],
  };
}

/** A report entry from a load result. */
export function runReport(
  scenario: string,
  series: string,
  result: LoadResult,
  extra?: Record<string, number | string>,
): RunReport {
  const out: RunReport = {
    scenario,
    series,
    target: result.target,
    mode: result.mode,
    workload: result.workload,
    stats: result.stats,
    endpoints: result.endpoints,
  };
  if (extra) out.extra = extra;
  return out;
}

/** `rate 4/s` or `concurrency 64`. */
export function modeLabel(mode: LoadMode): string {
  return mode.kind === 'open' ? `rate ${fmt(mode.ratePerS)}/s` : `concurrency ${mode.concurrency}`;
}

/** Formats a number for tables: 3 significant digits below 100, whole numbers above. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  const a = Math.abs(n);
  if (a >= 100) return Math.round(n).toLocaleString('en-US');
  if (a >= 10) return n.toFixed(1);
  if (a >= 1) return n.toFixed(2);
  return n.toPrecision(2);
}

/** `12 UNAVAILABLE, 3 RESOURCE_EXHAUSTED` or `0`. */
export function errorsLabel(stats: RunStats): string {
  const parts = Object.entries(stats.errors).map(([k, v]) => `${v} ${k}`);
  return parts.length === 0 ? '0' : parts.join(', ');
}

const p3 = (l: LatencyStats) => `${fmt(l.p50)} / ${fmt(l.p90)} / ${fmt(l.p99)}`;

/** The standard per-run table. */
export function runsTable(runs: readonly RunReport[], title = 'Runs'): ReportTable {
  const extraKeys = [...new Set(runs.flatMap((r) => Object.keys(r.extra ?? {})))];
  return {
    title,
    columns: [
      'scenario',
      'series',
      'load',
      'ok',
      'errors',
      'req/s',
      'out tok/s',
      'TTFT p50/p90/p99 ms',
      'ITL p50/p90/p99 ms',
      'TPOT p50/p90/p99 ms',
      'e2e p50/p90/p99 ms',
      'cache hit',
      'versions',
      ...extraKeys,
    ],
    rows: runs.map((r) => [
      r.scenario,
      r.series,
      modeLabel(r.mode),
      r.stats.ok,
      errorsLabel(r.stats),
      fmt(r.stats.requestsPerS),
      fmt(r.stats.outputTokensPerS),
      p3(r.stats.ttft),
      p3(r.stats.itl),
      p3(r.stats.tpot),
      p3(r.stats.e2e),
      `${fmt(r.stats.cacheHitRate * 100)} %`,
      Object.entries(r.stats.versions)
        .map(([v, s]) => `${v} ${fmt(s.share * 100)} %`)
        .join(', '),
      ...extraKeys.map((k) => {
        const v = r.extra?.[k];
        return v === undefined ? '' : typeof v === 'number' ? fmt(v) : v;
      }),
    ]),
  };
}

/** One example message per failed status and run, for diagnosis. */
export function errorMessagesTable(runs: readonly RunReport[]): ReportTable {
  return {
    title: 'Error messages (first of each status)',
    columns: ['scenario', 'series', 'load', 'status', 'message'],
    rows: runs.flatMap((r) =>
      Object.entries(r.stats.errorMessages ?? {}).map(([status, message]) => [
        r.scenario,
        r.series,
        modeLabel(r.mode),
        status,
        message.length > 200 ? `${message.slice(0, 200)}…` : message,
      ]),
    ),
  };
}

/** A Markdown table. */
export function markdownTable(table: ReportTable): string {
  const esc = (c: string | number) => String(c).replace(/\|/g, '\\|');
  const lines = [
    `| ${table.columns.map(esc).join(' | ')} |`,
    `| ${table.columns.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...table.rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ];
  if (table.note) lines.push('', table.note);
  return lines.join('\n');
}

/** The whole report as Markdown. */
export function toMarkdown(report: BenchReport): string {
  const m = report.machine;
  const out = [
    `## ${report.title}`,
    '',
    `Measured ${report.createdAt} on ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, Node ${m.node}, ${m.os} (load average ${m.loadAverage} at start).`,
    '',
    `Command: \`${report.command}\``,
  ];
  for (const n of report.notes) out.push('', n);
  for (const t of [...report.tables, runsTable(report.runs)]) {
    if (t.rows.length === 0) continue;
    out.push('', `### ${t.title}`, '', markdownTable(t));
  }
  const messages = errorMessagesTable(report.runs);
  if (messages.rows.length > 0) out.push('', `### ${messages.title}`, '', markdownTable(messages));
  return `${out.join('\n')}\n`;
}

/** The report as pretty JSON. */
export function toJson(report: BenchReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
