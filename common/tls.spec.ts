import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { createTestCa } from '../bench/test-ca.js';
import { type RunningGrpcServer, startGrpcServer } from './grpc-server.js';
import { channelCredentials, serverCredentials } from './tls.js';

const HealthClient = grpc.makeGenericClientConstructor(healthService, 'Health');

function check(address: string, creds: grpc.ChannelCredentials): Promise<string> {
  const client = new HealthClient(address, creds);
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (x: { service: string }) => healthService.Check!.requestSerialize(x),
      (b: Buffer) => healthService.Check!.responseDeserialize(b) as { status: string },
      { service: '' },
      { deadline: Date.now() + 5000 },
      (err: grpc.ServiceError | null, res?: { status: string }) => {
        client.close();
        if (err) reject(err);
        else resolve(String(res?.status));
      },
    );
  });
}

describe('TLS and mTLS on gRPC hops', () => {
  const servers: RunningGrpcServer[] = [];
  after(async () => {
    for (const s of servers) await s.shutdown(0);
  });
  const start = async (creds: grpc.ServerCredentials) => {
    const s = await startGrpcServer({
      address: '127.0.0.1:0',
      services: [],
      reflect: [],
      credentials: creds,
    });
    s.setHealth('', 'SERVING');
    servers.push(s);
    return s;
  };

  it('serves TLS to a client that trusts the CA, and not to one that does not', async () => {
    const ca = createTestCa('ca-a');
    const other = createTestCa('ca-b');
    const server = ca.issue('server', 'server');
    const s = await start(serverCredentials({ certFile: server.certFile, keyFile: server.keyFile }));
    assert.equal(await check(s.address, channelCredentials({ caFile: ca.certFile })), 'SERVING');
    await assert.rejects(check(s.address, channelCredentials({ caFile: other.certFile })), {
      code: grpc.status.UNAVAILABLE,
    });
    await assert.rejects(check(s.address, grpc.credentials.createInsecure()), {
      code: grpc.status.UNAVAILABLE,
    });
  });

  it('mTLS: refuses a client without a certificate from the trusted CA', async () => {
    const ca = createTestCa('ca-m');
    const rogue = createTestCa('ca-rogue');
    const server = ca.issue('server', 'server');
    const client = ca.issue('router', 'client');
    const rogueClient = rogue.issue('rogue', 'client');
    const s = await start(
      serverCredentials({ certFile: server.certFile, keyFile: server.keyFile, clientCaFile: ca.certFile }),
    );
    assert.equal(
      await check(
        s.address,
        channelCredentials({ caFile: ca.certFile, certFile: client.certFile, keyFile: client.keyFile }),
      ),
      'SERVING',
    );
    await assert.rejects(check(s.address, channelCredentials({ caFile: ca.certFile })), {
      code: grpc.status.UNAVAILABLE,
    });
    await assert.rejects(
      check(
        s.address,
        channelCredentials({
          caFile: ca.certFile,
          certFile: rogueClient.certFile,
          keyFile: rogueClient.keyFile,
        }),
      ),
      { code: grpc.status.UNAVAILABLE },
    );
  });

  it('picks up a rotated server certificate without a restart', async () => {
    const oldCa = createTestCa('ca-old');
    const newCa = createTestCa('ca-new');
    const dir = mkdtempSync(join(tmpdir(), 'llmmesh-rotate-'));
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    const first = oldCa.issue('server', 'server');
    copyFileSync(first.certFile, certFile);
    copyFileSync(first.keyFile, keyFile);
    const s = await start(serverCredentials({ certFile, keyFile, refreshIntervalMs: 50 }));
    const trustsNew = channelCredentials({ caFile: newCa.certFile });
    await assert.rejects(check(s.address, trustsNew), { code: grpc.status.UNAVAILABLE });

    const second = newCa.issue('server', 'server');
    copyFileSync(second.keyFile, keyFile);
    copyFileSync(second.certFile, certFile);
    // The provider re-reads the files on its refresh interval: wait for the new identity.
    const deadline = Date.now() + 10_000;
    let status = '';
    while (!status && Date.now() < deadline) {
      status = await check(s.address, channelCredentials({ caFile: newCa.certFile })).catch(() => '');
    }
    assert.equal(status, 'SERVING');
  });

  it('names the missing file', () => {
    assert.throws(
      () => serverCredentials({ certFile: '/nonexistent/tls.crt', keyFile: '/x' }),
      /tls\.cert_file: cannot read \/nonexistent\/tls\.crt: ENOENT/,
    );
    assert.throws(() => channelCredentials({ certFile: 'a' }), /cert_file and key_file go together/);
  });
});
