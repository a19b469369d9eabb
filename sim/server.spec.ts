import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createSimServer, type SimOptions, type SimServer } from './server.js';

const MODEL = 'llama-3-8b-chat';

interface Sim {
  sim: SimServer;
  url: string;
}

async function startSim(options: Partial<SimOptions> = {}): Promise<Sim> {
  const sim = createSimServer({ servedModelName: MODEL, timeScale: 0, ...options });
  const { url } = await sim.listen(0);
  return { sim, url };
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** Splits an SSE body into its `data:` payloads; checks the `\n\n` framing on the way. */
function sseData(text: string): string[] {
  assert.ok(text.endsWith('\n\n'), 'every event ends with a blank line');
  return text
    .slice(0, -2)
    .split('\n\n')
    .map((event) => {
      assert.ok(event.startsWith('data: '), `event is a data line: ${event}`);
      return event.slice('data: '.length);
    });
}

// biome-ignore lint/suspicious/noExplicitAny: chunks are checked field by field
type Json = any;

async function json(res: Response): Promise<Json> {
  return (await res.json()) as Json;
}

async function streamEvents(res: Response): Promise<{ chunks: Json[]; done: boolean }> {
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const data = sseData(await res.text());
  const done = data.at(-1) === '[DONE]';
  return { chunks: (done ? data.slice(0, -1) : data).map((d) => JSON.parse(d)), done };
}

async function completionText(url: string, body: Record<string, unknown>): Promise<Json> {
  const res = await post(`${url}/v1/completions`, { model: MODEL, ...body });
  assert.equal(res.status, 200);
  return json(res);
}

describe('sim server: OpenAI API', () => {
  let s: Sim;
  before(async () => {
    s = await startSim();
  });
  after(() => s.sim.close());

  it('streams completions chunk by chunk in vLLM format, with a usage chunk and [DONE]', async () => {
    const res = await post(`${s.url}/v1/completions`, {
      model: MODEL,
      prompt: 'San Francisco is a',
      max_tokens: 64,
      stream: true,
      stream_options: { include_usage: true },
    });
    const { chunks, done } = await streamEvents(res);
    assert.ok(done, 'ends with data: [DONE]');
    const content = chunks.slice(0, -1);
    const usage = chunks.at(-1);
    assert.equal(content.length, 64, 'one chunk per token');
    const id = content[0].id;
    assert.match(id, /^cmpl-[0-9a-f]{32}$/);
    for (const [i, chunk] of content.entries()) {
      // vLLM 0.11 field order; the 0.9 fixture has the same fields minus prompt_token_ids/token_ids.
      assert.deepEqual(Object.keys(chunk), ['id', 'object', 'created', 'model', 'choices', 'usage']);
      assert.equal(chunk.id, id);
      assert.equal(chunk.object, 'text_completion');
      assert.ok(Number.isInteger(chunk.created));
      assert.equal(chunk.model, MODEL);
      assert.equal(chunk.usage, null);
      assert.equal(chunk.choices.length, 1);
      const choice = chunk.choices[0];
      assert.deepEqual(Object.keys(choice), [
        'index',
        'text',
        'logprobs',
        'finish_reason',
        'stop_reason',
        'prompt_token_ids',
        'token_ids',
      ]);
      assert.equal(choice.index, 0);
      assert.equal(typeof choice.text, 'string');
      assert.ok(choice.text.length > 0);
      assert.equal(choice.logprobs, null);
      assert.equal(choice.finish_reason, i === 63 ? 'length' : null);
      assert.equal(choice.stop_reason, null);
    }
    const prompt = await json(
      await post(`${s.url}/tokenize`, { model: MODEL, prompt: 'San Francisco is a' }),
    );
    assert.deepEqual(usage, {
      id,
      object: 'text_completion',
      created: content[0].created,
      model: MODEL,
      choices: [],
      usage: { prompt_tokens: prompt.count, total_tokens: prompt.count + 64, completion_tokens: 64 },
    });
  });

  it('streams chat completions with the role chunk first', async () => {
    const res = await post(`${s.url}/v1/chat/completions`, {
      model: MODEL,
      messages: [{ role: 'user', content: 'Tell me about GPUs.' }],
      max_tokens: 8,
      stream: true,
      stream_options: { include_usage: true },
    });
    const { chunks, done } = await streamEvents(res);
    assert.ok(done);
    assert.equal(chunks.length, 1 + 8 + 1);
    const [role, ...rest] = chunks;
    const id = role.id;
    assert.match(id, /^chatcmpl-[0-9a-f]{32}$/);
    assert.deepEqual(role, {
      id,
      object: 'chat.completion.chunk',
      created: role.created,
      model: MODEL,
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
      prompt_token_ids: null,
    });
    const content = rest.slice(0, -1);
    for (const [i, chunk] of content.entries()) {
      const last = i === content.length - 1;
      assert.deepEqual(Object.keys(chunk), ['id', 'object', 'created', 'model', 'choices']);
      assert.equal(chunk.object, 'chat.completion.chunk');
      const choice = chunk.choices[0];
      assert.deepEqual(
        choice,
        last
          ? {
              index: 0,
              delta: { content: choice.delta.content },
              logprobs: null,
              finish_reason: 'length',
              stop_reason: null,
              token_ids: null,
            }
          : {
              index: 0,
              delta: { content: choice.delta.content },
              logprobs: null,
              finish_reason: null,
              token_ids: null,
            },
      );
      assert.equal(typeof choice.delta.content, 'string');
    }
    const usage = rest.at(-1);
    assert.deepEqual(usage.choices, []);
    assert.deepEqual(Object.keys(usage.usage), ['prompt_tokens', 'total_tokens', 'completion_tokens']);
    assert.equal(usage.usage.completion_tokens, 8);
    const prompt = await json(
      await post(`${s.url}/tokenize`, {
        model: MODEL,
        messages: [{ role: 'user', content: 'Tell me about GPUs.' }],
      }),
    );
    assert.equal(usage.usage.prompt_tokens, prompt.count);
  });

  it('streams without a usage chunk when include_usage is not requested', async () => {
    const res = await post(`${s.url}/v1/completions`, { prompt: 'hello', max_tokens: 3, stream: true });
    const { chunks, done } = await streamEvents(res);
    assert.ok(done);
    assert.equal(chunks.length, 3);
    assert.ok(chunks.every((c: Json) => c.choices.length === 1));
  });

  it('answers non-streaming completions and chat with full bodies and usage', async () => {
    const completion = await completionText(s.url, { prompt: 'The capital of France is', max_tokens: 5 });
    assert.match(completion.id, /^cmpl-[0-9a-f]{32}$/);
    assert.deepEqual(Object.keys(completion), [
      'id',
      'object',
      'created',
      'model',
      'choices',
      'service_tier',
      'system_fingerprint',
      'usage',
      'kv_transfer_params',
    ]);
    assert.equal(completion.object, 'text_completion');
    assert.equal(completion.choices[0].finish_reason, 'length');
    assert.equal(completion.choices[0].stop_reason, null);
    assert.equal(completion.usage.completion_tokens, 5);
    assert.equal(completion.usage.total_tokens, completion.usage.prompt_tokens + 5);
    assert.equal(completion.usage.prompt_tokens_details, null);

    const res = await post(`${s.url}/v1/chat/completions`, {
      model: MODEL,
      messages: [{ role: 'user', content: 'Write a poem about GPUs.' }],
      max_tokens: 6,
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    const chat = await json(res);
    // Shape of the vllm-chat-nonstream.json fixture.
    assert.deepEqual(chat, {
      id: chat.id,
      object: 'chat.completion',
      created: chat.created,
      model: MODEL,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: chat.choices[0].message.content,
            refusal: null,
            annotations: null,
            audio: null,
            function_call: null,
            tool_calls: [],
            reasoning_content: null,
          },
          logprobs: null,
          finish_reason: 'length',
          stop_reason: null,
          token_ids: null,
        },
      ],
      service_tier: null,
      system_fingerprint: null,
      usage: {
        prompt_tokens: chat.usage.prompt_tokens,
        total_tokens: chat.usage.prompt_tokens + 6,
        completion_tokens: 6,
        prompt_tokens_details: null,
      },
      prompt_logprobs: null,
      prompt_token_ids: null,
      kv_transfer_params: null,
    });
    assert.match(chat.id, /^chatcmpl-[0-9a-f]{32}$/);
  });

  it('is deterministic: same request, same text; other prompt or seed, other text', async () => {
    const a = await completionText(s.url, { prompt: 'Once upon a time', max_tokens: 24 });
    const b = await completionText(s.url, { prompt: 'Once upon a time', max_tokens: 24 });
    const other = await completionText(s.url, { prompt: 'Twice upon a time', max_tokens: 24 });
    const seeded = await completionText(s.url, { prompt: 'Once upon a time', max_tokens: 24, seed: 42 });
    assert.equal(a.choices[0].text, b.choices[0].text);
    assert.notEqual(a.choices[0].text, other.choices[0].text);
    assert.notEqual(a.choices[0].text, seeded.choices[0].text);

    const streamed = await streamEvents(
      await post(`${s.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 24, stream: true }),
    );
    assert.equal(streamed.chunks.map((c: Json) => c.choices[0].text).join(''), a.choices[0].text);
  });

  it('defaults max_tokens to 16 for completions', async () => {
    const { chunks } = await streamEvents(
      await post(`${s.url}/v1/completions`, { prompt: 'Count:', stream: true }),
    );
    assert.equal(chunks.length, 16);
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
  });

  it('honours stop strings: output cut before the match, stop_reason is the match', async () => {
    const full = (await completionText(s.url, { prompt: 'Stop me', max_tokens: 40 })).choices[0]
      .text as string;
    const words = full.split(' ');
    const stop = ` ${words[8]}`;
    const expected = full.slice(0, full.indexOf(stop));

    const cut = await completionText(s.url, { prompt: 'Stop me', max_tokens: 40, stop: [stop] });
    assert.equal(cut.choices[0].text, expected);
    assert.equal(cut.choices[0].finish_reason, 'stop');
    assert.equal(cut.choices[0].stop_reason, stop);

    const { chunks } = await streamEvents(
      await post(`${s.url}/v1/completions`, { prompt: 'Stop me', max_tokens: 40, stop, stream: true }),
    );
    assert.equal(chunks.map((c: Json) => c.choices[0].text).join(''), expected);
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
    assert.equal(chunks.at(-1).choices[0].stop_reason, stop);
    assert.ok(chunks.slice(0, -1).every((c: Json) => c.choices[0].finish_reason === null));
  });

  it('uses X-Request-Id as the response id', async () => {
    const body = await json(
      await post(`${s.url}/v1/completions`, { prompt: 'x', max_tokens: 1 }, { 'x-request-id': 'abc123' }),
    );
    assert.equal(body.id, 'cmpl-abc123');
  });

  it('tokenizes prompts and chat messages', async () => {
    const res = await post(`${s.url}/tokenize`, {
      model: MODEL,
      prompt: 'Hello, world!',
      return_token_strs: true,
    });
    assert.equal(res.status, 200);
    const body = await json(res);
    assert.deepEqual(Object.keys(body), ['count', 'max_model_len', 'tokens', 'token_strs']);
    assert.equal(body.count, body.tokens.length);
    assert.equal(body.max_model_len, 131_072);
    assert.deepEqual(body.token_strs, ['<|begin_of_text|>', 'Hello', ',', ' world', '!']);
    const plain = await json(await post(`${s.url}/tokenize`, { prompt: 'Hello, world!' }));
    assert.equal(plain.token_strs, null);
    assert.deepEqual(plain.tokens, body.tokens);
  });

  it('lists the served model and reports the version', async () => {
    const models = await json(await fetch(`${s.url}/v1/models`));
    assert.equal(models.object, 'list');
    assert.equal(models.data.length, 1);
    const [card] = models.data;
    assert.deepEqual(Object.keys(card), [
      'id',
      'object',
      'created',
      'owned_by',
      'root',
      'parent',
      'max_model_len',
      'permission',
    ]);
    assert.equal(card.id, MODEL);
    assert.equal(card.owned_by, 'vllm');
    assert.equal(card.max_model_len, 131_072);
    assert.match(card.permission[0].id, /^modelperm-[0-9a-f]{32}$/);
    assert.equal(card.permission[0].object, 'model_permission');
    assert.deepEqual(await json(await fetch(`${s.url}/version`)), { version: '0.11.0' });
  });
});

describe('sim server: errors', () => {
  let s: Sim;
  before(async () => {
    s = await startSim({ maxModelLen: 128 });
  });
  after(() => s.sim.close());

  const errorBody = (message: string, type = 'BadRequestError', code = 400, param: string | null = null) => ({
    error: { message, type, param, code },
  });

  it('rejects prompt + max_tokens beyond the context length with vLLM message and JSON', async () => {
    const prompt = 'word '.repeat(20).trim();
    const count = (await json(await post(`${s.url}/tokenize`, { prompt }))).count;
    const res = await post(`${s.url}/v1/completions`, { model: MODEL, prompt, max_tokens: 120 });
    assert.equal(res.status, 400);
    assert.deepEqual(
      await json(res),
      errorBody(
        `This model's maximum context length is 128 tokens. However, you requested ${count + 120} tokens ` +
          `(${count} in the messages, 120 in the completion). Please reduce the length of the messages or completion.`,
      ),
    );

    const chat = await post(`${s.url}/v1/chat/completions`, {
      model: MODEL,
      messages: [{ role: 'user', content: 'word '.repeat(200) }],
    });
    assert.equal(chat.status, 400);
    const body = await json(chat);
    assert.match(
      body.error.message,
      /^This model's maximum context length is 128 tokens\. However, you requested \d+ tokens in the messages, Please reduce the length of the messages\. None$/,
    );
  });

  it('answers an unknown model with 404 NotFoundError', async () => {
    const res = await post(`${s.url}/v1/completions`, { model: 'gpt-9', prompt: 'hi' });
    assert.equal(res.status, 404);
    assert.deepEqual(
      await json(res),
      errorBody('The model `gpt-9` does not exist.', 'NotFoundError', 404, 'model'),
    );
  });

  it('answers unknown routes and methods as FastAPI does', async () => {
    const missing = await fetch(`${s.url}/v2/nothing`);
    assert.equal(missing.status, 404);
    assert.deepEqual(await json(missing), { detail: 'Not Found' });
    const wrongMethod = await fetch(`${s.url}/v1/completions`);
    assert.equal(wrongMethod.status, 405);
    assert.deepEqual(await json(wrongMethod), { detail: 'Method Not Allowed' });
  });

  it('rejects bad bodies and sampling parameters with 400', async () => {
    const cases: Array<[string, unknown, string | RegExp]> = [
      ['/v1/completions', '{not json', 'JSON decode error'],
      ['/v1/completions', { model: MODEL }, 'Either prompt or prompt_embeds must be provided and non-empty.'],
      ['/v1/chat/completions', { model: MODEL }, /messages/],
      ['/v1/completions', { prompt: 'x', max_tokens: 0 }, 'max_tokens must be at least 1, got 0.'],
      ['/v1/completions', { prompt: 'x', max_tokens: 'ten' }, /max_tokens/],
      ['/v1/completions', { prompt: 'x', temperature: -1 }, 'temperature must be non-negative, got -1.0.'],
      ['/v1/completions', { prompt: 'x', top_p: 1.5 }, 'top_p must be in (0, 1], got 1.5.'],
      ['/v1/completions', { prompt: 'x', stream_options: { include_usage: true } }, /stream=True/],
    ];
    for (const [path, request, message] of cases) {
      const res = await post(`${s.url}${path}`, request);
      assert.equal(res.status, 400, `${path} ${JSON.stringify(request)}`);
      const body = await json(res);
      assert.equal(body.error.type, 'BadRequestError');
      assert.equal(body.error.code, 400);
      assert.equal(body.error.param, null);
      if (typeof message === 'string') assert.equal(body.error.message, message);
      else assert.match(body.error.message, message);
    }
    assert.equal(s.sim.stats.started, 0, 'invalid requests never reach the engine');
  });
});

