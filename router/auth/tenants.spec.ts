import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Metadata } from '@grpc/grpc-js';
import { type MeshError, Status } from '../../common/errors.js';
import { createAuthenticator, hashApiKey } from './tenants.js';

const auth = createAuthenticator([
  { name: 'search-team', key_sha256: hashApiKey('s3cret-search'), models: ['llama-3-8b-chat'] },
  { name: 'platform', key_sha256: hashApiKey('s3cret-platform').toUpperCase(), models: ['*'] },
]);

function md(value?: string): Metadata {
  const m = new Metadata();
  if (value !== undefined) m.set('authorization', value);
  return m;
}

describe('tenant authentication', () => {
  it('identifies the tenant from a Bearer key (hash stored, any case)', () => {
    assert.equal(auth.authenticate(md('Bearer s3cret-search')).name, 'search-team');
    assert.equal(auth.authenticate(md('bearer s3cret-platform')).name, 'platform');
  });

  for (const [name, value, pattern] of [
    ['missing', undefined, /missing credentials/],
    ['malformed', 'Basic dXNlcjpwYXNz', /malformed authorization/],
    ['empty bearer', 'Bearer ', /malformed authorization/],
    ['wrong', 'Bearer s3cret-nope', /invalid API key/],
  ] as const) {
    it(`rejects a ${name} key with UNAUTHENTICATED`, () => {
      assert.throws(
        () => auth.authenticate(md(value)),
        (e: MeshError) => e.code === Status.UNAUTHENTICATED && pattern.test(e.message),
      );
    });
  }

  it('checks the models a tenant may use', () => {
    const search = auth.authenticate(md('Bearer s3cret-search'));
    auth.authorize(search, 'llama-3-8b-chat');
    assert.throws(
      () => auth.authorize(search, 'llama-3-70b'),
      (e: MeshError) =>
        e.code === Status.PERMISSION_DENIED &&
        /tenant "search-team" may not use model "llama-3-70b"/.test(e.message),
    );
    auth.authorize(auth.authenticate(md('Bearer s3cret-platform')), 'anything');
  });
});
