/**
 * The sidecar hop's floor: the least a Node bridge from gRPC
 * `Engine.GenerateStream` to an OpenAI-compatible engine's `/v1/completions`
 * can cost. Each call becomes one streamed HTTP request on a pooled
 * keep-alive agent (as the sidecar's engine client makes it); the SSE answer
 * is split on blank lines, each `data:` line parsed as JSON, and every token
 * goes back as one `GenerateChunk` through the same hand-written codec, the
 * finish reason and usage on the last. Nothing else: no validation beyond
 * what a request needs, no admission, no response cache, no prefix index, no
 * metrics, no tracing, no continuations, no error mapping beyond a status.
 *
 *     node --import tsx bench/sse-passthrough.ts --engine-url http://127.0.0.1:8000 --listen 127.0.0.1:0
 *
 * or, built (`npm run build`), `node dist/bench/sse-passthrough.js` with the
 * same options, as `npm run bench:sidecar-hop` runs it.
 *
 * Prints `sse passthrough listening on <address>` once serving.
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { encodeChunk } from '../common/chunk-codec.js';
import type { GenerateChunk } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest__Output } from '../common/generated/llmmesh/v1/GenerateRequest.js';
import { loadProtos } from '../common/proto.js';

const METHOD = '/llmmesh.v1.Engine/GenerateStream';
const FINISH: Record<string, GenerateChunk['finishReason']> = {
  stop: 'FINISH_REASON_STOP',
  length: 'FINISH_REASON_LENGTH',
};

interface Choice {
  text?: string;
  token_ids?: number[];
  finish_reason?: string | null;
}
interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number } | null;
}

/** A running floor. */
export interface SsePassthrough {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves `Engine.GenerateStream` on `listen`, forwarding every call to `engineUrl`'s `/v1/completions`. */
export async function startSsePassthrough(
  listen: string,
  engineUrl: string,
  model: string,
): Promise<SsePassthrough> {
  const base = new URL(engineUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1024, maxFreeSockets: 64, scheduling: 'lifo' });
  const requestDeserialize = loadProtos().engine.Engine.service.GenerateStream.requestDeserialize;
  // No channelz bookkeeping, as on the sidecar's server: the floor pays no more than the sidecar.
  const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
  server.register<GenerateRequest__Output, GenerateChunk>(
    METHOD,
    (call: grpc.ServerWritableStream<GenerateRequest__Output, GenerateChunk>) => {
      const r = call.request;
      const s = r.sampling;
      const body: Record<string, unknown> = {
        model,
        prompt: r.prompt,
        stream: true,
        stream_options: { include_usage: true },
        return_token_ids: true,
      };
      if (s?.maxTokens) body.max_tokens = s.maxTokens;
      if (s?.temperature !== undefined) body.temperature = s.temperature;
      const json = JSON.stringify(body);
      const req = http.request({
        hostname: base.hostname,
        port: base.port,
        method: 'POST',
        path: '/v1/completions',
        agent,
        headers: {
          accept: 'text/event-stream',
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(json),
        },
      });
      const fail = (message: string) =>
        call.emit('error', { code: grpc.status.UNAVAILABLE, details: message });
      call.once('cancelled', () => req.destroy());
      req.once('error', (err) => fail(err.message));
      req.once('response', (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          fail(`engine answered ${res.statusCode}`);
          return;
        }
        res.setEncoding('utf8');
        let buffered = '';
        let first = true;
        // The finish chunk waits for the usage event that follows it.
        let last: GenerateChunk | undefined;
        res.on('data', (text: string) => {
          buffered += text;
          let end = buffered.indexOf('\n\n');
          while (end >= 0) {
            const event = buffered.slice(0, end);
            buffered = buffered.slice(end + 2);
            end = buffered.indexOf('\n\n');
            if (!event.startsWith('data: ')) continue;
            const data = event.slice(6);
            if (data === '[DONE]') {
              if (last) call.write(last);
              last = undefined;
              call.end();
              return;
            }
            const ev = JSON.parse(data) as { choices?: Choice[]; usage?: Usage | null };
            const choice = ev.choices?.[0];
            if (choice) {
              const chunk: GenerateChunk = { text: choice.text ?? '' };
              if (first) chunk.modelVersion = 'floor';
              first = false;
              if (choice.token_ids?.length) chunk.tokenIds = choice.token_ids;
              if (choice.finish_reason) {
                chunk.finishReason = FINISH[choice.finish_reason] ?? 'FINISH_REASON_UNSPECIFIED';
                last = chunk;
              } else if (!call.write(chunk)) {
                res.pause();
                call.once('drain', () => res.resume());
              }
            }
            if (ev.usage && last) {
              last.usage = {
                promptTokens: ev.usage.prompt_tokens ?? 0,
                completionTokens: ev.usage.completion_tokens ?? 0,
                cachedTokens: ev.usage.prompt_tokens_details?.cached_tokens ?? 0,
              };
            }
          }
        });
        res.once('error', (err) => fail(err.message));
      });
      req.end(json);
    },
    encodeChunk,
    requestDeserialize,
    'serverStream',
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    port,
    close() {
      agent.destroy();
      return new Promise((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      'engine-url': { type: 'string' },
      listen: { type: 'string', default: '127.0.0.1:0' },
      model: { type: 'string', default: 'llama-3-8b-chat' },
    },
  });
  if (!values['engine-url']) throw new Error('--engine-url is required');
  const floor = await startSsePassthrough(values.listen, values['engine-url'], values.model);
  process.once('SIGTERM', () => void floor.close().then(() => process.exit(0)));
  console.log(`sse passthrough listening on 127.0.0.1:${floor.port}`);
}