describe('sim server: model load', () => {
  it('answers /health 503 until the load delay elapsed, then 200 with an empty body', async () => {
    let nowMs = 1_000_000;
    const s = await startSim({ loadDelayMs: 30_000, timeScale: 1, now: () => nowMs });
    try {
      const loading = await fetch(`${s.url}/health`);
      assert.equal(loading.status, 503);
      assert.equal(await loading.text(), '');
      const completion = await post(`${s.url}/v1/completions`, { prompt: 'hi' });
      assert.equal(completion.status, 503);
      assert.equal((await json(completion)).error.code, 503);

      nowMs += 30_000;
      const ready = await fetch(`${s.url}/health`);
      assert.equal(ready.status, 200);
      assert.equal(await ready.text(), '');
    } finally {
      await s.sim.close();
    }
  });
});

describe('sim server: metrics', () => {
  let s: Sim;
  before(async () => {
    s = await startSim();
  });
  after(() => s.sim.close());

  function sample(text: string, name: string, extra = ''): number {
    const line = text
      .split('\n')
      .find((l) => l.startsWith(`${name}{`) && l.includes(extra) && !l.startsWith('#'));
    assert.ok(line, `${name}${extra} is exposed`);
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }

  it('exposes vLLM V1 metric names with values counted from traffic', async () => {
    const longPrompt = 'The quick brown fox jumps over the lazy dog. '.repeat(12);
    let promptTokens = 0;
    let cachedTokens = 0;
    for (const [prompt, maxTokens] of [
      [longPrompt, 4],
      [longPrompt, 6],
      ['short one', 3],
    ] as const) {
      const body = await completionText(s.url, { prompt, max_tokens: maxTokens });
      promptTokens += body.usage.prompt_tokens;
      cachedTokens += body.usage.prompt_tokens_details?.cached_tokens ?? 0;
    }
    assert.ok(cachedTokens > 0, 'the repeated prompt hits the prefix cache');

    const res = await fetch(`${s.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    for (const [name, type] of [
      ['vllm:num_requests_running', 'gauge'],
      ['vllm:num_requests_waiting', 'gauge'],
      ['vllm:kv_cache_usage_perc', 'gauge'],
      ['vllm:prefix_cache_queries_total', 'counter'],
      ['vllm:prefix_cache_hits_total', 'counter'],
      ['vllm:prompt_tokens_total', 'counter'],
      ['vllm:generation_tokens_total', 'counter'],
      ['vllm:request_success_total', 'counter'],
      ['vllm:num_preemptions_total', 'counter'],
      ['vllm:time_to_first_token_seconds', 'histogram'],
      ['vllm:inter_token_latency_seconds', 'histogram'],
      ['vllm:e2e_request_latency_seconds', 'histogram'],
      ['vllm:cache_config_info', 'gauge'],
    ]) {
      assert.ok(text.includes(`# TYPE ${name} ${type}\n`), `${name} is a ${type}`);
    }
    assert.ok(text.includes(`vllm:num_requests_running{engine="0",model_name="${MODEL}"} 0.0\n`));
    assert.ok(
      text.includes(`vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="${MODEL}"}`),
    );
    assert.ok(
      text.includes(`vllm:e2e_request_latency_seconds_bucket{engine="0",le="7680.0",model_name="${MODEL}"}`),
    );
    assert.match(text, /\nvllm:cache_config_info\{block_size="16",.*,num_gpu_blocks="26300",.*\} 1\.0\n/);

    assert.equal(sample(text, 'vllm:prompt_tokens_total'), promptTokens);
    assert.equal(sample(text, 'vllm:generation_tokens_total'), 4 + 6 + 3);
    assert.equal(sample(text, 'vllm:request_success_total', 'finished_reason="length"'), 3);
    assert.equal(sample(text, 'vllm:request_success_total', 'finished_reason="stop"'), 0);
    assert.equal(sample(text, 'vllm:prefix_cache_queries_total'), promptTokens);
    assert.equal(sample(text, 'vllm:prefix_cache_hits_total'), cachedTokens);
    assert.equal(sample(text, 'vllm:num_preemptions_total'), 0);
    assert.equal(sample(text, 'vllm:time_to_first_token_seconds_count'), 3);
    assert.equal(sample(text, 'vllm:inter_token_latency_seconds_count'), 3 + 5 + 2);
    assert.equal(sample(text, 'vllm:e2e_request_latency_seconds_count'), 3);
    assert.equal(sample(text, 'vllm:kv_cache_usage_perc'), 0);
  });
});

