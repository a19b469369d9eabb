/**
 * Token ids and continuation, over HTTP: a stream asked for `return_token_ids`
 * carries the prompt's ids and each chunk's output ids where vLLM puts them,
 * `/tokenize` gives the ids the generation endpoints feed the engine, and a
 * completion whose prompt is those ids followed by the first k output ids
 * (on another server, as after a failed pod) continues with exactly the rest
 * of the output: delivered text plus continuation text is the undisturbed
 * text, byte for byte. This is what a router resuming a broken stream relies
 * on. Servers run on manual clocks; time passes only when the test says so.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import type { SimCrashInfo } from '../sim/server.js';
import { startVirtualSim, VIRTUAL_SIM_MODEL, type VirtualSim } from './helpers/virtual-sim.js';

const MODEL = VIRTUAL_SIM_MODEL;
const EOT_ID = 128009;

// biome-ignore lint/suspicious/noExplicitAny: bodies are checked field by field
type Json = any;

async function call(url: string, path: string, body: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** Runs a generation request to its end on the manual clock (non-streaming, or streaming read whole). */
async function generate(s: VirtualSim, path: string, body: object): Promise<{ status: number; body: Json }> {
  const noStart = new AbortController();
  const reached = once(s.sim.events, 'request-start', { signal: noStart.signal }).then(
    () => s.clock.runAll(),
    () => undefined,
  );
  const result = await call(s.url, path, { model: MODEL, ...body });
  noStart.abort();
  await reached;
  return result;
}

interface Streamed {
  /** Parsed chunks, the final usage chunk included. */
  chunks: Json[];
  /** True when the stream ended with `[DONE]`; false when the connection dropped. */
  done: boolean;
}

