/**
 * What the chunk codec and the chunk relay specs check themselves against:
 * proto-loader's own (protobufjs) codec for `GenerateChunk`, loaded apart
 * from loadProtos(), and seeded random chunks that reach every field.
 */
import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type {
  GenerateChunk,
  GenerateChunk__Output,
} from '../../common/generated/llmmesh/v1/GenerateChunk.js';
import { PROTO_FILES, PROTO_LOADER_OPTIONS, protoRoot } from '../../common/proto.js';

const definition = protoLoader.loadSync([...PROTO_FILES], {
  ...PROTO_LOADER_OPTIONS,
  includeDirs: [protoRoot()],
});
const method = (definition['llmmesh.v1.Engine'] as protoLoader.ServiceDefinition)
  .GenerateStream as grpc.MethodDefinition<unknown, GenerateChunk>;

/** Encodes a chunk as protobufjs does. */
export const pbEncode = (c: GenerateChunk): Buffer => method.responseSerialize(c);
/** Decodes a chunk as protobufjs does. */
export const pbDecode = (b: Buffer): GenerateChunk__Output =>
  method.responseDeserialize(b) as unknown as GenerateChunk__Output;

const ALPHABET = ['a', 'Z', ' ', '\n', 'é', '中', '😀', '"', '\u0000'];
const FINISH = ['FINISH_REASON_UNSPECIFIED', 'FINISH_REASON_STOP', 'FINISH_REASON_LENGTH'] as const;

/** A chunk with random fields: multi-byte and NUL text, varints at their length edges, long runs now and then. */
export function randomChunk(random: () => number): GenerateChunk {
  const int = (n: number) => Math.floor(random() * n);
  const u32 = () => [0, 1, 127, 128, 16383, 16384, 2 ** 31, 2 ** 32 - 1, int(200_000)][int(9)] as number;
  const str = (n: number) => Array.from({ length: int(n) }, () => ALPHABET[int(ALPHABET.length)]).join('');
  const chunk: GenerateChunk = {};
  if (random() < 0.9) chunk.text = str(random() < 0.1 ? 300 : 6);
  if (random() < 0.4) chunk.finishReason = FINISH[int(3)];
  if (random() < 0.3) chunk.usage = { promptTokens: u32(), completionTokens: u32(), cachedTokens: u32() };
  if (random() < 0.3) chunk.modelVersion = str(10);
  if (random() < 0.8) chunk.tokenIds = Array.from({ length: random() < 0.1 ? 200 : int(3) }, u32);
  return chunk;
}
