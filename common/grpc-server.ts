/**
 * A gRPC server with the services every llmmesh server carries: the
 * `grpc.health.v1.Health` service and server reflection, so Kubernetes probes
 * and `grpcurl` work without .proto files.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath, type ServingStatus } from 'grpc-health-check';
import { formatHostPort, parseHostPort } from './address.js';
import { PROTO_FILES, PROTO_LOADER_OPTIONS, protoRoot } from './proto.js';

/** One service to add to the server. */
export interface ServiceBinding {
  definition: grpc.ServiceDefinition;
  // biome-ignore lint/suspicious/noExplicitAny: grpc-js handler maps are untyped at this level
  implementation: grpc.UntypedServiceImplementation | any;
}

/** Options of {@link startGrpcServer}. */
export interface GrpcServerOptions {
  /** `host:port`; port 0 picks a free port. */
  address: string;
  services: ServiceBinding[];
  /** Fully qualified names exposed by reflection (health and reflection are added). */
  reflect: string[];
  /** grpc-js server options (message sizes, keepalive). */
  serverOptions?: grpc.ServerOptions;
  credentials?: grpc.ServerCredentials;
}

/** A running server. */
export interface RunningGrpcServer {
  readonly server: grpc.Server;
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** `host:port` as clients should dial it. */
  readonly address: string;
  /** Sets the health status of `service` (`''` is the whole server). */
  setHealth(service: string, status: ServingStatus): void;
  /**
   * Stops accepting calls, lets running calls finish for up to `graceMs`, then
   * cancels what is left.
   */
  shutdown(graceMs?: number): Promise<void>;
}

/** Binds and starts a gRPC server with health and reflection. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const { host, port: requestedPort } = parseHostPort(options.address, 'listen');
  const server = new grpc.Server({
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.keepalive_time_ms': 30_000,
    // Channelz counts and timestamps every call and message for a debugging
    // service no llmmesh server exposes: the work would be for nothing.
    'grpc.enable_channelz': 0,
    ...options.serverOptions,
  });
  for (const s of options.services) server.addService(s.definition, s.implementation);

  const health = new HealthImplementation({ '': 'NOT_SERVING' });
  health.addToServer(server);

  const reflectionPackage = protoLoader.loadSync([...PROTO_FILES, healthProtoPath], {
    ...PROTO_LOADER_OPTIONS,
    includeDirs: [protoRoot()],
  });
  new ReflectionService(reflectionPackage, {
    services: [...options.reflect, 'grpc.health.v1.Health'],
  }).addToServer(server);

  const bindAddress = formatHostPort(host, requestedPort);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      bindAddress,
      options.credentials ?? grpc.ServerCredentials.createInsecure(),
      (err, p) => {
        if (err) reject(bindError(err, bindAddress));
        else resolve(p);
      },
    );
  });

  let stopped: Promise<void> | undefined;
  return {
    server,
    port,
    address: formatHostPort(host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host, port),
    setHealth: (service, status) => health.setStatus(service, status),
    shutdown(graceMs = 10_000) {
      stopped ??= new Promise<void>((resolve) => {
        health.setStatus('', 'NOT_SERVING');
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        timer.unref();
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return stopped;
    },
  };
}

function bindError(err: Error, address: string): Error {
  if (/EADDRINUSE/.test(err.message)) {
    return new Error(`cannot listen on ${address}: address already in use`, { cause: err });
  }
  if (/EADDRNOTAVAIL|ENOTFOUND|EACCES/.test(err.message)) {
    return new Error(`cannot listen on ${address}: ${err.message}`, { cause: err });
  }
  return new Error(`cannot listen on ${address}: ${err.message}`, { cause: err });
}
