import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type AdminHttpServer, adminDisabled, jsonReply, startAdminHttp, textReply } from './admin-http.js';

describe('admin HTTP server', () => {
  const token = 's3cret-admin-token';
  let server: AdminHttpServer;
  before(async () => {
    server = await startAdminHttp(
      '127.0.0.1:0',
      {
        '/healthz': () => textReply('ok\n'),
        '/readyz': () => textReply('not ready: warming up\n', 503),
        '/status': () => jsonReply({ ready: false }),
        '/metrics': async () => {
          throw new Error('registry broke');
        },
      },
      { tokenSha256: createHash('sha256').update(token).digest('hex') },
    );
  });
  after(() => server.close());
  const auth = { authorization: `Bearer ${token}` };

  it('lets probes through without the token and guards everything else', async () => {
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${server.url}/readyz`)).status, 503);
    const denied = await fetch(`${server.url}/status`);
    assert.equal(denied.status, 401);
    assert.match(denied.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.equal(
      (await fetch(`${server.url}/status`, { headers: { authorization: 'Bearer wrong' } })).status,
      401,
    );
    const ok = await fetch(`${server.url}/status?x=1`, { headers: auth });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { ready: false });
  });

  it('answers HEAD with the headers of GET and no body', async () => {
    const get = await fetch(`${server.url}/readyz`);
    const getBody = await get.text();
    const head = await fetch(`${server.url}/readyz`, { method: 'HEAD' });
    assert.equal(head.status, 503);
    assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(getBody)));
    assert.equal(head.headers.get('content-type'), get.headers.get('content-type'));
    assert.equal(await head.text(), '');
  });

  it('refuses other methods, names the routes on 404, and turns a failing route into 500', async () => {
    const post = await fetch(`${server.url}/healthz`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    const missing = await fetch(`${server.url}/nope`, { headers: auth });
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /\/healthz, \/readyz, \/status, \/metrics/);
    const failed = await fetch(`${server.url}/metrics`, { headers: auth });
    assert.equal(failed.status, 500);
    assert.match(await failed.text(), /metrics failed: Error: registry broke/);
  });

  it('reads "off" and friends as no admin server', () => {
    for (const v of [undefined, false as const, '', '0', 'off', 'OFF', 'false', 'none']) {
      assert.equal(adminDisabled(v), true, String(v));
    }
    assert.equal(adminDisabled('127.0.0.1:9091'), false);
  });
});
