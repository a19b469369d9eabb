import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { type MeshError, Status } from '../../../common/errors.js';
import { createEngineClient, type EngineEvent } from '../../../sidecar/engine-client.js';
import type { OpenAiRequest } from '../../../sidecar/openai.js';
import { fixture } from '../../helpers/fixtures.js';
import { replaySse, startHttpServer } from '../../helpers/http-server.js';

const completion: OpenAiRequest = {
  path: '/v1/completions',
  body: { model: 'm', prompt: 'San Francisco is a', stream: true },
};
const chat: OpenAiRequest = {
  path: '/v1/chat/completions',
  body: { model: 'm', messages: [], stream: true },
};

async function collect(it: AsyncIterable<EngineEvent>): Promise<EngineEvent[]> {
  const out: EngineEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

describe('engine client against recorded engine output', () => {
  const closers: Array<() => Promise<void> | void> = [];
  after(async () => {
    for (const c of closers) await c();
  });

  /** An engine that sends one token and never finishes, like a long generation, and a client of it. */
  async function endlessEngine() {
    const server = await startHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"choices":[{"index":0,"text":"a","finish_reason":null}]}\n\n');
    });
    const client = createEngineClient({ url: server.url });
    closers.push(() => client.close(), server.close);
    return { server, client };
  }

  it('streams a real vLLM completions capture: text in order, finish on the last event', async () => {
    const server = await startHttpServer((_req, res) =>
      replaySse(res, fixture('vllm-completions-stream.sse')),
    );
    const client = createEngineClient({ url: server.url });
    closers.push(() => client.close(), server.close);
    const events = await collect(client.stream(completion));
    assert.equal(events.map((e) => e.text).join(''), ' city in the state of California,');
    assert.equal(events.at(-1)?.finishReason, 'length');
    assert.equal(events.filter((e) => e.finishReason).length, 1);
    const sent = JSON.parse(server.requests[0]?.body ?? '{}');
    assert.equal(server.requests[0]?.path, '/v1/completions');
    assert.equal(sent.prompt, 'San Francisco is a');
  });

  it('streams a real llama.cpp chat capture with usage on the finish chunk', async () => {
    const server = await startHttpServer((_req, res) => replaySse(res, fixture('llamacpp-chat-stream.sse')));
    const client = createEngineClient({ url: server.url });
    closers.push(() => client.close(), server.close);
    const events = await collect(client.stream(chat));
    const last = events.at(-1);
    assert.equal(last?.finishReason, 'length');
    assert.ok(last?.usage && last.usage.completionTokens > 0, 'usage from the finish chunk');
    assert.ok(events.map((e) => e.text).join('').length > 0);
  });

  it('turns an in-band SGLang error into INVALID_ARGUMENT with the engine message', async () => {
    const server = await startHttpServer((_req, res) => replaySse(res, fixture('sglang-stream-error.sse')));
    const client = createEngineClient({ url: server.url });
    closers.push(() => client.close(), server.close);
    await assert.rejects(collect(client.stream(chat)), (err: MeshError) => {
      assert.equal(err.code, Status.INVALID_ARGUMENT);
      assert.match(err.message, /maximum context length of 196608 tokens/);
      return true;
    });
  });

  for (const [name, status] of [
    ['vllm-error.json', 400],
    ['vllm-error-legacy.json', 400],
  ] as const) {
    it(`maps HTTP ${status} with ${name} to INVALID_ARGUMENT keeping vLLM's message`, async () => {
      const body = fixture(name);
      const server = await startHttpServer((_req, res) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(body);
      });
      const client = createEngineClient({ url: server.url });
      closers.push(() => client.close(), server.close);
      const expected = JSON.parse(body).error?.message ?? JSON.parse(body).message;
      await assert.rejects(collect(client.stream(completion)), (err: MeshError) => {
        assert.equal(err.code, Status.INVALID_ARGUMENT);
        assert.equal(err.message, expected);
        return true;
      });
    });
  }

  it('maps 429 to RESOURCE_EXHAUSTED with the Retry-After as pushback, and 503 to UNAVAILABLE', async () => {
    let status = 429;
    const server = await startHttpServer((_req, res) => {
      res.writeHead(status, status === 429 ? { 'retry-after': '2' } : {});
      res.end(JSON.stringify({ error: { message: 'busy', type: 'x', param: null, code: status } }));
    });
    const client = createEngineClient({ url: server.url });
    closers.push(() => client.close(), server.close);
    await assert.rejects(collect(client.stream(completion)), (err: MeshError) => {
      assert.equal(err.code, Status.RESOURCE_EXHAUSTED);
      assert.equal(err.retryPushbackMs, 2000);
      return true;
    });
    status = 503;
    await assert.rejects(collect(client.stream(completion)), (err: MeshError) => {
      assert.equal(err.code, Status.UNAVAILABLE);
      assert.match(err.message, new RegExp(`engine at ${server.host} answered 503: busy`));
      return true;
    });
  });

  it('reports an unreachable engine as UNAVAILABLE naming the address', async () => {
    const port = await closedPort();
    const client = createEngineClient({ url: `http://127.0.0.1:${port}` });
    closers.push(() => client.close());
    await assert.rejects(collect(client.stream(completion)), (err: MeshError) => {
      assert.equal(err.code, Status.UNAVAILABLE);
      assert.match(err.message, new RegExp(`engine at 127\\.0\\.0\\.1:${port} unreachable: ECONNREFUSED`));
      return true;
    });
    assert.equal(await client.health(), false);
  });

  it('fails a stream that ends without a finish as UNAVAILABLE', async () => {
    const server = await startHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end('data: {"choices":[{"index":0,"text":"a","finish_reason":null}]}\n\n');
    });
    const client = createEngineClient({ url: server.url });
    closers.push(() => client.close(), server.close);
    await assert.rejects(collect(client.stream(completion)), (err: MeshError) => {
      assert.equal(err.code, Status.UNAVAILABLE);
      assert.match(err.message, /closed the stream before finishing/);
      return true;
    });
  });

  it('aborting the signal closes the HTTP request the engine is serving', async () => {
    const { server, client } = await endlessEngine();
    const controller = new AbortController();
    const stream = client.stream(completion, { signal: controller.signal });
    const first = await stream.next();
    assert.equal(first.value?.text, 'a');
    controller.abort();
    await assert.rejects(stream.next(), (err: MeshError) => err.code === Status.CANCELLED);
    await server.aborted; // the engine saw the client go away
  });

  it('hands each event to a callback, the same events the generator yields, for every capture', async () => {
    for (const name of ['vllm-completions-stream.sse', 'llamacpp-chat-stream.sse']) {
      const server = await startHttpServer((_req, res) => replaySse(res, fixture(name)));
      const client = createEngineClient({ url: server.url });
      closers.push(() => client.close(), server.close);
      const pushed: EngineEvent[] = [];
      await client.each(completion, (ev) => {
        pushed.push(ev);
        return true;
      });
      assert.deepEqual(pushed, await collect(client.stream(completion)), name);
    }
  });

  it('a callback that returns false stops the stream and closes the HTTP request', async () => {
    const { server, client } = await endlessEngine();
    const pushed: string[] = [];
    await client.each(completion, (ev) => {
      pushed.push(ev.text);
      return false;
    });
    assert.deepEqual(pushed, ['a']);
    await server.aborted;
  });

  it('a callback sees an aborted stream fail CANCELLED, and its own throw as it is', async () => {
    const { client } = await endlessEngine();
    const controller = new AbortController();
    await assert.rejects(
      client.each(
        completion,
        () => {
          controller.abort();
          return true;
        },
        { signal: controller.signal },
      ),
      (err: MeshError) => err.code === Status.CANCELLED,
    );
    const mine = new Error('mine');
    await assert.rejects(
      client.each(completion, () => {
        throw mine;
      }),
      (err) => err === mine,
    );
  });

  it('reuses one pooled connection for sequential requests', async () => {
    const sockets = new Set<string>();
    const server = await startHttpServer((req, res) => {
      sockets.add(`${req.socket.remotePort}`);
      replaySse(res, fixture('vllm-completions-stream.sse'));
    });
    const client = createEngineClient({ url: server.url });
    closers.push(() => client.close(), server.close);
    for (let i = 0; i < 5; i++) await collect(client.stream(completion));
    assert.equal(sockets.size, 1);
  });

  it('sends a request again when the engine closed its pooled connection just as it was written', async () => {
    // The engine answers the first request on a connection, then resets the
    // connection when the next one arrives on it (its idle timeout firing as
    // the request is written); a new connection is answered.
    const body = fixture('vllm-completions-stream.sse');
    const answer = `HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: keep-alive\r\n\r\n${body}`;
    let connections = 0;
    let requests = 0;
    const server = net.createServer((socket) => {
      connections++;
      let seen = '';
      let answered = 0;
      socket.on('data', (d: Buffer) => {
        seen += d.toString('utf8');
        const arrived = seen.split('POST /v1/').length - 1;
        for (; answered < arrived; answered++) {
          requests++;
          if (answered === 0) socket.write(answer);
          else socket.resetAndDestroy();
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const client = createEngineClient({ url: `http://127.0.0.1:${port}`, maxSockets: 1 });
    closers.push(
      () => client.close(),
      () => new Promise<void>((resolve) => server.close(() => resolve())),
    );
    for (let i = 0; i < 3; i++) {
      const events = await collect(client.stream(completion));
      assert.equal(events.at(-1)?.finishReason, 'length', `request ${i}`);
    }
    assert.equal(connections, 3, 'each reset connection was replaced');
    assert.equal(requests, 5, 'each request reset on a pooled connection was sent once more');
  });

  it('keeps the pooled connection when the response ends only after [DONE] has been read', async () => {
    // As vLLM and the simulator do: `data: [DONE]` is written, the body ends in a later write.
    const sockets = new Set<string>();
    const server = await startHttpServer((req, res) => {
      sockets.add(`${req.socket.remotePort}`);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`${fixture('vllm-completions-stream.sse').trimEnd()}\n\n`);
      setImmediate(() => res.end());
    });
    // One socket: the next request waits for it to come back to the pool (or be replaced).
    const client = createEngineClient({ url: server.url, maxSockets: 1 });
    closers.push(() => client.close(), server.close);
    for (let i = 0; i < 5; i++) {
      const events = await collect(client.stream(completion));
      assert.equal(events.at(-1)?.finishReason, 'length');
    }
    assert.equal(sockets.size, 1);
  });

  it('carries token ids with their text, ids of text-less tokens included, and none from a capture without them', async () => {
    const chunk = (text: string, ids: number[] | null, finish: string | null = null) =>
      `data: ${JSON.stringify({ object: 'text_completion', choices: [{ index: 0, text, finish_reason: finish, token_ids: ids }] })}\n\n`;
    const body = `${chunk(' caf', [3])}${chunk('', [4])}${chunk('é', [5])}${chunk('.', [6], 'stop')}data: [DONE]\n\n`;
    const server = await startHttpServer((_req, res) => replaySse(res, body));
    const client = createEngineClient({ url: server.url });
    closers.push(() => client.close(), server.close);
    const events = await collect(client.stream(completion));
    assert.deepEqual(
      events.map((e) => [e.text, e.tokenIds]),
      [
        [' caf', [3]],
        ['', [4]],
        ['é', [5]],
        ['.', [6]],
      ],
    );
    const noIds = await startHttpServer((_req, res) => replaySse(res, fixture('vllm-chat-stream.sse')));
    const plain = createEngineClient({ url: noIds.url });
    closers.push(() => plain.close(), noIds.close);
    const chatEvents = await collect(plain.stream(chat));
    assert.ok(chatEvents.length > 3);
    assert.ok(chatEvents.every((e) => e.tokenIds === undefined));
  });

  it('tokenizes through /tokenize, and says NOT_FOUND for an engine without it', async () => {
    let supported = true;
    const server = await startHttpServer((_req, res) => {
      if (supported)
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end('{"count":3,"max_model_len":8192,"tokens":[1,15043,3186]}');
      else res.writeHead(404, { 'content-type': 'application/json' }).end('{"detail":"Not Found"}');
    });
    const client = createEngineClient({ url: server.url });
    closers.push(() => client.close(), server.close);
    assert.deepEqual(
      await client.tokenize({ model: 'm', prompt: 'Hello world', add_special_tokens: true }),
      [1, 15043, 3186],
    );
    assert.equal(server.requests[0]?.path, '/tokenize');
    assert.deepEqual(JSON.parse(server.requests[0]?.body ?? '{}'), {
      model: 'm',
      prompt: 'Hello world',
      add_special_tokens: true,
    });
    supported = false;
    await assert.rejects(
      client.tokenize({ model: 'm', prompt: 'x' }),
      (e: MeshError) => e.code === Status.NOT_FOUND,
    );
  });

  it('detokenizes through /detokenize, and says NOT_FOUND for an engine without it', async () => {
    let supported = true;
    const server = await startHttpServer((_req, res) => {
      if (supported)
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"prompt":" Hello world"}');
      else res.writeHead(404, { 'content-type': 'application/json' }).end('{"detail":"Not Found"}');
    });
    const client = createEngineClient({ url: server.url });
    closers.push(() => client.close(), server.close);
    assert.equal(await client.detokenize('m', [15043, 3186]), ' Hello world');
    assert.equal(server.requests[0]?.path, '/detokenize');
    assert.deepEqual(JSON.parse(server.requests[0]?.body ?? '{}'), { model: 'm', tokens: [15043, 3186] });
    supported = false;
    await assert.rejects(client.detokenize('m', [1]), (e: MeshError) => e.code === Status.NOT_FOUND);
  });

  it("learns max_num_seqs from vLLM's /server_info, SGLang's /get_server_info, or not at all", async () => {
    const answers: Record<string, string> = {};
    const server = await startHttpServer((req, res) => {
      const body = answers[(req.url ?? '').split('?')[0] ?? ''];
      if (body) res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      else res.writeHead(404, { 'content-type': 'application/json' }).end('{"detail":"Not Found"}');
    });
    const client = createEngineClient({ url: server.url });
    closers.push(() => client.close(), server.close);
    assert.equal(await client.maxNumSeqs(), undefined, 'llama.cpp, or vLLM without dev mode');
    answers['/get_server_info'] = '{"max_running_requests":128,"max_total_num_tokens":500000}';
    assert.equal(await client.maxNumSeqs(), 128);
    answers['/server_info'] = '{"vllm_config":{"scheduler_config":{"max_num_seqs":64}}}';
    assert.equal(await client.maxNumSeqs(), 64, 'vLLM first');
    answers['/server_info'] = '{"vllm_config":"model=... max_num_seqs=64"}';
    assert.equal(await client.maxNumSeqs(), 128, 'the text form is not parsed');
  });
});

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
