/** Adds the summary of a router's V8 CPU profile (`node --cpu-prof`) to a report. */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { summarizeCpuProfile } from '../cpu-profile.js';
import { type BenchReport, fmt } from '../report.js';

/** Summarises the main-thread profile in `dir` (the largest file) as two tables of `report`. */
export async function summarizeProfiles(report: BenchReport, dir: string, label: string): Promise<void> {
  // The main thread's profile is the big one (tsx's loader thread writes a small one too).
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const main = files.sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0];
  if (!main) return;
  const s = summarizeCpuProfile(join(dir, main));
  report.tables.push(
    {
      title: `CPU profile of the ${label}: self time by area`,
      columns: ['area', 'self ms', 'share of busy time'],
      rows: s.areas.map((a) => [a.name, fmt(a.ms), `${fmt(a.share * 100)} %`]),
      note: `${main}: profiled ${fmt(s.totalMs)} ms (start-up included), idle ${fmt(s.idleMs)} ms.`,
    },
    {
      title: `CPU profile of the ${label}: top functions by self time`,
      columns: ['function', 'self ms', 'share of busy time'],
      rows: s.functions.map((f) => [f.name, fmt(f.ms), `${fmt(f.share * 100)} %`]),
    },
  );
}
