/**
 * Reads a V8 `.cpuprofile` (written by `node --cpu-prof`) and says where the
 * time went: self time per function and per area (grpc-js, Node internals,
 * llmmesh's own code, garbage collection, idle).
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Self time of one function or area. */
export interface ProfileEntry {
  name: string;
  /** Self time, ms. */
  ms: number;
  /** Share of the non-idle time. */
  share: number;
}

/** The summary of a profile. */
export interface ProfileSummary {
  /** Profiled wall time, ms. */
  totalMs: number;
  /** Time the thread was idle (waiting for I/O), ms. */
  idleMs: number;
  functions: ProfileEntry[];
  areas: ProfileEntry[];
}

/** The area a frame belongs to. */
export function areaOf(url: string, functionName: string): string {
  if (functionName === '(garbage collector)') return 'garbage collection';
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(program)' || functionName === '(root)') return 'V8/native (program)';
  if (url.includes('@grpc/grpc-js')) return 'grpc-js';
  if (url.includes('protobufjs') || url.includes('@grpc/proto-loader')) return 'protobuf (de)serialisation';
  if (url.includes('node_modules/'))
    return `dependency: ${url
      .split('node_modules/')
      .pop()
      ?.split('/')
      .slice(0, url.includes('node_modules/@') ? 2 : 1)
      .join('/')}`;
  if (url.startsWith('node:')) return `node: ${url.slice(5).split('/')[0]}`;
  const m = /\/(router|common|sidecar|sim|bench|client)\//.exec(url);
  if (m) return `llmmesh ${m[1]}/`;
  return url === '' ? 'V8/native (program)' : 'other';
}

/** Summarises a `.cpuprofile` file (top `limit` functions). */
export function summarizeCpuProfile(path: string, limit = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfMs = new Map<number, number>();
  if (profile.samples && profile.timeDeltas) {
    for (let i = 0; i < profile.samples.length; i++) {
      const id = profile.samples[i] as number;
      // timeDeltas[i] is the time before sample i; attribute the next delta to it.
      const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
      selfMs.set(id, (selfMs.get(id) ?? 0) + dt);
    }
  }
  const fns = new Map<string, number>();
  const areas = new Map<string, number>();
  let idleMs = 0;
  for (const [id, ms] of selfMs) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const area = areaOf(url, functionName);
    if (area === 'idle') {
      idleMs += ms;
      continue;
    }
    const file = url.split('/').slice(-2).join('/');
    const key = `${functionName || '(anonymous)'} ${file ? `${file}:${lineNumber + 1}` : ''}`.trim();
    fns.set(key, (fns.get(key) ?? 0) + ms);
    areas.set(area, (areas.get(area) ?? 0) + ms);
  }
  const totalMs = (profile.endTime - profile.startTime) / 1000;
  const busy = Math.max(1e-9, totalMs - idleMs);
  const sorted = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, ms]) => ({ name, ms, share: ms / busy }));
  return { totalMs, idleMs, functions: sorted(fns, limit), areas: sorted(areas, 12) };
}
