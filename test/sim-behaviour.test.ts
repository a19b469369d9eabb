/**
 * The simulator behaves like vLLM under load, seen through its HTTP API: a
 * repeated prompt hits the prefix cache, excess requests wait, a full KV cache
 * preempts, throughput grows with concurrency until the batch is full, and the
 * stream is well-formed SSE in vLLM's shape. Every server runs on a manual
 * clock: the test decides when simulated time passes, so timings are exact.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { createManualClock, type ManualClock } from '../sim/manual-clock.js';
import { createSimServer, type SimOptions, type SimServer } from '../sim/server.js';

const MODEL = 'llama-3-8b-chat';
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'engine');

interface VirtualSim {
  sim: SimServer;
  url: string;
  clock: ManualClock;
  close(): Promise<void>;
}

async function startVirtualSim(options: Partial<SimOptions> = {}): Promise<VirtualSim> {
  const clock = createManualClock(1_767_225_600_000);
  const sim = createSimServer({ servedModelName: MODEL, clock, ...options });
  const { url } = await sim.listen(0);
  return { sim, url, clock, close: () => sim.close() };
}

/** Resolves once `n` more generation requests reached the engine. */
function started(sim: SimServer, n: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const on = () => {
      if (++seen < n) return;
      sim.events.off('request-start', on);
      resolve();
    };
    sim.events.on('request-start', on);
  });
}

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = any;

interface Answer {
  status: number;
  body: Json;
}

function post(url: string, path: string, body: unknown): Promise<Answer> {
  return fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  }).then(async (res) => ({ status: res.status, body: await res.json() }));
}

/** Sends `bodies` at once, lets simulated time run until the engine is idle, and returns the answers. */
async function runTogether(s: VirtualSim, bodies: unknown[], path = '/v1/completions'): Promise<Answer[]> {
  const reached = started(s.sim, bodies.length);
  const answers = Promise.all(bodies.map((b) => post(s.url, path, { model: MODEL, ...(b as object) })));
  await reached;
  s.clock.runAll();
  return answers;
}

