/**
 * A benchmark sweep as `llmmesh bench` runs it: every load level (rates or
 * concurrencies) against every target, each target in turn at each level,
 * gathered into one report.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toHtml } from './html-report.js';
import { type LoadMode, type LoadProgress, runLoad } from './load-generator.js';
import { type BenchReport, createReport, modeLabel, runReport, toJson, toMarkdown } from './report.js';
import type { BenchTarget } from './targets.js';
import type { Workload } from './workloads.js';

/** Options of {@link runSweep}. */
export interface BenchOptions {
  title?: string;
  /** The command line, for the report. */
  command: string;
  targets: BenchTarget[];
  model: string;
  workload: Workload;
  /** Load levels, run in order. */
  modes: LoadMode[];
  requests?: number;
  durationMs?: number;
  warmupRequests?: number;
  warmupMs?: number;
  timeoutMs?: number;
  temperature?: number;
  metadata?: Record<string, string>;
  signal?: AbortSignal;
  onProgress?: (label: string, p: LoadProgress) => void;
}

/** Runs the sweep; each run continues the workload where the previous one stopped. */
export async function runSweep(options: BenchOptions): Promise<BenchReport> {
  const report = createReport(options.title ?? 'llmmesh bench', options.command);
  report.notes.push(`Workload: ${options.workload.describe()} (seed ${options.workload.seed}).`);
  const scenario = options.workload.kind;
  let index = 0;
  for (const mode of options.modes) {
    for (const target of options.targets) {
      if (options.signal?.aborted) return report;
      const label = `${target.name} ${modeLabel(mode)}`;
      const result = await runLoad({
        target,
        model: options.model,
        workload: options.workload,
        mode,
        requests: options.requests,
        durationMs: options.durationMs,
        warmupRequests: options.warmupRequests,
        warmupMs: options.warmupMs,
        timeoutMs: options.timeoutMs,
        temperature: options.temperature,
        metadata: options.metadata,
        signal: options.signal,
        startIndex: index,
        onProgress: options.onProgress ? (p) => options.onProgress?.(label, p) : undefined,
      });
      index = result.nextIndex;
      report.runs.push(runReport(scenario, target.name, result));
    }
  }
  return report;
}

/** Paths written by {@link writeReport}. */
export interface WrittenReport {
  json: string;
  markdown: string;
  html: string;
}

/** Writes `<dir>/<name>.json`, `.md` and `.html`. */
export async function writeReport(report: BenchReport, dir: string, name: string): Promise<WrittenReport> {
  await mkdir(dir, { recursive: true });
  const paths = {
    json: join(dir, `${name}.json`),
    markdown: join(dir, `${name}.md`),
    html: join(dir, `${name}.html`),
  };
  await writeFile(paths.json, toJson(report));
  await writeFile(paths.markdown, toMarkdown(report));
  await writeFile(paths.html, toHtml(report));
  return paths;
}
