/**
 * The prefix index against the simulator's real prefix cache: where the
 * index says a prompt's prefix is cached the engine reports cached tokens,
 * and once enough other prompts went through a small KV cache both have
 * evicted it. (The approximation error on a mixed workload is measured by
 * `bench/sidecar-prefix-index.ts`.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createSidecarClient, generate } from '../bench/sidecar-client.js';
import type { EngineClient } from '../common/generated/llmmesh/v1/Engine.js';
import { silentLogger } from '../common/log.js';
import { canonicalPrompt, prefixBlockHashes } from '../common/prefix-hash.js';
import { type Sidecar, startSidecar } from '../sidecar/server.js';
import { createSimServer, type SimServer } from '../sim/server.js';
import { MODEL } from './helpers/mesh.js';
import { nextEvent } from './helpers/wait.js';

const SYSTEM =
  'You are the support assistant of a bicycle shop. Answer briefly, mention opening hours when asked, ' +
  'and never invent prices. Our shop repairs road bikes, mountain bikes and cargo bikes of every brand. ';

const hashesOf = (prompt: string) => prefixBlockHashes(canonicalPrompt({ prompt, messages: [] }));

describe('prefix index vs the engine prefix cache', () => {
  let sim: SimServer;
  let sidecar: Sidecar;
  let client: EngineClient;
  before(async () => {
    // 64 blocks of 16 tokens: about 1,000 tokens of KV cache.
    sim = createSimServer({ servedModelName: MODEL, timeScale: 0, numGpuBlocks: 64, maxModelLen: 1024 });
    const { url } = await sim.listen(0);
    sidecar = await startSidecar({
      engineUrl: url,
      listen: '127.0.0.1:0',
      model: MODEL,
      version: 'v1',
      probeIntervalMs: 50,
      responseCache: false,
      logger: silentLogger,
    });
    client = createSidecarClient(sidecar.address);
    await nextEvent(
      sidecar.events,
      'report',
      (r: { ready: boolean; capacity?: { numGpuBlocks?: number } }) =>
        r.ready && r.capacity?.numGpuBlocks === 64,
    );
  });
  after(async () => {
    client.close();
    await sidecar.close();
    await sim.close();
  });

  const ask = async (prompt: string) => {
    const r = await generate(client, { model: MODEL, prompt, sampling: { maxTokens: 4, temperature: 0.7 } });
    return r.chunks.at(-1)?.usage?.cachedTokens ?? 0;
  };

  it('the index bound follows the KV capacity (64 blocks × 16 tokens × 4 chars / 64 chars)', () => {
    assert.equal(sidecar.prefixIndex.capacity, 64);
  });

  it('says cached where the engine has the prefix, and not where both evicted it', async () => {
    const first = `${SYSTEM}Question: when do you open on Saturdays?`;
    const second = `${SYSTEM}Question: can you fix a cargo bike brake?`;
    const prefixBlocks = Math.floor(SYSTEM.length / 64);
    assert.equal(sidecar.prefixIndex.matchedBlocks(hashesOf(second)), 0, 'nothing served yet');
    assert.equal(await ask(first), 0);

    assert.ok(
      sidecar.prefixIndex.matchedBlocks(hashesOf(second)) >= prefixBlocks,
      'index: the system prompt is cached',
    );
    const cached = await ask(second);
    assert.ok(cached >= 16, `engine: ${cached} cached tokens`);

    // About 3,000 tokens of unrelated prompts through a 1,000-token cache.
    for (let i = 0; i < 20; i++) {
      await ask(
        `Unrelated request number ${i}: ${'describe the weather on a distant planet in detail '.repeat(15)}`,
      );
    }
    const third = `${SYSTEM}Question: do you sell helmets?`;
    assert.equal(sidecar.prefixIndex.matchedBlocks(hashesOf(third)), 0, 'index: evicted');
    assert.equal(await ask(third), 0, 'engine: evicted');
  });

  it("indexes a chat turn with its answer, so the conversation's next turn matches beyond the first prompt", async () => {
    const turn1 = [
      { role: 'system', content: SYSTEM },
      { role: 'user', content: 'My chain keeps slipping on the big cog. What should I check first?' },
    ];
    const r = await generate(client, {
      model: MODEL,
      messages: turn1,
      sampling: { maxTokens: 48, temperature: 0.7 },
    });
    const turn2 = [
      ...turn1,
      { role: 'assistant', content: r.text },
      { role: 'user', content: 'And after that?' },
    ];
    const firstTurnBlocks = prefixBlockHashes(canonicalPrompt({ prompt: '', messages: turn1 })).length;
    const matched = sidecar.prefixIndex.matchedBlocks(
      prefixBlockHashes(canonicalPrompt({ prompt: '', messages: turn2 })),
    );
    assert.ok(
      matched > firstTurnBlocks,
      `${matched} blocks matched, the first turn alone has ${firstTurnBlocks}`,
    );
  });
});
