import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import type {
  GenerateRequest,
  GenerateRequest__Output,
} from '../../common/generated/llmmesh/v1/GenerateRequest.js';
import { loadProtos, openRelayStream, type RelayEngineClient } from '../../common/proto.js';
import type { ModelConfig } from '../config/schema.js';
import { REQUEST_FIELDS, REQUEST_ID_FIELD, SINGULAR_REQUEST_FIELDS, upstreamRequest } from './preflight.js';

/** What proto-loader keeps of a message's descriptor. */
interface DescriptorProto {
  field: Array<{ name: string; number: number; label: string; type: string }>;
}

const protos = loadProtos();
const inference = protos.packageDefinition['llmmesh.v1.Inference'] as protoLoader.ServiceDefinition;
const engine = protos.packageDefinition['llmmesh.v1.Engine'] as protoLoader.ServiceDefinition;
/** What a client sends, and what the router's Inference server decodes it into. */
const clientEncode = (req: GenerateRequest) => inference.GenerateStream?.requestSerialize(req) as Buffer;
const routerDecode = (bytes: Buffer) =>
  inference.GenerateStream?.requestDeserialize(bytes) as GenerateRequest__Output;
/** What an engine decodes. */
const engineDecode = (bytes: Buffer) =>
  engine.GenerateStream?.requestDeserialize(bytes) as GenerateRequest__Output;

const MODEL = { versions: { v1: { weight: 1 } } } as unknown as ModelConfig;
const CAPPED = { ...MODEL, max_tokens_cap: 512 } as ModelConfig;

/** A real Engine server on loopback that keeps the bytes of each request and answers with no chunk. */
let server: grpc.Server;
let client: RelayEngineClient;
const seen: Buffer[] = [];

