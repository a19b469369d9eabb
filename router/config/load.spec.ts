import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadRouterConfigFile, parseRouterConfig } from './load.js';
import { DEFAULT_PROFILE, defaultDeadlineMs, profileFor } from './schema.js';

function problems(yaml: string): string[] {
  try {
    parseRouterConfig(yaml);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('config was accepted');
}

describe('router config', () => {
  it('accepts the documented example and fills every default', () => {
    const cfg = parseRouterConfig(`
listen: 127.0.0.1:50051
admin: 127.0.0.1:9090
discovery:
  kind: static
  endpoints: [127.0.0.1:7001, 127.0.0.1:7002, 127.0.0.1:7003]
models:
  llama-3-8b-chat:
    versions:
      v1: { weight: 90 }
      v2: { weight: 10 }
    sticky: session_key
    profile: default
profiles:
  default:
    filters: [ready, not-draining, circuit-closed]
    scorers: [{ type: prefix-cache, weight: 3 }, { type: queue-depth, weight: 1 }, { type: kv-cache, weight: 1 }]
    picker: max-score
`);
    assert.deepEqual(cfg.discovery, {
      kind: 'static',
      endpoints: ['127.0.0.1:7001', '127.0.0.1:7002', '127.0.0.1:7003'],
    });
    assert.equal(cfg.models['llama-3-8b-chat']?.versions.v2?.weight, 10);
    assert.equal(cfg.models['llama-3-8b-chat']?.fallback, true);
  });

  it('fills the defaults of breakers, retries, admission and the default profile', () => {
    const cfg = parseRouterConfig('models: { m: { versions: { v1: { weight: 1 } } } }');
    assert.deepEqual(cfg.breaker, {
      error_threshold_percentage: 50,
      volume_threshold: 5,
      consecutive_failures: 5,
      reset_timeout_ms: 10_000,
      window_ms: 5_000,
      max_ejection_percent: 50,
    });
    assert.deepEqual(cfg.upstream.retry_budget, { ratio: 0.2, min_retries: 10, window_ms: 10_000 });
    assert.equal(cfg.upstream.first_token_timeout_ms, 60_000);
    assert.equal(cfg.admission.saturation_queue_depth, 0);
    assert.equal(cfg.admission.max_queue_wait_ms, 2_000);
    assert.equal(cfg.admission.standing_queue_wait_ms, 100);
    assert.equal(cfg.admission.min_pushback_ms, 50);
    assert.equal(defaultDeadlineMs(cfg, 'm'), 600_000);
    assert.deepEqual(profileFor(cfg, 'm'), { name: 'default', profile: DEFAULT_PROFILE });
    const withDeadline = parseRouterConfig(
      'models: { m: { versions: { v1: { weight: 1 } }, deadline_ms: 5000 } }',
    );
    assert.equal(defaultDeadlineMs(withDeadline, 'm'), 5_000);
    const redis = parseRouterConfig(
      'discovery: { kind: redis }\nmodels: { m: { versions: { v1: { weight: 1 } } } }',
    );
    assert.deepEqual(redis.discovery, {
      kind: 'redis',
      url: 'redis://127.0.0.1:6379',
      prefix: 'llmmesh:endpoints:',
      interval_ms: 2_000,
    });
  });

  it('needs only models', () => {
    const cfg = parseRouterConfig('models: { m: { versions: { v1: { weight: 1 } } } }');
    assert.equal(cfg.listen, '127.0.0.1:50051');
    assert.equal(cfg.admin, '127.0.0.1:9090');
    assert.equal(cfg.models.m?.sticky, 'session_key');
    assert.equal(cfg.models.m?.profile, 'default');
  });

  const cases: Array<[string, string, RegExp]> = [
    [
      'negative weight',
      'models: { m: { versions: { v1: { weight: -5 } } } }',
      /^models\.m\.versions\.v1\.weight: must be >= 0$/,
    ],
    [
      'fractional weight',
      'models: { m: { versions: { v1: { weight: 1.5 } } } }',
      /^models\.m\.versions\.v1\.weight: must be a whole number$/,
    ],
    [
      'misspelt key',
      'models: { m: { versions: { v1: { wieght: 5 } } } }',
      /^models\.m\.versions\.v1: unknown field "wieght"$/,
    ],
    [
      'all weights zero',
      'models: { m: { versions: { v1: { weight: 0 } } } }',
      /^models\.m\.versions: at least one version needs a weight > 0$/,
    ],
    ['no models', 'listen: 127.0.0.1:1', /^models: is required$/],
    [
      'bad listen',
      'listen: localhost\nmodels: { m: { versions: { v1: { weight: 1 } } } }',
      /^listen: "localhost" is not host:port$/,
    ],
    [
      'bad endpoint',
      'discovery: { kind: static, endpoints: ["127.0.0.1:99999"] }\nmodels: { m: { versions: { v1: { weight: 1 } } } }',
      /^discovery\.endpoints\[0\]: "127\.0\.0\.1:99999" has an invalid port$/,
    ],
    [
      'unknown discovery kind',
      'discovery: { kind: consul }\nmodels: { m: { versions: { v1: { weight: 1 } } } }',
      /^discovery\.kind: /,
    ],
    [
      'unknown profile',
      'models: { m: { versions: { v1: { weight: 1 } }, profile: fast } }',
      /^models\.m\.profile: unknown profile "fast"/,
    ],
    [
      'unknown scorer',
      'models: { m: { versions: { v1: { weight: 1 } } } }\nprofiles: { p: { scorers: [{ type: magic }] } }',
      /^profiles\.p\.scorers\[0\]\.type: /,
    ],
    [
      'bad sticky',
      'models: { m: { versions: { v1: { weight: 1 } }, sticky: cookie } }',
      /^models\.m\.sticky: /,
    ],
    [
      'DNS discovery without a name',
      'discovery: { kind: dns, port: 7001 }\nmodels: { m: { versions: { v1: { weight: 1 } } } }',
      /^discovery\.name: is required$/,
    ],
    [
      'Redis discovery with a bad URL',
      'discovery: { kind: redis, url: "http://x" }\nmodels: { m: { versions: { v1: { weight: 1 } } } }',
      /^discovery\.url: must be a redis:\/\/ or rediss:\/\/ URL$/,
    ],
    [
      'unknown picker',
      'models: { m: { versions: { v1: { weight: 1 } } } }\nprofiles: { p: { picker: fastest } }',
      /^profiles\.p\.picker: /,
    ],
    [
      'retry budget ratio above 1',
      'models: { m: { versions: { v1: { weight: 1 } } } }\nupstream: { retry_budget: { ratio: 2 } }',
      /^upstream\.retry_budget\.ratio: must be <= 1$/,
    ],
    [
      'ejection share above 100',
      'models: { m: { versions: { v1: { weight: 1 } } } }\nbreaker: { max_ejection_percent: 150 }',
      /^breaker\.max_ejection_percent: /,
    ],
    [
      'unknown admission field',
      'models: { m: { versions: { v1: { weight: 1 } } } }\nadmission: { pushback: 5 }',
      /^admission: unknown field "pushback"$/,
    ],
    [
      'negative minimum pushback',
      'models: { m: { versions: { v1: { weight: 1 } } } }\nadmission: { min_pushback_ms: -5 }',
      /^admission\.min_pushback_ms: /,
    ],
    [
      'fractional model deadline',
      'models: { m: { versions: { v1: { weight: 1 } }, deadline_ms: 1.5 } }',
      /^models\.m\.deadline_ms: must be a whole number of milliseconds$/,
    ],
    ['not a mapping', '- a\n- b', /must be a YAML mapping/],
    ['YAML syntax', 'models: {', /^YAML: /],
  ];
  for (const [name, yaml, expected] of cases) {
    it(`rejects ${name} with a message naming the field`, () => {
      const p = problems(yaml);
      assert.ok(
        p.some((line) => expected.test(line)),
        `no problem matched ${expected}: ${JSON.stringify(p)}`,
      );
    });
  }

  it('names the file in errors and applies command-line overrides', () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmmesh-config-'));
    const path = join(dir, 'routes.yaml');
    writeFileSync(path, 'models: { m: { versions: { v1: { weight: 1 } } } }\n');
    const cfg = loadRouterConfigFile(path, {
      listen: '127.0.0.1:0',
      discovery: { kind: 'static', endpoints: ['[::1]:7001'] },
    });
    assert.equal(cfg.listen, '127.0.0.1:0');
    assert.deepEqual(cfg.discovery, { kind: 'static', endpoints: ['[::1]:7001'] });
    assert.throws(() => loadRouterConfigFile(join(dir, 'missing.yaml')), /missing\.yaml/);
    writeFileSync(path, 'models: { m: { versions: { v1: { weight: -1 } } } }\n');
    assert.throws(
      () => loadRouterConfigFile(path),
      (err: Error) => err.message.includes(path),
    );
  });
});
