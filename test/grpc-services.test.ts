/**
 * What tools and Kubernetes see: grpc.health.v1.Health with both meanings of
 * readiness, and server reflection (what `grpcurl list` uses).
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { service as healthService } from 'grpc-health-check';
import { startTestMesh, type TestMesh } from './helpers/mesh.js';
import { waitUntil } from './helpers/wait.js';

const HealthClient = grpc.makeGenericClientConstructor(healthService, 'Health');

function check(address: string, service: string): Promise<string> {
  const client = new HealthClient(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (x: { service: string }) => healthService.Check!.requestSerialize(x),
      (b: Buffer) => healthService.Check!.responseDeserialize(b) as { status: string },
      { service },
      (err: grpc.ServiceError | null, res?: { status: string }) => {
        client.close();
        if (err) reject(err);
        else resolve(String(res?.status));
      },
    );
  });
}

/** Resolves once Health.Watch reports `status` for `service` (the server pushes every change). */
function watchUntil(address: string, service: string, status: string): Promise<void> {
  const client = new HealthClient(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    const call = client.makeServerStreamRequest(
      '/grpc.health.v1.Health/Watch',
      (x: { service: string }) => healthService.Watch!.requestSerialize(x),
      (b: Buffer) => healthService.Watch!.responseDeserialize(b) as { status: string },
      { service },
      { deadline: Date.now() + 10_000 },
    );
    call.on('data', (res: { status: string }) => {
      if (String(res.status) !== status) return;
      call.cancel();
      client.close();
      resolve();
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (err.code !== grpc.status.CANCELLED) reject(err);
    });
  });
}

function reflectionClient(address: string) {
  const reflectionRoot = join(
    dirname(createRequire(import.meta.url).resolve('@grpc/reflection')),
    '..',
    'proto',
  );
  const def = protoLoader.loadSync('grpc/reflection/v1/reflection.proto', {
    includeDirs: [reflectionRoot],
    keepCase: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
  };
  return new pkg.grpc.reflection.v1.ServerReflection(address, grpc.credentials.createInsecure());
}

function reflect(address: string, request: Record<string, string>): Promise<Record<string, unknown>> {
  const client = reflectionClient(address);
  return new Promise((resolve, reject) => {
    const call = (
      client as unknown as {
        ServerReflectionInfo: () => grpc.ClientDuplexStream<unknown, Record<string, unknown>>;
      }
    ).ServerReflectionInfo();
    call.on('data', (res) => {
      call.end();
      client.close();
      resolve(res);
    });
    call.on('error', reject);
    call.write(request);
  });
}

describe('health and reflection', () => {
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh({ pods: [{ version: 'v1' }] });
  });
  after(() => mesh.close());

  it('router: the server is SERVING, and llmmesh.v1.Inference is SERVING while an endpoint is ready', async () => {
    assert.equal(await check(mesh.router.address, ''), 'SERVING');
    assert.equal(await check(mesh.router.address, 'llmmesh.v1.Inference'), 'SERVING');
  });

  it('sidecar: llmmesh.v1.Engine is SERVING once the engine is healthy', async () => {
    const sidecar = mesh.pods[0]!.sidecar;
    assert.equal(await check(sidecar.address, ''), 'SERVING');
    assert.equal(await check(sidecar.address, 'llmmesh.v1.Engine'), 'SERVING');
  });

  it('reflection lists the services (what grpcurl list shows)', async () => {
    const res = await reflect(mesh.router.address, { list_services: '' });
    const names = ((res.list_services_response as { service: Array<{ name: string }> }).service ?? []).map(
      (s) => s.name,
    );
    assert.ok(names.includes('llmmesh.v1.Inference'), names.join(','));
    assert.ok(names.includes('grpc.health.v1.Health'), names.join(','));
    assert.ok(!names.includes('llmmesh.v1.Engine'), 'the router does not advertise the sidecar API');

    const sidecarRes = await reflect(mesh.pods[0]!.sidecar.address, { list_services: '' });
    const sidecarNames = (
      (sidecarRes.list_services_response as { service: Array<{ name: string }> }).service ?? []
    ).map((s) => s.name);
    assert.ok(sidecarNames.includes('llmmesh.v1.Engine'));
  });

  it('reflection serves the descriptors a client needs to call Inference', async () => {
    const res = await reflect(mesh.router.address, { file_containing_symbol: 'llmmesh.v1.Inference' });
    const files = (res.file_descriptor_response as { file_descriptor_proto: Buffer[] }).file_descriptor_proto;
    assert.ok(files.length > 0);
    assert.ok(Buffer.concat(files).includes(Buffer.from('GenerateStream')));
  });

  it('router: llmmesh.v1.Inference turns NOT_SERVING when no endpoint is ready', async () => {
    await mesh.pods[0]!.sim.close();
    await waitUntil(
      mesh.router.endpoints.events,
      'change',
      () => mesh.router.endpoints.snapshot().endpoints.every((e) => !e.ready),
      'endpoint not ready',
    );
    // Health follows readiness within the router's refresh window: watch for it.
    await watchUntil(mesh.router.address, 'llmmesh.v1.Inference', 'NOT_SERVING');
    assert.equal(await check(mesh.router.address, 'llmmesh.v1.Inference'), 'NOT_SERVING');
    assert.equal(await check(mesh.router.address, ''), 'SERVING');
    assert.equal(await check(mesh.pods[0]!.sidecar.address, 'llmmesh.v1.Engine'), 'NOT_SERVING');
  });
});
