import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type MeshError, Status } from './errors.js';
import type { GenerateRequest__Output } from './generated/llmmesh/v1/GenerateRequest.js';
import { estimatePromptTokens, validateGenerateRequest } from './validate.js';

const base = (): GenerateRequest__Output & {
  sampling: NonNullable<GenerateRequest__Output['sampling']>;
} => ({
  model: 'm',
  prompt: 'hello',
  messages: [],
  sampling: { maxTokens: 16, stop: [] },
  routing: { version: '', sessionKey: '', priority: 'PRIORITY_UNSPECIFIED' },
  requestId: '',
  continuation: null,
});

function rejects(mutate: (r: ReturnType<typeof base>) => void, field: RegExp): void {
  const r = base();
  mutate(r);
  assert.throws(
    () =>
      validateGenerateRequest(r, {
        maxPromptChars: 100,
        maxMessages: 3,
        maxStopStrings: 2,
        maxStopChars: 8,
        maxIdChars: 10,
      }),
    (e: MeshError) => e.code === Status.INVALID_ARGUMENT && field.test(e.message),
  );
}

describe('request validation', () => {
  it('accepts a plain request', () => validateGenerateRequest(base()));

  it('rejects each bad field with a message naming it, the limit and the value', () => {
    rejects((r) => {
      r.model = '';
    }, /^model: is required/);
    rejects((r) => {
      r.prompt = '';
    }, /^prompt: set prompt or messages/);
    rejects(
      (r) => (r.messages = [{ role: 'user', content: 'x' }]),
      /^prompt: set prompt or messages, not both/,
    );
    rejects((r) => {
      r.prompt = 'x'.repeat(101);
    }, /^prompt: 101 characters exceeds the limit of 100/);
    rejects((r) => {
      r.prompt = '';
      r.messages = Array.from({ length: 4 }, () => ({ role: 'user', content: 'x' }));
    }, /^messages: 4 messages exceeds the limit of 3/);
    rejects((r) => {
      r.prompt = '';
      r.messages = [{ role: 'user', content: '' }];
    }, /^messages\[0\]\.content: is empty/);
    rejects((r) => {
      r.prompt = '';
      r.messages = [{ role: 'root', content: 'x' }];
    }, /^messages\[0\]\.role: unknown role "root"/);
    rejects((r) => {
      r.sampling.temperature = Number.NaN;
    }, /^sampling\.temperature: .*got NaN/);
    rejects((r) => {
      r.sampling.temperature = -1;
    }, /^sampling\.temperature/);
    rejects((r) => {
      r.sampling.topP = 0;
    }, /^sampling\.top_p/);
    rejects((r) => {
      r.sampling.stop = ['a', 'b', 'c'];
    }, /^sampling\.stop: 3 stop strings exceeds the limit of 2/);
    rejects((r) => {
      r.sampling.stop = [''];
    }, /^sampling\.stop\[0\]: is empty/);
    rejects((r) => {
      r.requestId = 'x'.repeat(11);
    }, /^request_id: 11 characters exceeds the limit of 10/);
  });

  it('estimates prompt tokens at about four characters each', () => {
    assert.equal(estimatePromptTokens({ prompt: 'x'.repeat(400), messages: [] }), 100);
    assert.equal(
      estimatePromptTokens({ prompt: '', messages: [{ role: 'user', content: 'x'.repeat(40) }] }),
      17,
    );
  });
});