async function metrics(url: string): Promise<(name: string) => number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return (name) => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`));
    assert.ok(line, `${name} is exposed`);
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  };
}

describe('sim behaviour: prefix caching', () => {
  it('answers a repeated long prompt with a lower TTFT and counts the prefix cache hits', async () => {
    const s = await startVirtualSim();
    try {
      const prompt = 'The quick brown fox jumps over the lazy dog while the cat sleeps. '.repeat(300);
      const [cold] = await runTogether(s, [{ prompt, max_tokens: 4 }]);
      const afterCold = await metrics(s.url);
      assert.equal(cold!.status, 200);
      assert.equal(cold!.body.usage.prompt_tokens_details, null);
      assert.equal(afterCold('vllm:prefix_cache_hits_total'), 0);
      const coldTtft = afterCold('vllm:time_to_first_token_seconds_sum');

      const [warm] = await runTogether(s, [{ prompt, max_tokens: 4 }]);
      const afterWarm = await metrics(s.url);
      const promptTokens = warm!.body.usage.prompt_tokens as number;
      const cached = warm!.body.usage.prompt_tokens_details.cached_tokens as number;
      // Whole blocks of 16, all but the block holding the last prompt token.
      assert.equal(cached, Math.floor((promptTokens - 1) / 16) * 16);
      assert.equal(afterWarm('vllm:prefix_cache_hits_total'), cached);
      assert.equal(afterWarm('vllm:prefix_cache_queries_total'), 2 * promptTokens);
      const warmTtft = afterWarm('vllm:time_to_first_token_seconds_sum') - coldTtft;
      assert.ok(warmTtft < coldTtft / 5, `warm TTFT ${warmTtft} s vs cold ${coldTtft} s`);
      // Same prompt, same text: the cache changes timing, never output.
      assert.equal(warm!.body.choices[0].text, cold!.body.choices[0].text);

      const [other] = await runTogether(s, [{ prompt: `Something else entirely. ${prompt}`, max_tokens: 4 }]);
      assert.equal(other!.body.usage.prompt_tokens_details, null);
    } finally {
      await s.close();
    }
  });
});

describe('sim behaviour: scheduling', () => {
  it('keeps requests beyond max_num_seqs waiting, then serves them all', async () => {
    // The engine alone: the API server's intake would hold requests before the scheduler sees them.
    const s = await startVirtualSim({ maxNumSeqs: 4, frontEnd: false });
    try {
      const reached = started(s.sim, 10);
      const answers = Promise.all(
        Array.from({ length: 10 }, (_, i) => post(s.url, '/v1/completions', { prompt: `request ${i}` })),
      );
      await reached;
      // One step: the scheduler admits four.
      s.clock.advance(0);
      const during = await metrics(s.url);
      assert.equal(during('vllm:num_requests_running'), 4);
      assert.equal(during('vllm:num_requests_waiting'), 6);
      assert.deepEqual([s.sim.stats.running, s.sim.stats.waiting], [4, 6]);
      s.clock.runAll();
      for (const a of await answers) assert.equal(a.body.usage.completion_tokens, 16);
      const after = await metrics(s.url);
      assert.equal(after('vllm:num_requests_waiting'), 0);
      assert.ok(after('vllm:request_queue_time_seconds_sum') > 0, 'waiting requests spent time in the queue');
    } finally {
      await s.close();
    }
  });

  it('preempts when the KV cache fills, and recomputation leaves the output unchanged', async () => {
    const bodies = Array.from({ length: 4 }, (_, i) => ({
      prompt: `Request number ${i} asks for a long story about the sea and the mountains.`,
      max_tokens: 200,
    }));
    // 24 blocks of 16 tokens; each request grows to ~15 blocks.
    const small = await startVirtualSim({ numGpuBlocks: 24, maxModelLen: 256 });
    const roomy = await startVirtualSim({ maxModelLen: 256 });
    try {
      const squeezed = await runTogether(small, bodies);
      const m = await metrics(small.url);
      assert.ok(m('vllm:num_preemptions_total') > 0, 'preemptions happened');
      assert.equal(m('vllm:kv_cache_usage_perc'), 0);
      const reference = await runTogether(roomy, bodies);
      assert.equal((await metrics(roomy.url))('vllm:num_preemptions_total'), 0);
      for (const [i, a] of squeezed.entries()) {
        assert.equal(a.body.choices[0].finish_reason, 'length');
        assert.equal(a.body.usage.completion_tokens, 200);
        assert.equal(a.body.choices[0].text, reference[i]!.body.choices[0].text);
      }
    } finally {
      await Promise.all([small.close(), roomy.close()]);
    }
  });

  it('raises throughput with concurrency until the batch is full, then saturates', async () => {
    // The engine alone: with the API server, intake rather than the batch would cap a burst.
    const s = await startVirtualSim({ maxNumSeqs: 64, frontEnd: false });
    try {
      const throughput: number[] = [];
      for (const concurrency of [1, 8, 64, 256]) {
        const t0 = s.clock.now();
        const answers = await runTogether(
          s,
          Array.from({ length: concurrency }, (_, i) => ({
            prompt: `c${concurrency} r${i}`,
            max_tokens: 64,
          })),
        );
        const tokens = answers.reduce((n, a) => n + (a.body.usage.completion_tokens as number), 0);
        throughput.push(tokens / ((s.clock.now() - t0) / 1000));
      }
      const [c1, c8, c64, c256] = throughput as [number, number, number, number];
      assert.ok(c8 > 4 * c1, `1 → 8: ${c1} → ${c8} tok/s`);
      assert.ok(c64 > 2 * c8, `8 → 64: ${c8} → ${c64} tok/s`);
      // 64 sequences at most run at once: more concurrency only queues.
      assert.ok(Math.abs(c256 / c64 - 1) < 0.1, `64 → 256: ${c64} → ${c256} tok/s`);
    } finally {
      await s.close();
    }
  });
});

describe('sim behaviour: validation', () => {
  it("answers a prompt over the context length with vLLM's 400", async () => {
    const s = await startVirtualSim({ maxModelLen: 512 });
    try {
      const prompt = 'word '.repeat(600);
      const count = (await post(s.url, '/tokenize', { prompt })).body.count as number;
      const answer = await post(s.url, '/v1/completions', { model: MODEL, prompt, max_tokens: 16 });
      assert.equal(answer.status, 400);
      assert.deepEqual(answer.body, {
        error: {
          message:
            `This model's maximum context length is 512 tokens. However, you requested ${count + 16} tokens ` +
            `(${count} in the messages, 16 in the completion). Please reduce the length of the messages or completion.`,
          type: 'BadRequestError',
          param: null,
          code: 400,
        },
      });
      assert.equal(s.sim.stats.started, 0);
    } finally {
      await s.close();
    }
  });
});