describe('sim server: queueing and cancellation', () => {
  let s: Sim;
  before(async () => {
    // Real time, slow enough that nothing finishes during the test.
    s = await startSim({ timeScale: 1, interTokenLatencyMs: 5, timeToFirstTokenMs: 5, maxNumSeqs: 1 });
  });
  after(() => s.sim.close());

  async function readEvents(res: Response, count: number): Promise<string[]> {
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    const events: string[] = [];
    while (events.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end !== -1) {
        events.push(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
      }
    }
    return events;
  }

  it('queues requests beyond maxNumSeqs and aborts the engine request when the client goes away', async () => {
    const started: string[] = [];
    s.sim.events.on('request-start', (e: { id: string }) => started.push(e.id));
    const aborted: string[] = [];
    s.sim.events.on('request-abort', (e: { id: string }) => aborted.push(e.id));
    const nextAbort = () => once(s.sim.events, 'request-abort') as Promise<[{ id: string }]>;

    const running = new AbortController();
    const runningRes = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      body: JSON.stringify({ prompt: 'a long story', max_tokens: 4000, stream: true }),
      signal: running.signal,
    });
    // At least 3: a starved process catches up on late steps back to back, and their tokens arrive in one read.
    const events = await readEvents(runningRes, 3);
    assert.ok(events.length >= 3, `${events.length} events`);
    assert.ok(events.every((e) => e.startsWith('data: {')));

    const waiting = new AbortController();
    const waitingRes = fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      body: JSON.stringify({ prompt: 'waiting', max_tokens: 10, stream: true }),
      signal: waiting.signal,
    }).catch(() => undefined);
    while (started.length < 2) await once(s.sim.events, 'request-start');
    assert.equal(s.sim.stats.running, 1);
    assert.equal(s.sim.stats.waiting, 1);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    assert.ok(metrics.includes(`vllm:num_requests_running{engine="0",model_name="${MODEL}"} 1.0\n`));
    assert.ok(metrics.includes(`vllm:num_requests_waiting{engine="0",model_name="${MODEL}"} 1.0\n`));

    // A waiting request leaves the queue...
    let abort = nextAbort();
    waiting.abort();
    await waitingRes;
    assert.equal((await abort)[0].id, started[1]);
    assert.equal(s.sim.stats.waiting, 0);

    // ...and a running one stops generating: the engine drops it and frees its KV blocks.
    abort = nextAbort();
    running.abort();
    assert.equal((await abort)[0].id, started[0]);
    assert.deepEqual(aborted, [started[1], started[0]]);
    assert.equal(s.sim.stats.aborted, 2);
    assert.equal(s.sim.stats.running, 0);
    assert.equal(s.sim.stats.finished, 0);
    const after = await (await fetch(`${s.url}/metrics`)).text();
    assert.ok(
      after.includes(
        `vllm:request_success_total{engine="0",finished_reason="abort",model_name="${MODEL}"} 2.0\n`,
      ),
    );
    assert.ok(after.includes(`vllm:kv_cache_usage_perc{engine="0",model_name="${MODEL}"} 0.0\n`));
  });

  it('keeps connections alive between requests', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = () =>
      new Promise<boolean>((resolve, reject) => {
        const req = httpRequest(`${s.url}/health`, { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(req.reusedSocket));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      assert.equal(await get(), false);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(await get(), true);
    } finally {
      agent.destroy();
    }
  });
});
