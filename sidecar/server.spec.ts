import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { describe, it } from 'node:test';
import { adminDisabled } from './admin-server.js';
import { advertisedAddress } from './server.js';

describe('sidecar addresses', () => {
  it('announces the listen host, or this host when it listens on every interface', () => {
    assert.equal(advertisedAddress('127.0.0.1:0', 7001), '127.0.0.1:7001');
    assert.equal(advertisedAddress('[::1]:0', 7001), '[::1]:7001');
    const wildcard = advertisedAddress('0.0.0.0:7001', 7001);
    const ips = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a && a.family === 'IPv4' && !a.internal)
      .map((a) => `${a?.address}:7001`);
    if (ips.length > 0) assert.equal(wildcard, ips[0]);
    else assert.match(wildcard, /:7001$/);
    assert.notEqual(wildcard, '0.0.0.0:7001');
  });

  it('"off", "0", "" and false disable the admin server', () => {
    for (const v of ['off', 'OFF', '0', '', 'none', false, undefined] as const)
      assert.equal(adminDisabled(v), true, String(v));
    assert.equal(adminDisabled('127.0.0.1:9091'), false);
    assert.equal(adminDisabled('0.0.0.0:0'), false);
  });
});
