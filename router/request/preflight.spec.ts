import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GenerateRequest } from '../../common/generated/llmmesh/v1/GenerateRequest.js';
import { loadProtos } from '../../common/proto.js';
import { validateRouterConfig } from '../config/load.js';
import type { ModelConfig } from '../config/schema.js';
import { upstreamBytes, upstreamRequest } from './preflight.js';

const MODEL = 'm';

/** The Inference server's decoding of `request` and the Engine hop's encoder and decoder. */
function codecs() {
  const defs = loadProtos().packageDefinition;
  const inference = (
    defs['llmmesh.v1.Inference'] as Record<
      string,
      import('@grpc/proto-loader').MethodDefinition<object, object>
    >
  ).GenerateStream;
  const engine = (
    defs['llmmesh.v1.Engine'] as Record<string, import('@grpc/proto-loader').MethodDefinition<object, object>>
  ).GenerateStream;
  if (!inference || !engine) throw new Error('no GenerateStream');
  return {
    receive: (r: GenerateRequest) => inference.requestDeserialize(inference.requestSerialize(r)),
    encode: (r: object) => engine.requestSerialize(r),
    decode: (b: Buffer) => engine.requestDeserialize(b),
  };
}

const config = (cap?: number): ModelConfig =>
  validateRouterConfig({
    listen: '127.0.0.1:0',
    discovery: { kind: 'static', endpoints: ['127.0.0.1:1'] },
    models: { [MODEL]: { ...(cap ? { max_tokens_cap: cap } : {}), versions: { v1: { weight: 1 } } } },
  }).models[MODEL] as ModelConfig;

describe('upstreamBytes', () => {
  const { receive, encode, decode } = codecs();
  const requests: GenerateRequest[] = [
    { model: MODEL, prompt: 'Tell me a story.', sampling: { maxTokens: 32, temperature: 0.7, stop: ['\n'] } },
    { model: MODEL, prompt: 'héllo ✓', requestId: 'client-id', routing: { sessionKey: 's1' } },
    {
      model: MODEL,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
      sampling: { maxTokens: 8 },
    },
  ];

  it('is what the Engine hop would encode: the client request with the router’s request id', () => {
    for (const r of requests) {
      const req = receive(r) as Parameters<typeof upstreamRequest>[0];
      const up = upstreamRequest(req, req.requestId || 'router-id', config());
      const bytes = upstreamBytes(req, up);
      assert.ok(bytes, 'the request was received as bytes');
      assert.deepEqual(decode(bytes), decode(encode(up)));
      assert.equal((decode(bytes) as { requestId: string }).requestId, req.requestId || 'router-id');
    }
  });

  it('leaves the request to the encoder when the router changed more than its id', () => {
    const req = receive({ model: MODEL, prompt: 'no max_tokens' }) as Parameters<typeof upstreamRequest>[0];
    const up = upstreamRequest(req, 'router-id', config(64));
    assert.equal(up.sampling?.maxTokens, 64);
    assert.equal(upstreamBytes(req, up), undefined);
  });

  it('has nothing for a request that did not arrive as bytes', () => {
    const req = decode(encode({ model: MODEL, prompt: 'x' })) as Parameters<typeof upstreamRequest>[0];
    assert.equal(upstreamBytes(req, upstreamRequest(req, 'id', config())), undefined);
  });
});