before(async () => {
  server = new grpc.Server();
  server.register<Buffer, Buffer>(
    '/llmmesh.v1.Engine/GenerateStream',
    (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      seen.push(call.request);
      call.end();
    },
    (b: Buffer) => b,
    (b: Buffer) => b,
    'serverStream',
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  client = new protos.RelayEngine(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});

after(() => {
  client.close();
  server.forceShutdown();
});

/** Sends `request` on the Engine hop as the router does; returns the bytes the engine received. */
async function relay(request: GenerateRequest): Promise<Buffer> {
  const n = seen.length;
  const call = openRelayStream(client, request, new grpc.Metadata(), { deadline: Date.now() + 10_000 });
  call.resume();
  await once(call, 'status');
  assert.equal(seen.length, n + 1);
  return seen[n] as Buffer;
}

const base: GenerateRequest = {
  model: 'm',
  prompt: 'Hello there',
  sampling: { maxTokens: 8, temperature: 0.5, stop: ['\n'] },
  routing: { sessionKey: 's-1' },
};

test('a request with its own id reaches the engine as the exact bytes the client sent', async () => {
  const sent = clientEncode({ ...base, requestId: 'client-id' });
  const out = upstreamRequest(routerDecode(sent), 'client-id', MODEL);
  const got = await relay(out);
  assert.ok(got.equals(sent), 'not re-encoded');
  assert.deepEqual(engineDecode(got), out);
});

test('the router-made request id is appended to the client bytes and is what the engine reads', async () => {
  const sent = clientEncode(base);
  const out = upstreamRequest(routerDecode(sent), 'router-id-7', MODEL);
  const got = await relay(out);
  assert.ok(got.subarray(0, sent.length).equals(sent), 'the client bytes come first, untouched');
  const decoded = engineDecode(got);
  assert.equal(decoded.requestId, 'router-id-7');
  assert.deepEqual(decoded, out);
});

test('a field this router does not know, or a field with another wire type, is not relayed: the request is encoded anew', async () => {
  // Field 15, a string: what a newer client could send (a newer proto may reserve such fields for routers).
  const unknown = Buffer.from([(15 << 3) | 2, 3, 0x61, 0x62, 0x63]);
  const sent = Buffer.concat([clientEncode({ ...base, requestId: 'x' }), unknown]);
  const out = upstreamRequest(routerDecode(sent), 'x', MODEL);
  const got = await relay(out);
  assert.equal(got.indexOf(unknown), -1, 'encoded anew, without the unknown field');
  assert.deepEqual(engineDecode(got), out);

  // `sampling` (field 4) tagged as a varint: protobufjs reads a message anyway ({ max_tokens: 7 }), another decoder would not.
  const odd = Buffer.concat([
    clientEncode({ ...base, requestId: 'y' }),
    Buffer.from([(4 << 3) | 0, 2, 0x08, 7]),
  ]);
  const oddGot = await relay(upstreamRequest(routerDecode(odd), 'y', MODEL));
  assert.ok(!oddGot.equals(odd), 'encoded anew');
  assert.equal(engineDecode(oddGot).sampling?.maxTokens, 7);
});

test("the scan's field numbers are GenerateRequest's, as the proto declares them", () => {
  const type = (protos.packageDefinition['llmmesh.v1.GenerateRequest'] as { type: DescriptorProto }).type;
  const bits = (fields: DescriptorProto['field']) => fields.reduce((b, f) => b | (1 << f.number), 0);
  assert.equal(REQUEST_FIELDS, bits(type.field));
  assert.equal(SINGULAR_REQUEST_FIELDS, bits(type.field.filter((f) => f.label !== 'LABEL_REPEATED')));
  assert.equal(type.field.find((f) => f.name === 'requestId')?.number, REQUEST_ID_FIELD);
  // All length-delimited: strings and messages.
  assert.ok(type.field.every((f) => f.type === 'TYPE_STRING' || f.type === 'TYPE_MESSAGE'));
});

test('opening the Engine call gives back the stack trace limit it lowers, also when the call throws', () => {
  const limit = Error.stackTraceLimit;
  const closed = new protos.RelayEngine('127.0.0.1:1', grpc.credentials.createInsecure());
  closed.close();
  assert.throws(() => openRelayStream(closed, base, new grpc.Metadata(), {}));
  assert.equal(Error.stackTraceLimit, limit);
});

test('a request the router changes is encoded anew: the max_tokens cap, a continuation', async () => {
  const sent = clientEncode({ ...base, sampling: { temperature: 0.25, stop: ['END'] } });
  const capped = upstreamRequest(routerDecode(sent), 'id-1', CAPPED);
  const got = engineDecode(await relay(capped));
  assert.equal(got.sampling?.maxTokens, 512);
  assert.equal(got.sampling?.temperature, 0.25);
  assert.deepEqual(got.sampling?.stop, ['END']);
  assert.equal(got.requestId, 'id-1');

  // A migration sends a copy with the delivered output: that copy is encoded, not the bytes kept for the original.
  const out = upstreamRequest(routerDecode(clientEncode(base)), 'id-2', MODEL);
  const moved = engineDecode(
    await relay({ ...out, continuation: { tokenIds: [5, 6], text: 'ab', completionTokens: 2 } }),
  );
  assert.deepEqual(moved.continuation, { tokenIds: [5, 6], text: 'ab', completionTokens: 2 });
  assert.equal(moved.requestId, 'id-2');
  assert.equal(moved.prompt, 'Hello there');
});

test('a request that repeats a singular field is encoded anew: the engine reads what the router checked', async () => {
  // Two `sampling` fields: protobufjs keeps the last, a merging decoder would also keep max_tokens 900.
  const sent = Buffer.concat([
    clientEncode({ ...base, requestId: 'r', sampling: { maxTokens: 900 } }),
    clientEncode({ sampling: { temperature: 0.5 } }),
  ]);
  const checked = routerDecode(sent);
  assert.equal(checked.sampling?.maxTokens, 0);
  const got = await relay(upstreamRequest(checked, 'r', MODEL));
  assert.ok(!got.equals(sent));
  assert.equal(engineDecode(got).sampling?.maxTokens, 0);
  assert.equal(engineDecode(got).sampling?.temperature, 0.5);
});

test('a request built in the router (never received) is encoded as usual', async () => {
  const got = engineDecode(await relay({ ...base, requestId: 'made-here' }));
  assert.equal(got.requestId, 'made-here');
  assert.equal(got.sampling?.maxTokens, 8);
});
