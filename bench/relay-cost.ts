/**
 * CPU per chunk of the router's chunk handling alone, in one process, no
 * network: decoding each chunk and encoding it again for the client (and
 * keeping its text and ids for a migration), against relaying its bytes
 * (reading the few fields the router acts on and keeping the bytes).
 * 64 streams of 256 one-token chunks, taken in turn as they arrive on the
 * router; interleaved rounds, median CPU per chunk (GC included).
 *
 *     node --import tsx bench/relay-cost.ts [--rounds 5]
 */
import { parseArgs } from 'node:util';
import { decodeChunk, encodeChunk } from '../common/chunk-codec.js';
import { ChunkLog, RelayChunk } from '../common/chunk-relay.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } });
const STREAMS = 64;
const TOKENS = 256;
const WORDS = ['The', ' quick', ' brown', ' fox', ' jumps', ' over', ' the', ' lazy', ' dog', '.'];
const wire = Array.from({ length: TOKENS }, (_, i) =>
  encodeChunk({ text: WORDS[i % WORDS.length], tokenIds: [1000 + i * 37] }),
);
let sink = 0;

/** Decode, keep text and ids, encode the client's copy. */
function decodeEncode(): void {
  const kept = Array.from({ length: STREAMS }, () => ({ text: '', ids: [] as number[] }));
  for (let i = 0; i < TOKENS; i++) {
    for (const k of kept) {
      const chunk = decodeChunk(Buffer.from(wire[i] as Buffer));
      k.text += chunk.text;
      for (const id of chunk.tokenIds) k.ids.push(id);
      sink += encodeChunk({ text: chunk.text, tokenIds: chunk.tokenIds }).length;
    }
  }
}

/** Read the fields the router acts on, keep the bytes, relay them. */
function relay(): void {
  const kept = Array.from({ length: STREAMS }, () => new ChunkLog());
  for (let i = 0; i < TOKENS; i++) {
    for (const log of kept) {
      const chunk = new RelayChunk(Buffer.from(wire[i] as Buffer));
      log.append(chunk.bytes);
      sink += chunk.tokens + chunk.bytes.length;
    }
  }
}

const ns = (f: () => void): number => {
  const start = process.cpuUsage();
  for (let i = 0; i < 20; i++) f();
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / (20 * STREAMS * TOKENS);
};
const contenders = { 'decode + encode': decodeEncode, relay } as const;
const results = new Map<string, number[]>();
for (const f of Object.values(contenders)) for (let i = 0; i < 10; i++) f(); // warm-up
for (let round = 0; round < Number(values.rounds); round++) {
  const names = Object.keys(contenders) as Array<keyof typeof contenders>;
  for (const name of round % 2 ? names.reverse() : names) {
    const list = results.get(name) ?? [];
    list.push(ns(contenders[name]));
    results.set(name, list);
  }
}
for (const [name, list] of results) {
  const sorted = [...list].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] as number;
  process.stdout.write(
    `${name.padEnd(16)} ${median.toFixed(0)} ns CPU per chunk (${sorted[0]?.toFixed(0)}–${sorted.at(-1)?.toFixed(0)})\n`,
  );
}
if (sink < 0) process.stdout.write('\n');
