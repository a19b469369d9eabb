/**
 * Benchmark targets: any `llmmesh.v1.Inference` server (a router) or
 * `llmmesh.v1.Engine` server (a sidecar, or a pass-through in front of one),
 * called the same way so their numbers compare.
 */
import * as grpc from '@grpc/grpc-js';
import type { GenerateChunk__Output } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest } from '../common/generated/llmmesh/v1/GenerateRequest.js';
import { loadProtos } from '../common/proto.js';
import type { BenchRequest } from './workloads.js';

/** The service a target serves. */
export type TargetKind = 'inference' | 'engine';

/** Where to send load. */
export interface BenchTarget {
  /** Series label in reports, e.g. `router` or `direct`. */
  name: string;
  /** `host:port`. */
  address: string;
  kind: TargetKind;
}

/** A streaming client for one target. */
export interface TargetClient {
  readonly target: BenchTarget;
  /** Starts one `GenerateStream` call. */
  stream(
    request: GenerateRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
  ): grpc.ClientReadableStream<GenerateChunk__Output>;
  /** Waits until the channel is connected. */
  waitForReady(timeoutMs: number): Promise<void>;
  close(): void;
}

interface RawStreamClient extends grpc.Client {
  GenerateStream(
    request: GenerateRequest,
    metadata: grpc.Metadata,
    options?: grpc.CallOptions,
  ): grpc.ClientReadableStream<GenerateChunk__Output>;
}

/** Creates a client for `target` (plaintext; retries off so every attempt is measured). */
export function createTargetClient(
  target: BenchTarget,
  channelOptions: grpc.ChannelOptions = {},
): TargetClient {
  const protos = loadProtos();
  const Ctor = target.kind === 'engine' ? protos.engine.Engine : protos.inference.Inference;
  const raw = new Ctor(target.address, grpc.credentials.createInsecure(), {
    'grpc.enable_retries': 0,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    ...channelOptions,
  }) as unknown as RawStreamClient;
  return {
    target,
    stream: (request, metadata, options) => raw.GenerateStream(request, metadata, options),
    waitForReady(timeoutMs) {
      return new Promise((resolve, reject) => {
        raw.waitForReady(Date.now() + timeoutMs, (err) =>
          err ? reject(new Error(`${target.name} at ${target.address}: ${err.message}`)) : resolve(),
        );
      });
    },
    close: () => raw.close(),
  };
}

/** The `GenerateRequest` of a workload request for `model`. */
export function toGenerateRequest(req: BenchRequest, model: string, temperature?: number): GenerateRequest {
  const out: GenerateRequest = { model, sampling: { maxTokens: req.maxTokens } };
  if (temperature !== undefined) out.sampling = { ...out.sampling, temperature };
  if (req.messages) out.messages = req.messages;
  else out.prompt = req.prompt ?? '';
  if (req.sessionKey) out.routing = { sessionKey: req.sessionKey };
  return out;
}

/** Parses `name=kind@host:port`, `kind@host:port` or `host:port` (an Inference server). */
export function parseTarget(spec: string, index = 0): BenchTarget {
  const m = /^(?:([A-Za-z0-9_.-]+)=)?(?:(inference|engine)@)?(\S+:\d+)$/.exec(spec.trim());
  if (!m) throw new RangeError(`target "${spec}" must be [NAME=][inference|engine@]HOST:PORT`);
  const kind = (m[2] ?? 'inference') as TargetKind;
  return { name: m[1] ?? (index === 0 ? kind : `${kind}-${index + 1}`), kind, address: m[3]! };
}
