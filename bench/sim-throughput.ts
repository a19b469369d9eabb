/**
 * How many streamed tokens per second one simulator process emits: starts
 * `llmmesh sim` as its own process (time scale 0 by default, so the engine
 * steps as fast as the process can write), keeps N streaming completions open
 * from this process (closed loop: a finished stream is replaced at once), and
 * counts the SSE token events that arrive. Also reports the CPU the simulator
 * process used, so the figure can be read per core on a shared machine.
 *
 *     npm run bench:sim -- [--streams 512] [--duration-s 10] [--max-tokens 256] [--time-scale 0]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '512' },
    'duration-s': { type: 'string', default: '10' },
    'warmup-s': { type: 'string', default: '2' },
    'max-tokens': { type: 'string', default: '256' },
    'time-scale': { type: 'string', default: '0' },
    preset: { type: 'string', default: 'llama-3.1-8b-h100' },
    // Measure a simulator started separately (e.g. under a profiler) instead of spawning one.
    url: { type: 'string' },
    pid: { type: 'string' },
  },
});
const streams = Number(values.streams);
const simPid = values.pid === undefined ? undefined : Number(values.pid);
const durationMs = Number(values['duration-s']) * 1000;
const warmupMs = Number(values['warmup-s']) * 1000;
const maxTokens = Number(values['max-tokens']);

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'llmmesh.js');
const sim: ChildProcess | undefined = values.url
  ? undefined
  : spawn(
      process.execPath,
      [
        bin,
        'sim',
        '--port',
        '0',
        '--preset',
        String(values.preset),
        '--time-scale',
        String(values['time-scale']),
        '--max-num-seqs',
        String(Math.max(streams, 1)),
        '--max-num-batched-tokens',
        String(Math.max(streams, 8192)),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );

try {
  const url = values.url ?? (await serverUrl(sim!));
  const result = await measure(url);
  const tokensPerS = result.tokens / (result.elapsedMs / 1000);
  const cpuShare = result.simCpuMs / result.elapsedMs;
  const line = (label: string, value: string) => process.stdout.write(`${label.padEnd(34)} ${value}\n`);
  line('streams', String(streams));
  line('max_tokens per request', String(maxTokens));
  line('time scale', String(values['time-scale']));
  line('measured for', `${(result.elapsedMs / 1000).toFixed(1)} s`);
  line('requests completed', String(result.requests));
  line('tokens received', String(result.tokens));
  line('sim CPU (share of one core)', `${(cpuShare * 100).toFixed(0)} %`);
  line('client CPU (share of one core)', `${((result.clientCpuMs / result.elapsedMs) * 100).toFixed(0)} %`);
  line('tokens/s streamed by one sim', Math.round(tokensPerS).toLocaleString('en-US'));
  if (result.simCpuMs > 0) {
    line(
      'tokens per sim CPU-second',
      Math.round(result.tokens / (result.simCpuMs / 1000)).toLocaleString('en-US'),
    );
  }
} finally {
  sim?.kill('SIGTERM');
}

function serverUrl(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const match = /serving on (http:\/\/\S+)/.exec(out);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`sim exited with ${code} before serving`)));
  });
}

/** CPU time (user + system) a process used so far, from /proc (Linux); 0 elsewhere. */
function cpuMsOf(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime are fields 14 and 15 of the whole line, in clock ticks (100 per second on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

interface Measurement {
  tokens: number;
  requests: number;
  elapsedMs: number;
  simCpuMs: number;
  clientCpuMs: number;
}

async function measure(url: string): Promise<Measurement> {
  const { hostname, port } = new URL(url);
  let counting = false;
  let stopping = false;
  let tokens = 0;
  let requests = 0;
  const TOKEN_END = Buffer.from('}\n\n');
  const RESPONSE_END = Buffer.from('\r\n0\r\n\r\n');

  // One keep-alive connection carrying one stream at a time. The client reads raw bytes and only
  // looks for the end of each event and of each response, so it costs far less than the server it
  // measures (an HTTP client parsing every chunk would be the bottleneck).
  const connection = (i: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const socket = connect({ host: hostname, port: Number(port) });
      let n = 0;
      let tail: Buffer = Buffer.alloc(0);
      const send = () => {
        const body = JSON.stringify({
          prompt: `stream ${i} request ${n++}`,
          max_tokens: maxTokens,
          stream: true,
        });
        socket.write(
          `POST /v1/completions HTTP/1.1\r\nhost: ${hostname}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        );
      };
      socket.on('connect', send);
      socket.on('data', (chunk: Buffer) => {
        // Keep the last few bytes so markers split across reads are still seen.
        const data = tail.length > 0 ? Buffer.concat([tail, chunk]) : chunk;
        let events = 0;
        // Markers wholly inside the kept tail were counted with the previous read.
        const from = Math.max(0, tail.length - (TOKEN_END.length - 1));
        for (let at = data.indexOf(TOKEN_END, from); at !== -1; at = data.indexOf(TOKEN_END, at + 3))
          events++;
        if (counting) tokens += events;
        const end = data.indexOf(RESPONSE_END);
        tail = data.subarray(Math.max(0, data.length - 8));
        if (end === -1) return;
        tail = Buffer.alloc(0);
        if (counting) requests++;
        if (stopping) {
          socket.end();
          resolve();
        } else {
          send();
        }
      });
      socket.on('error', reject);
    });

  const all = Promise.all(Array.from({ length: streams }, (_, i) => connection(i)));
  await new Promise((r) => setTimeout(r, warmupMs));
  counting = true;
  const startMs = performance.now();
  const startCpu = cpuMsOf(sim?.pid ?? simPid);
  const clientStart = process.cpuUsage();
  await new Promise((r) => setTimeout(r, durationMs));
  counting = false;
  const elapsedMs = performance.now() - startMs;
  const simCpuMs = cpuMsOf(sim?.pid ?? simPid) - startCpu;
  const clientCpu = process.cpuUsage(clientStart);
  const clientCpuMs = (clientCpu.user + clientCpu.system) / 1000;
  stopping = true;
  await all;
  return { tokens, requests, elapsedMs, simCpuMs, clientCpuMs };
}