/** Streams a generation request on the manual clock and collects its chunks until it ends or drops. */
async function stream(s: VirtualSim, path: string, body: object): Promise<Streamed> {
  const reached = once(s.sim.events, 'request-start');
  const res = await fetch(`${s.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, stream: true, ...body }),
  });
  assert.equal(res.status, 200);
  await reached;
  s.clock.runAll();
  const chunks: Json[] = [];
  let done = false;
  let buffer = '';
  const decoder = new TextDecoder();
  try {
    for await (const part of res.body!) {
      buffer += decoder.decode(part, { stream: true });
      for (let at = buffer.indexOf('\n\n'); at !== -1; at = buffer.indexOf('\n\n')) {
        const data = buffer.slice('data: '.length, at);
        buffer = buffer.slice(at + 2);
        if (data === '[DONE]') done = true;
        else chunks.push(JSON.parse(data));
      }
    }
  } catch {
    // The connection dropped (a crashed server): keep what arrived.
  }
  return { chunks, done };
}

/** The output of a stream: ids and text, from the chunks that carry a choice. */
function outputOf(streamed: Streamed, chat: boolean) {
  const choices = streamed.chunks.filter((c) => c.choices.length > 0).map((c) => c.choices[0]);
  const content = chat ? choices.filter((c) => c.delta.role === undefined) : choices;
  return {
    ids: content.flatMap((c) => c.token_ids as number[]),
    texts: content.map((c) => (chat ? c.delta.content : c.text) as string),
    text: content.map((c) => (chat ? c.delta.content : c.text)).join(''),
    finish: choices.at(-1)?.finish_reason ?? null,
  };
}

const detokenize = async (s: VirtualSim, tokens: number[]) =>
  (await call(s.url, '/detokenize', { model: MODEL, tokens })).body.prompt as string;

const chatBody = {
  messages: [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Tell me about rivers.' },
  ],
  seed: 7,
  temperature: 0,
  max_tokens: 48,
};

describe('sim continuation: return_token_ids', () => {
  it('puts prompt ids on the first chunk and each chunk its own ids, as vLLM does, for both endpoints', async () => {
    const s = await startVirtualSim();
    try {
      const chat = await stream(s, '/v1/chat/completions', {
        ...chatBody,
        return_token_ids: true,
        stream_options: { include_usage: true },
      });
      assert.ok(chat.done);
      const prompt = (await call(s.url, '/tokenize', { model: MODEL, messages: chatBody.messages })).body;
      // Chat: the prompt's ids at the top level of the role chunk; every content chunk one id in its choice.
      const [role, ...rest] = chat.chunks;
      assert.deepEqual(role.prompt_token_ids, prompt.tokens);
      assert.equal(role.choices[0].token_ids, undefined);
      const content = rest.filter((c: Json) => c.choices.length > 0);
      assert.equal(content.length, 48);
      for (const c of content) {
        assert.equal(c.prompt_token_ids, undefined);
        assert.equal(c.choices[0].token_ids.length, 1);
      }
      assert.equal(chat.chunks.at(-1).usage.completion_tokens, 48);

      const plain = await stream(s, '/v1/completions', {
        prompt: 'San Francisco is a',
        max_tokens: 5,
        return_token_ids: true,
      });
      const ids = (await call(s.url, '/tokenize', { model: MODEL, prompt: 'San Francisco is a' })).body
        .tokens;
      // Completions: the prompt's ids in the first chunk's choice only; the chunk's own ids in every choice.
      assert.deepEqual(
        plain.chunks.map((c) => c.choices[0].prompt_token_ids),
        [ids, null, null, null, null],
      );
      assert.ok(plain.chunks.every((c) => c.choices[0].token_ids.length === 1));

      // Non-streaming: the same ids, all at once, in the same places as the stream.
      const whole = await generate(s, '/v1/completions', {
        prompt: 'San Francisco is a',
        max_tokens: 5,
        return_token_ids: true,
      });
      assert.deepEqual(whole.body.choices[0].prompt_token_ids, ids);
      assert.deepEqual(whole.body.choices[0].token_ids, outputOf(plain, false).ids);
      const wholeChat = await generate(s, '/v1/chat/completions', { ...chatBody, return_token_ids: true });
      assert.deepEqual(wholeChat.body.prompt_token_ids, prompt.tokens);
      assert.deepEqual(wholeChat.body.choices[0].token_ids, outputOf(chat, true).ids);
      assert.equal(wholeChat.body.choices[0].message.content, outputOf(chat, true).text);

      // Without the flag, no ids anywhere.
      const without = await stream(s, '/v1/completions', { prompt: 'San Francisco is a', max_tokens: 2 });
      for (const c of without.chunks) {
        assert.equal(c.choices[0].prompt_token_ids, null);
        assert.equal(c.choices[0].token_ids, null);
      }
      const withoutChat = await generate(s, '/v1/chat/completions', chatBody);
      assert.equal(withoutChat.body.prompt_token_ids, null);
      assert.equal(withoutChat.body.choices[0].token_ids, null);
    } finally {
      await s.sim.close();
    }
  });
});

describe('sim continuation: resuming on another server', () => {
  it('continues a chat stream from the tokenized prompt plus the delivered ids, byte for byte', async () => {
    const a = await startVirtualSim();
    const b = await startVirtualSim();
    try {
      const original = outputOf(
        await stream(a, '/v1/chat/completions', { ...chatBody, return_token_ids: true }),
        true,
      );
      assert.equal(original.ids.length, 48);
      const prompt = (await call(a.url, '/tokenize', { model: MODEL, messages: chatBody.messages })).body
        .tokens as number[];
      for (const k of [0, 1, 17, 47]) {
        const delivered = original.ids.slice(0, k);
        const continued = await stream(b, '/v1/completions', {
          prompt: [...prompt, ...delivered],
          seed: 7,
          temperature: 0,
          max_tokens: 48 - k,
          return_token_ids: true,
          stream_options: { include_usage: true },
        });
        const rest = outputOf(continued, false);
        assert.deepEqual(rest.ids, original.ids.slice(k), `ids after ${k}`);
        // What the client already has, from the chunks or from the ids, plus the rest: the undisturbed text.
        assert.equal(original.texts.slice(0, k).join('') + rest.text, original.text);
        assert.equal((await detokenize(b, delivered)) + rest.text, original.text);
        assert.equal(rest.finish, 'length');
        // Id prompts count as what they are: no BOS added.
        assert.equal(continued.chunks.at(-1).usage.prompt_tokens, prompt.length + k);
      }
    } finally {
      await Promise.all([a.sim.close(), b.sim.close()]);
    }
  });

  it('continues a plain completion, stop strings included, and caches id prompts like text ones', async () => {
    const a = await startVirtualSim();
    const b = await startVirtualSim();
    try {
      const text = 'The history of the river begins';
      const probe = outputOf(await stream(a, '/v1/completions', { prompt: text, max_tokens: 60 }), false);
      // A stop string the output reaches late: the word of its 40th token.
      const stop = probe.texts[39]!;
      const body = { seed: undefined, temperature: 0, max_tokens: 60, stop: [stop], return_token_ids: true };
      const original = outputOf(await stream(a, '/v1/completions', { ...body, prompt: text }), false);
      assert.equal(original.finish, 'stop');
      const n = original.ids.length;
      assert.ok(n > 10 && n <= 40, `stopped at ${n}`);
      const prompt = (
        await call(a.url, '/tokenize', { model: MODEL, prompt: text, add_special_tokens: true })
      ).body.tokens as number[];
      const fromText = await call(a.url, '/tokenize', { model: MODEL, prompt: text });
      assert.deepEqual(
        fromText.body.tokens,
        prompt,
        'add_special_tokens defaults to true, as for completions',
      );

      for (const k of [3, n - 1]) {
        const delivered = original.ids.slice(0, k);
        const rest = outputOf(
          await stream(b, '/v1/completions', {
            ...body,
            prompt: [...prompt, ...delivered],
            max_tokens: n - k,
          }),
          false,
        );
        assert.deepEqual(rest.ids, original.ids.slice(k));
        assert.equal((await detokenize(b, delivered)) + rest.text, original.text);
        assert.equal(rest.finish, 'stop');
      }

      // The same id prompt twice: the second finds its full blocks in the prefix cache.
      const idPrompt = [...prompt, ...original.ids];
      const first = await generate(b, '/v1/completions', { prompt: idPrompt, max_tokens: 2 });
      const second = await generate(b, '/v1/completions', { prompt: idPrompt, max_tokens: 2 });
      assert.equal(first.body.usage.prompt_tokens, idPrompt.length);
      assert.equal(
        second.body.usage.prompt_tokens_details.cached_tokens,
        Math.floor((idPrompt.length - 1) / 16) * 16,
      );
      assert.equal(second.body.choices[0].text, first.body.choices[0].text);
    } finally {
      await Promise.all([a.sim.close(), b.sim.close()]);
    }
  });

  it('resumes a stream cut by a crash or a stall, and the client sees the undisturbed text', async () => {
    const reference = await startVirtualSim();
    const crashes: SimCrashInfo[] = [];
    const crashing = await startVirtualSim({
      onCrash: (info) => crashes.push(info),
      faults: { crashAfterTokens: 9 },
    });
    const stalling = await startVirtualSim({ faults: { stallAfterTokens: 21 } });
    const spare = await startVirtualSim();
    try {
      const undisturbed = outputOf(
        await stream(reference, '/v1/chat/completions', { ...chatBody, return_token_ids: true }),
        true,
      );
      const prompt = (await call(reference.url, '/tokenize', { model: MODEL, messages: chatBody.messages }))
        .body.tokens as number[];

      const crashed = await stream(crashing, '/v1/chat/completions', { ...chatBody, return_token_ids: true });
      assert.equal(crashed.done, false, 'the connection dropped');
      assert.equal(crashes.length, 1);
      assert.deepEqual(crashed.chunks[0].prompt_token_ids, prompt);

      // A stalled stream stays open: read what arrived, then give up on it.
      const reached = once(stalling.sim.events, 'request-start');
      const stalled = once(stalling.sim.events, 'request-stall');
      const res = await fetch(`${stalling.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, stream: true, ...chatBody, return_token_ids: true }),
      });
      await reached;
      stalling.clock.runAll();
      await stalled;
      const reader = res.body!.getReader();
      let raw = '';
      const decoder = new TextDecoder();
      while ((raw.match(/\n\n/g) ?? []).length < 1 + 21) {
        const { value } = await reader.read();
        raw += decoder.decode(value, { stream: true });
      }
      await reader.cancel();
      const stalledChunks = raw
        .split('\n\n')
        .filter((e) => e.startsWith('data: '))
        .map((e) => JSON.parse(e.slice('data: '.length)));

      for (const cut of [crashed.chunks, stalledChunks]) {
        const partial = outputOf({ chunks: cut, done: false }, true);
        assert.ok(partial.ids.length > 0 && partial.ids.length < 48);
        const rest = outputOf(
          await stream(spare, '/v1/completions', {
            prompt: [...prompt, ...partial.ids],
            seed: 7,
            temperature: 0,
            max_tokens: 48 - partial.ids.length,
            return_token_ids: true,
          }),
          false,
        );
        assert.equal(partial.text + rest.text, undisturbed.text);
        assert.deepEqual([...partial.ids, ...rest.ids], undisturbed.ids);
      }
    } finally {
      await Promise.all([reference, crashing, stalling, spare].map((s) => s.sim.close()));
    }
  });
});