/** The structure of a JSON value, keys in order, with leaves replaced by their type. */
function shape(value: unknown): string {
  const walk = (v: unknown): unknown => {
    if (v === null) return null;
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v === 'object')
      return Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, walk(x)]));
    return typeof v;
  };
  return JSON.stringify(walk(value));
}

function fixtureChunks(file: string): Json[] {
  return readFileSync(join(FIXTURES, file), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('data: {'))
    .map((l) => JSON.parse(l.slice('data: '.length)));
}

/** Streams a request and parses the whole body with eventsource-parser. */
async function streamMessages(s: VirtualSim, path: string, body: object): Promise<EventSourceMessage[]> {
  const messages: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (m) => messages.push(m) });
  const reached = started(s.sim, 1);
  const res = await fetch(`${s.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, stream: true, ...body }),
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  await reached;
  s.clock.runAll();
  const decoder = new TextDecoder();
  for await (const chunk of res.body!) parser.feed(decoder.decode(chunk, { stream: true }));
  return messages;
}

describe('sim behaviour: SSE', () => {
  it('streams completions an SSE parser reads whole, in the shape of a vLLM capture', async () => {
    const s = await startVirtualSim();
    try {
      const messages = await streamMessages(s, '/v1/completions', {
        prompt: 'San Francisco is a',
        max_tokens: 7,
        stream_options: { include_usage: true },
      });
      assert.ok(messages.every((m) => m.event === undefined && m.id === undefined));
      assert.equal(messages.at(-1)?.data, '[DONE]');
      const chunks = messages.slice(0, -1).map((m) => JSON.parse(m.data));
      assert.equal(chunks.length, 7 + 1);
      const [fixtureFirst] = fixtureChunks('vllm-completions-stream.sse');
      // vLLM ≥ 0.10 adds prompt_token_ids and token_ids to each choice (CompletionResponseStreamChoice);
      // the capture predates them. Everything else is field for field the same.
      const withNewFields = {
        ...fixtureFirst,
        choices: [{ ...fixtureFirst.choices[0], prompt_token_ids: null, token_ids: null }],
        usage: null,
      };
      for (const chunk of chunks.slice(0, 6)) assert.equal(shape(chunk), shape(withNewFields));
      assert.equal(chunks[6].choices[0].finish_reason, 'length');
      const usage = chunks[7];
      assert.deepEqual(usage.choices, []);
      assert.equal(usage.usage.completion_tokens, 7);
      assert.equal(new Set(chunks.map((c: Json) => c.id)).size, 1);
    } finally {
      await s.close();
    }
  });

  it('streams chat completions in the shape of a vLLM capture: role chunk, content chunks, final chunk', async () => {
    const s = await startVirtualSim();
    try {
      const messages = await streamMessages(s, '/v1/chat/completions', {
        messages: [{ role: 'user', content: 'Say something about GPUs.' }],
        max_tokens: 5,
      });
      assert.equal(messages.at(-1)?.data, '[DONE]');
      const chunks = messages.slice(0, -1).map((m) => JSON.parse(m.data));
      const fixture = fixtureChunks('vllm-chat-stream.sse');
      assert.equal(shape(chunks[0]), shape(fixture[0]));
      for (const chunk of chunks.slice(1, -1)) assert.equal(shape(chunk), shape(fixture[1]));
      assert.equal(shape(chunks.at(-1)), shape(fixture.at(-1)));
      assert.equal(chunks.length, 1 + 5);
    } finally {
      await s.close();
    }
  });
});
