import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatStatus } from './status.js';

const NOW = Date.parse('2026-01-01T12:00:00Z');

describe('formatStatus', () => {
  it('shows configured and observed split, config state and breakers', () => {
    const text = formatStatus(
      {
        listen: '127.0.0.1:50051',
        models: [
          {
            name: 'm',
            versions: [
              {
                name: 'v1',
                weight: 90,
                configuredShare: 0.9,
                observedShare: 0.84,
                readyEndpoints: 2,
                endpoints: 2,
              },
              {
                name: 'v2',
                weight: 10,
                configuredShare: 0.1,
                observedShare: 0.16,
                readyEndpoints: 1,
                endpoints: 1,
              },
            ],
          },
        ],
        endpoints: [
          { address: '10.0.0.1:7001', model: 'm', version: 'v1', ready: true, breaker: 'closed' },
          { address: '10.0.0.2:7001', model: 'm', version: 'v2', ready: true, breaker: 'open' },
        ],
        config: {
          reloads: 3,
          rejected: 1,
          lastError: '',
          lastReloadAt: NOW - 30_000,
          lastRejection: { at: NOW - 600_000, error: 'models.m.versions.v2.weight: expected number' },
        },
      },
      'http://127.0.0.1:9090',
      NOW,
    );
    assert.match(text, /v1\s+weight\s+90\s+90%\s+84%\s+endpoints 2\/2 ready/);
    assert.match(text, /v2\s+weight\s+10\s+10%\s+16%/);
    assert.match(text, /config +3 reloads, 1 rejected; last reload 2026-01-01T11:59:30\.000Z \(30 s ago\)/);
    assert.match(
      text,
      /last rejection 2026-01-01T11:50:00\.000Z \(10 min ago\): models\.m\.versions\.v2\.weight/,
    );
    assert.match(text, /^breakers 10\.0\.0\.2:7001 open; 1 closed$/m);
  });

  it('copes with a router that reports less: no config times, no observed split, no rejection', () => {
    const text = formatStatus(
      {
        listen: 'x:1',
        models: [{ name: 'm', versions: [{ name: 'v1', weight: 1 }] }],
        endpoints: [],
        config: { reloads: 0, rejected: 0, lastError: '', lastReloadAt: 0, lastRejection: null },
      },
      'http://a',
      NOW,
    );
    assert.match(text, /config +0 reloads, 0 rejected; last reload never/);
    assert.doesNotMatch(text, /last rejection|last error/);
    assert.match(text, /v1\s+weight\s+1\s+100%\s+-\s+endpoints \?\/\? ready/);
    assert.match(formatStatus({}, 'http://a', NOW), /^breakers all 0 closed$/m);
  });

  it('shows a canary progression under its model, with the weights in force', () => {
    const text = formatStatus(
      {
        models: [
          {
            name: 'm',
            versions: [
              { name: 'v1', weight: 66.6667 },
              { name: 'v2', weight: 33.3333 },
            ],
          },
        ],
        canary: {
          models: [{ model: 'm', version: 'v2', phase: 'progressing', share: 33.3333, reason: 'started' }],
        },
      },
      'http://a',
      NOW,
    );
    assert.match(text, /v1\s+weight\s+66\.67/);
    assert.match(text, /^ {2}canary v2: progressing at 33\.3333 % \(started\)$/m);
  });
});
