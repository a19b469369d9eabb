import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadRouterConfigFile, parseRouterConfig } from './load.js';

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
    assert.deepEqual(cfg.discovery.endpoints, ['[::1]:7001']);
    assert.throws(() => loadRouterConfigFile(join(dir, 'missing.yaml')), /missing\.yaml/);
    writeFileSync(path, 'models: { m: { versions: { v1: { weight: -1 } } } }\n');
    assert.throws(
      () => loadRouterConfigFile(path),
      (err: Error) => err.message.includes(path),
    );
  });
});
