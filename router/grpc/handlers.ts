/**
 * The gRPC face of the router: `llmmesh.v1.Inference` handlers. The stream
 * and unary adapters turn the pipeline's chunks into the wire shapes,
 * headers and trailers; ListModels reads the config and endpoint snapshot.
 */
import * as grpc from '@grpc/grpc-js';
import { MeshError } from '../../common/errors.js';
import type { GenerateResponse } from '../../common/generated/llmmesh/v1/GenerateResponse.js';
import type { InferenceHandlers } from '../../common/generated/llmmesh/v1/Inference.js';
import type { ListModelsResponse } from '../../common/generated/llmmesh/v1/ListModelsResponse.js';
import { CACHE_KEY, ENDPOINT_KEY, VERSION_KEY } from '../../common/metadata.js';
import type { Datastore } from '../datastore.js';
import type { Served } from '../request/context.js';
import type { RunRequest } from '../request/lifecycle.js';
import { usable } from '../scheduling/load.js';
import type { EndpointSet } from '../upstream/endpoints.js';
import { type ChunkStream, ChunkWriter } from './chunk-writer.js';

/** Beyond this many headers (endpoints come and go), the cache starts afresh. */
const MAX_HEADERS = 1024;

/**
 * Initial metadata of a response: version, endpoint, and how the pod served
 * it; built once per combination (grpc-js only reads the metadata it sends).
 */
function createHeaders(): (served: Served) => grpc.Metadata {
  const built = new Map<string, grpc.Metadata>();
  return (served) => {
    const key = `${served.version}\u0000${served.endpoint}\u0000${served.cache ?? ''}`;
    let md = built.get(key);
    if (!md) {
      md = new grpc.Metadata();
      md.set(VERSION_KEY, served.version);
      md.set(ENDPOINT_KEY, served.endpoint);
      if (served.cache) md.set(CACHE_KEY, served.cache);
      if (built.size >= MAX_HEADERS) built.clear();
      built.set(key, md);
    }
    return md;
  };
}

/** Creates the Inference handlers over the request lifecycle. */
export function createInferenceHandlers(
  run: RunRequest,
  datastore: Datastore,
  endpoints: EndpointSet,
): InferenceHandlers {
  const headerFor = createHeaders();
  return {
    GenerateStream(call) {
      let headersSent = false;
      // Chunks go out as the bytes the endpoint sent (see ChunkStream).
      const writer = new ChunkWriter(call as unknown as ChunkStream);
      run('GenerateStream', call, (chunk, served) => {
        if (headersSent) return writer.write(chunk);
        // Headers go out with the first chunk, not before: until then the
        // client's retry policy may still retry the call elsewhere.
        call.sendMetadata(headerFor(served));
        headersSent = true;
        return writer.write(chunk, chunk.modelVersion ? undefined : served.version);
      }).then(
        ({ trailer }) => {
          writer.flush();
          call.end(trailer);
        },
        (err: unknown) => {
          if (call.cancelled) return;
          writer.flush();
          call.emit('error', MeshError.from(err).toStatusObject());
        },
      );
    },

    Generate(call, callback) {
      const response: GenerateResponse = { text: '', requestId: call.request.requestId };
      const parts: string[] = [];
      run('Generate', call, (chunk, served) => {
        parts.push(chunk.text);
        if (!response.modelVersion) {
          response.modelVersion = chunk.modelVersion || served.version;
          call.sendMetadata(headerFor(served));
        }
        if (chunk.finishReason !== 'FINISH_REASON_UNSPECIFIED') {
          response.finishReason = chunk.finishReason;
          response.usage = chunk.usage;
        }
        return undefined;
      }).then(
        ({ served, trailer }) => {
          response.text = parts.join('');
          response.requestId = served.requestId;
          callback(null, response, trailer);
        },
        (err: unknown) => callback(MeshError.from(err).toStatusObject()),
      );
    },

    ListModels(_call, callback) {
      const snap = endpoints.snapshot();
      const response: ListModelsResponse = {
        models: Object.entries(datastore.config().models).map(([name, m]) => ({
          name,
          versions: Object.entries(m.versions).map(([version, v]) => {
            const pool = snap.pool(name, version);
            return {
              name: version,
              weight: v.weight,
              endpoints: pool.length,
              readyEndpoints: pool.filter(usable).length,
              maxModelLen: Math.max(0, ...pool.map((e) => e.report?.capacity?.maxModelLen ?? 0)),
            };
          }),
        })),
      };
      callback(null, response);
    },
  };
}
