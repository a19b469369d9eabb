/**
 * How well the sidecar's prefix index predicts the engine's prefix cache.
 *
 * A shared-prefix workload (G system prompts chosen with a Zipf skew, each
 * followed by a unique question, so neither the response cache nor a whole
 * prompt repeats) runs through a sidecar against the simulator, for several
 * KV cache sizes. Before each request the index is asked how many leading
 * blocks of the prompt it holds (what a router's `prefix-cache` scorer
 * computes); the engine's answer carries the truth, `cached_tokens`.
 *
 *   false positive: the index says "cached" (≥ 1 block), the engine had nothing
 *   false negative: the index says "not cached", the engine had ≥ 1 block
 *   |Δ fraction|:   |index-predicted cached share − engine cached share| of the prompt
 *
 * Usage: node --import tsx bench/sidecar-prefix-index.ts [--requests N]
 *        [--concurrency C] [--groups G] [--kv-blocks 64,128,256,512] [--seed S]
 */
import { parseArgs } from 'node:util';
import { silentLogger } from '../common/log.js';
import { canonicalPrompt, DEFAULT_BLOCK_CHARS, prefixBlockHashes } from '../common/prefix-hash.js';
import { createRandom } from '../common/random.js';
import { startSidecar } from '../sidecar/server.js';
import { createSimServer } from '../sim/server.js';
import { createSidecarClient, generate } from './sidecar-client.js';

const MODEL = 'llama-3-8b-chat';
const WORDS = (
  'the of and to in is you that it he was for on are as with his they at be this have from or one had by word ' +
  'but not what all were we when your can said there use an each which she do how their if will up other about ' +
  'out many then them these so some her would make like him into time has look two more write go see number no ' +
  'way could people my than first water been call who oil its now find long down day did get come made may part'
).split(' ');

function words(rng: () => number, n: number): string {
  return Array.from({ length: n }, () => WORDS[Math.floor(rng() * WORDS.length)]).join(' ');
}

/** Zipf(s) over [0, n). */
function zipf(rng: () => number, n: number, s = 1): () => number {
  const weights = Array.from({ length: n }, (_, i) => 1 / (i + 1) ** s);
  const total = weights.reduce((a, b) => a + b, 0);
  return () => {
    let x = rng() * total;
    for (let i = 0; i < n; i++) {
      x -= weights[i] as number;
      if (x <= 0) return i;
    }
    return n - 1;
  };
}

interface Row {
  kvBlocks: number;
  indexCapacity: number;
  requests: number;
  indexHits: number;
  falsePositives: number;
  indexMisses: number;
  falseNegatives: number;
  meanAbsFractionError: number;
  meanSignedFractionError: number;
  engineHitRate: number;
}

async function runOne(
  kvBlocks: number,
  opts: { requests: number; concurrency: number; groups: number; seed: number },
) {
  const sim = createSimServer({
    servedModelName: MODEL,
    timeScale: 0,
    numGpuBlocks: kvBlocks,
    maxModelLen: Math.min(2048, kvBlocks * 16),
  });
  const { url } = await sim.listen(0);
  const sidecar = await startSidecar({
    engineUrl: url,
    listen: '127.0.0.1:0',
    model: MODEL,
    version: 'v1',
    probeIntervalMs: 50,
    responseCache: false,
    logger: silentLogger,
  });
  const client = createSidecarClient(sidecar.address);
  await new Promise<void>((resolve) => {
    const on = (r: { ready: boolean; capacity?: { numGpuBlocks?: number } }) => {
      if (!r.ready || r.capacity?.numGpuBlocks !== kvBlocks) return;
      sidecar.events.off('report', on);
      resolve();
    };
    sidecar.events.on('report', on);
  });

  const rng = createRandom(opts.seed);
  const prefixes = Array.from({ length: opts.groups }, (_, g) => `System prompt ${g}. ${words(rng, 150)}.`);
  const pick = zipf(rng, opts.groups);
  const row: Row = {
    kvBlocks,
    indexCapacity: sidecar.prefixIndex.capacity,
    requests: 0,
    indexHits: 0,
    falsePositives: 0,
    indexMisses: 0,
    falseNegatives: 0,
    meanAbsFractionError: 0,
    meanSignedFractionError: 0,
    engineHitRate: 0,
  };
  let absSum = 0;
  let signedSum = 0;
  let engineHits = 0;
  let next = 0;
  const worker = async () => {
    while (next < opts.requests) {
      const i = next++;
      const prompt = `${prefixes[pick()]} Question ${i}: ${words(rng, 20)}?`;
      const hashes = prefixBlockHashes(canonicalPrompt({ prompt, messages: [] }));
      const matched = sidecar.prefixIndex.matchedBlocks(hashes);
      const r = await generate(client, {
        model: MODEL,
        prompt,
        sampling: { maxTokens: 8, temperature: 0.8 },
      });
      const usage = r.chunks.at(-1)?.usage;
      const cached = usage?.cachedTokens ?? 0;
      const promptTokens = usage?.promptTokens ?? 1;
      const engineHad = cached >= 16;
      const predicted = Math.min(1, (matched * DEFAULT_BLOCK_CHARS) / prompt.length);
      const actual = cached / promptTokens;
      absSum += Math.abs(predicted - actual);
      signedSum += predicted - actual;
      if (engineHad) engineHits++;
      row.requests++;
      if (matched > 0) {
        row.indexHits++;
        if (!engineHad) row.falsePositives++;
      } else {
        row.indexMisses++;
        if (engineHad) row.falseNegatives++;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  row.meanAbsFractionError = absSum / row.requests;
  row.meanSignedFractionError = signedSum / row.requests;
  row.engineHitRate = engineHits / row.requests;
  client.close();
  await sidecar.close();
  await sim.close();
  return row;
}

async function main() {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string', default: '600' },
      concurrency: { type: 'string', default: '4' },
      groups: { type: 'string', default: '16' },
      'kv-blocks': { type: 'string', default: '64,128,256,512' },
      seed: { type: 'string', default: '7' },
    },
  });
  const opts = {
    requests: Number(values.requests),
    concurrency: Number(values.concurrency),
    groups: Number(values.groups),
    seed: Number(values.seed),
  };
  const pct = (n: number, d: number) => (d === 0 ? '   -  ' : `${((100 * n) / d).toFixed(1).padStart(5)}%`);
  console.log(
    `shared-prefix workload: ${opts.groups} system prompts (~150 words, Zipf 1.0) + unique 20-word question, ` +
      `${opts.requests} requests, concurrency ${opts.concurrency}, 8 output tokens`,
  );
  console.log(
    'kv blocks | index cap | engine hit | index "cached" | false pos. | index "not" | false neg. | mean |Δfrac| | bias',
  );
  for (const kv of String(values['kv-blocks']).split(',').map(Number)) {
    const r = await runOne(kv, opts);
    console.log(
      `${String(r.kvBlocks).padStart(9)} | ${String(r.indexCapacity).padStart(9)} | ${pct(r.engineHitRate * r.requests, r.requests).padStart(10)} | ` +
        `${String(r.indexHits).padStart(14)} | ${pct(r.falsePositives, r.indexHits).padStart(10)} | ${String(r.indexMisses).padStart(11)} | ` +
        `${pct(r.falseNegatives, r.indexMisses).padStart(10)} | ${r.meanAbsFractionError.toFixed(3).padStart(12)} | ${r.meanSignedFractionError >= 0 ? '+' : ''}${r.meanSignedFractionError.toFixed(3)}`,
    );
  }
}

await main();
