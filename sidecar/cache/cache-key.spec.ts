import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GenerateRequest__Output } from '../../common/generated/llmmesh/v1/GenerateRequest.js';
import { cacheMode, isDeterministic, responseCacheKey } from './cache-key.js';

function req(over: Partial<GenerateRequest__Output> = {}): GenerateRequest__Output {
  return {
    model: 'm',
    prompt: 'hello',
    messages: [],
    sampling: { maxTokens: 16, temperature: 0, stop: [] },
    routing: null,
    requestId: '',
    ...over,
  } as GenerateRequest__Output;
}

describe('response cache keys', () => {
  it('caches temperature 0 or a fixed seed, nothing else', () => {
    assert.equal(isDeterministic(req()), true);
    assert.equal(
      isDeterministic(req({ sampling: { maxTokens: 16, temperature: 0.7, seed: 3, stop: [] } })),
      true,
    );
    assert.equal(isDeterministic(req({ sampling: { maxTokens: 16, temperature: 0.7, stop: [] } })), false);
    assert.equal(
      isDeterministic(req({ sampling: { maxTokens: 16, stop: [] } })),
      false,
      'unset = engine default',
    );
    assert.equal(isDeterministic(req({ sampling: null })), false);
  });

  it('bypass metadata wins over determinism', () => {
    assert.equal(cacheMode(req(), 'bypass'), 'bypass');
    assert.equal(cacheMode(req(), ' BYPASS '), 'bypass');
    assert.equal(cacheMode(req(), undefined), 'cacheable');
    assert.equal(cacheMode(req({ sampling: null }), 'whatever'), 'uncacheable');
  });

  it('keys on model, version and every part of the request but its id and routing', () => {
    const base = responseCacheKey('m', 'v1', req());
    assert.match(base, /^[0-9a-f]{64}$/);
    assert.equal(responseCacheKey('m', 'v1', req({ requestId: 'abc' })), base);
    assert.equal(
      responseCacheKey(
        'm',
        'v1',
        req({ routing: { version: 'v1', sessionKey: 's', priority: 'PRIORITY_HIGH' } }),
      ),
      base,
    );
    const different = [
      responseCacheKey('m2', 'v1', req()),
      responseCacheKey('m', 'v2', req()),
      responseCacheKey('m', 'v1', req({ prompt: 'hello!' })),
      responseCacheKey('m', 'v1', req({ sampling: { maxTokens: 17, temperature: 0, stop: [] } })),
      responseCacheKey('m', 'v1', req({ sampling: { maxTokens: 16, temperature: 0, stop: ['x'] } })),
      responseCacheKey('m', 'v1', req({ sampling: { maxTokens: 16, temperature: 0, seed: 1, stop: [] } })),
      responseCacheKey('m', 'v1', req({ sampling: { maxTokens: 16, temperature: 0, topP: 0.5, stop: [] } })),
      responseCacheKey('m', 'v1', req({ prompt: '', messages: [{ role: 'user', content: 'hello' }] })),
      responseCacheKey('m', 'v1', req({ prompt: '', messages: [{ role: 'system', content: 'hello' }] })),
    ];
    assert.equal(new Set([base, ...different]).size, different.length + 1);
  });
});
