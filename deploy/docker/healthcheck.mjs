#!/usr/bin/env node
// Health check of the llmmesh containers (Docker HEALTHCHECK), with the
// libraries llmmesh already ships: no curl or grpc_health_probe in the image.
//
//   healthcheck.mjs [--addr HOST:PORT] [--default-addr HOST:PORT] [--service NAME]
//       grpc.health.v1.Health/Check; the address is --addr, else
//       LLMMESH_LISTEN (a wildcard host becomes 127.0.0.1), else
//       --default-addr. Service "" (the default) is the whole server.
//   healthcheck.mjs --http URL
//       HTTP GET; healthy on 2xx.
//
// Exits 0 when healthy, 1 when not (the reason goes to stderr).
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath } from 'grpc-health-check';

const TIMEOUT_MS = 2000;

const { values } = parseArgs({
  options: {
    addr: { type: 'string' },
    'default-addr': { type: 'string' },
    service: { type: 'string', default: '' },
    http: { type: 'string' },
  },
});

function fail(reason) {
  process.stderr.write(`unhealthy: ${reason}\n`);
  process.exit(1);
}

function address() {
  if (values.addr) return values.addr;
  const listen = process.env.LLMMESH_LISTEN;
  if (listen) {
    const idx = listen.lastIndexOf(':');
    const host = listen.slice(0, idx).replace(/^\[|\]$/g, '');
    const port = listen.slice(idx + 1);
    return ['', '0.0.0.0', '::'].includes(host) ? `127.0.0.1:${port}` : `${listen.slice(0, idx)}:${port}`;
  }
  if (values['default-addr']) return values['default-addr'];
  return fail('no address: pass --addr or set LLMMESH_LISTEN');
}

if (values.http) {
  try {
    const res = await fetch(values.http, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    if (!res.ok) fail(`${values.http}: HTTP ${res.status}`);
    process.exit(0);
  } catch (err) {
    fail(`${values.http}: ${err.message}`);
  }
} else {
  const target = address();
  const definition = protoLoader.loadSync(protoPath, { keepCase: true, enums: String, defaults: true });
  const { Health } = grpc.loadPackageDefinition(definition).grpc.health.v1;
  const client = new Health(target, grpc.credentials.createInsecure());
  client.Check({ service: values.service }, { deadline: Date.now() + TIMEOUT_MS }, (err, res) => {
    client.close();
    if (err) fail(`${target} service "${values.service}": ${err.details || err.message}`);
    if (res.status !== 'SERVING') fail(`${target} service "${values.service}": ${res.status}`);
    process.exit(0);
  });
}