describe('sim continuation: prompts, templates and validation', () => {
  it('tokenizes chat messages exactly as the chat endpoint feeds them, continue_final_message included', async () => {
    const s = await startVirtualSim();
    try {
      const open = {
        messages: [...chatBody.messages, { role: 'assistant', content: 'Rivers are' }],
        add_generation_prompt: false,
        continue_final_message: true,
      };
      const tokenized = (await call(s.url, '/tokenize', { model: MODEL, ...open })).body.tokens as number[];
      const answer = await generate(s, '/v1/chat/completions', {
        ...chatBody,
        ...open,
        return_token_ids: true,
      });
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.body.prompt_token_ids, tokenized);
      // The assistant message is left open: it ends the prompt, no end-of-turn, no new header.
      const closed = (await call(s.url, '/tokenize', { model: MODEL, messages: open.messages })).body
        .tokens as number[];
      assert.deepEqual(
        tokenized.slice(-2),
        (await call(s.url, '/tokenize', { prompt: 'Rivers are', add_special_tokens: false })).body.tokens,
      );
      assert.ok(!tokenized.includes(EOT_ID, tokenized.length - 3));
      // Closing it adds the end-of-turn token and a new assistant header (4 tokens).
      assert.deepEqual(closed.slice(0, tokenized.length), tokenized);
      assert.equal(closed.length, tokenized.length + 5);

      const both = { ...open, add_generation_prompt: true };
      for (const [path, body] of [
        ['/tokenize', both],
        ['/v1/chat/completions', { ...chatBody, ...both }],
      ] as const) {
        const refused = await call(s.url, path, { model: MODEL, ...body });
        assert.equal(refused.status, 400);
        assert.equal(refused.body.error.type, 'BadRequestError');
        assert.match(
          refused.body.error.message,
          /Cannot set both `continue_final_message` and `add_generation_prompt` to True\./,
        );
      }
    } finally {
      await s.sim.close();
    }
  });

  it('accepts token-id prompts without BOS and refuses batches and out-of-vocabulary ids with 400', async () => {
    const s = await startVirtualSim();
    try {
      const text = await generate(s, '/v1/completions', { prompt: 'Hello there', max_tokens: 3 });
      const ids = (await call(s.url, '/tokenize', { prompt: 'Hello there' })).body.tokens as number[];
      for (const prompt of [ids, [ids]]) {
        const same = await generate(s, '/v1/completions', { prompt, max_tokens: 3 });
        assert.equal(same.body.choices[0].text, text.body.choices[0].text);
        assert.equal(same.body.usage.prompt_tokens, ids.length);
      }
      const noBos = await generate(s, '/v1/completions', {
        prompt: 'Hello there',
        add_special_tokens: false,
        max_tokens: 1,
      });
      assert.equal(noBos.body.usage.prompt_tokens, ids.length - 1);

      // /detokenize spells what the tokenizer produced, special tokens included, and refuses the rest.
      assert.equal(await detokenize(s, ids), '<|begin_of_text|>Hello there');
      const unknown = await call(s.url, '/detokenize', { model: MODEL, tokens: [5] });
      assert.equal(unknown.status, 400);
      assert.equal(unknown.body.error.type, 'BadRequestError');

      for (const [prompt, message] of [
        [[ids, ids], /one prompt per request/],
        [['a', 'b'], /one prompt per request/],
        [[1, 128256], /Token id 128256 is out of vocabulary/],
        [[1, 'a'], /prompt/],
      ] as const) {
        const refused = await call(s.url, '/v1/completions', { model: MODEL, prompt, max_tokens: 1 });
        assert.equal(refused.status, 400, JSON.stringify(prompt));
        assert.deepEqual(Object.keys(refused.body.error), ['message', 'type', 'param', 'code']);
        assert.equal(refused.body.error.code, 400);
        assert.match(refused.body.error.message, message);
      }
    } finally {
      await s.sim.close();
    }
  });
});
