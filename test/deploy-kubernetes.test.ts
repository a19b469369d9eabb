/**
 * The Kubernetes manifests of deploy/kubernetes, checked without a cluster:
 * every kustomization renders (a kustomize subset, below), every object
 * validates against the Kubernetes OpenAPI schemas (kubernetes-models) with
 * unknown fields rejected as `kubectl apply` does, and everything the
 * manifests tell llmmesh — flags, environment, ports, probes, config file,
 * metric names — is something the code accepts or serves.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { IContainer, IPodSpec, IProbe } from 'kubernetes-models/v1';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { routerCommand } from '../cli/commands/router.js';
import { sidecarCommand } from '../cli/commands/sidecar.js';
import { simCommand } from '../cli/commands/sim.js';
import { type CommandSpec, parseOptions } from '../cli/options.js';
import { parseHostPort } from '../common/address.js';
import { silentLogger } from '../common/log.js';
import { ENGINE_SERVICE, INFERENCE_SERVICE } from '../common/proto.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const K8S = join(ROOT, 'deploy', 'kubernetes');
const OVERLAYS = ['overlays/dev', 'overlays/prod'] as const;
const NAMESPACE = 'llm';

// ---------------------------------------------------------------------------
// A kustomize subset: resources (files and directories), components,
// configMapGenerator (files, no hash suffix), patches (strategic merge, by
// name or by target kind/name/labelSelector, `null` and `$patch: delete`),
// images and namespace. A kustomization using anything else fails the test,
// so nothing is silently ignored.

type Obj = { [key: string]: unknown };
interface Meta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Resource extends Obj {
  apiVersion: string;
  kind: string;
  metadata: Meta;
}
interface Target {
  kind?: string;
  name?: string;
  labelSelector?: string;
}
interface Kustomization {
  apiVersion: string;
  kind: 'Kustomization' | 'Component';
  namespace?: string;
  resources?: string[];
  components?: string[];
  patches?: Array<{ path?: string; patch?: string; target?: Target }>;
  configMapGenerator?: Array<{
    name: string;
    files?: string[];
    behavior?: string;
    options?: { disableNameSuffixHash?: boolean };
  }>;
  images?: Array<{ name: string; newName?: string; newTag?: string }>;
}
const KUSTOMIZATION_KEYS = new Set([
  'apiVersion',
  'kind',
  'namespace',
  'resources',
  'components',
  'patches',
  'configMapGenerator',
  'images',
]);
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'PersistentVolume',
  'StorageClass',
]);

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function readKustomization(dir: string): Kustomization {
  const file = join(dir, 'kustomization.yaml');
  assert.ok(existsSync(file), `${relative(ROOT, dir)}: no kustomization.yaml`);
  const k = parseYaml(readFileSync(file, 'utf8')) as Kustomization;
  for (const key of Object.keys(k)) {
    assert.ok(KUSTOMIZATION_KEYS.has(key), `${relative(ROOT, file)}: "${key}" is not supported by this test`);
  }
  return k;
}

function readResources(file: string): Resource[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((doc, i) => {
    assert.equal(doc.errors.length, 0, `${relative(ROOT, file)}#${i}: ${doc.errors[0]?.message}`);
    const r = doc.toJS() as Resource;
    assert.ok(
      isObj(r) && r.apiVersion && r.kind && r.metadata?.name,
      `${relative(ROOT, file)}#${i}: not a resource`,
    );
    return r;
  });
}

/** Merge keys of the lists the manifests patch (Kubernetes' patchMergeKey). */
function mergeKey(field: string, items: unknown[]): string | undefined {
  if (['containers', 'initContainers', 'env', 'volumes', 'imagePullSecrets'].includes(field)) return 'name';
  if (field === 'volumeMounts') return 'mountPath';
  if (field === 'ports')
    return items.some((i) => isObj(i) && 'containerPort' in i) ? 'containerPort' : 'port';
  return undefined;
}

function strategicMerge(base: Obj, patch: Obj): Obj {
  const out: Obj = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$patch') throw new Error(`unsupported $patch: ${String(value)}`);
    if (value === null) {
      delete out[key];
      continue;
    }
    const current = out[key];
    if (Array.isArray(value) && Array.isArray(current)) {
      const mk = mergeKey(key, [...current, ...value]);
      out[key] = mk ? mergeList(current, value, mk) : value;
    } else if (isObj(value) && isObj(current)) {
      out[key] = strategicMerge(current, value);
    } else {
      out[key] = stripDirectives(value);
    }
  }
  return out;
}

function mergeList(base: unknown[], patch: unknown[], key: string): unknown[] {
  const out = [...base];
  for (const item of patch) {
    assert.ok(isObj(item) && key in item, `list item without its merge key "${key}"`);
    const idx = out.findIndex((b) => isObj(b) && b[key] === item[key]);
    if (item.$patch === 'delete') {
      assert.ok(idx >= 0, `$patch: delete of ${key}=${String(item[key])}, which is not there`);
      out.splice(idx, 1);
    } else if (idx >= 0) {
      out[idx] = strategicMerge(out[idx] as Obj, item);
    } else {
      out.push(stripDirectives(item));
    }
  }
  return out;
}

function stripDirectives(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripDirectives);
  if (!isObj(value)) return value;
  assert.ok(!('$patch' in value), 'a $patch directive in a new element');
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, stripDirectives(v)]));
}

function matches(r: Resource, t: Target): boolean {
  if (t.kind && r.kind !== t.kind) return false;
  if (t.name && r.metadata.name !== t.name) return false;
  if (t.labelSelector) {
    for (const term of t.labelSelector.split(',')) {
      const [k, v] = term.split('=').map((s) => s.trim());
      if (!k || r.metadata.labels?.[k] !== v) return false;
    }
  }
  return true;
}

function applyPatches(dir: string, k: Kustomization, resources: Resource[]): Resource[] {
  let out = resources;
  for (const p of k.patches ?? []) {
    assert.ok(p.path ?? p.patch, `${relative(ROOT, dir)}: a patch needs path or patch`);
    const text = p.path ? readFileSync(join(dir, p.path), 'utf8') : (p.patch as string);
    const where = `${relative(ROOT, dir)}: patch ${p.path ?? '(inline)'}`;
    const patch = parseYaml(text) as Obj & { kind: string; metadata: Meta };
    assert.ok(isObj(patch) && patch.kind && patch.metadata?.name, `${where}: only strategic merge patches`);
    const target: Target = p.target ?? { kind: patch.kind, name: patch.metadata.name };
    const hits = out.filter((r) => matches(r, target));
    assert.ok(hits.length > 0, `${where}: matches no resource`);
    if (patch.$patch === 'delete') {
      out = out.filter((r) => !hits.includes(r));
      continue;
    }
    const { metadata, ...rest } = patch;
    const { name: _ignored, ...metaRest } = metadata;
    out = out.map((r) =>
      hits.includes(r) ? (strategicMerge(r, { ...rest, metadata: metaRest }) as Resource) : r,
    );
  }
  return out;
}

function containersOf(spec: IPodSpec): IContainer[] {
  return [...(spec.initContainers ?? []), ...spec.containers];
}

/** Renders a kustomization (or applies a component onto `accumulated`). */
function build(dir: string, accumulated: Resource[] = []): Resource[] {
  const k = readKustomization(dir);
  const where = relative(ROOT, dir);
  let out = [...accumulated];
  for (const entry of k.resources ?? []) {
    const p = resolve(dir, entry);
    assert.ok(existsSync(p), `${where}: resource ${entry} does not exist`);
    if (statSync(p).isDirectory()) {
      assert.equal(readKustomization(p).kind, 'Kustomization', `${where}: ${entry} is not a Kustomization`);
      out.push(...build(p));
    } else {
      out.push(...readResources(p));
    }
  }
  for (const g of k.configMapGenerator ?? []) {
    assert.ok(!g.behavior || g.behavior === 'create', `${where}: configMapGenerator behavior ${g.behavior}`);
    // A stable name is what lets the routers hot-reload (a hashed name rolls them).
    assert.equal(g.options?.disableNameSuffixHash, true, `${where}: ${g.name} must not get a hash suffix`);
    const data: Record<string, string> = {};
    for (const f of g.files ?? []) {
      const [key, path] = f.includes('=') ? f.split('=', 2) : [basename(f), f];
      assert.ok(existsSync(join(dir, path as string)), `${where}: ${f} does not exist`);
      data[key as string] = readFileSync(join(dir, path as string), 'utf8');
    }
    out.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name }, data });
  }
  for (const c of k.components ?? []) {
    const p = resolve(dir, c);
    assert.equal(readKustomization(p).kind, 'Component', `${where}: ${c} is not a Component`);
    out = build(p, out);
  }
  out = applyPatches(dir, k, out);
  for (const image of k.images ?? []) {
    for (const r of out) {
      for (const c of podSpec(r) ? containersOf(podSpec(r) as IPodSpec) : []) {
        if (c.image === image.name || c.image?.startsWith(`${image.name}:`)) {
          c.image = `${image.newName ?? image.name}:${image.newTag ?? 'latest'}`;
        }
      }
    }
  }
  if (k.namespace) {
    for (const r of out) if (!CLUSTER_SCOPED.has(r.kind)) r.metadata.namespace = k.namespace;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Schema validation: kubernetes-models' validators, plus unknown fields. The
// validators read every property the schema knows; a property of the object
// that was never read is one the API server would reject (strict field
// validation, the default of `kubectl apply`).

type Validatable = { prototype: { validate(this: unknown): void } };

async function modelClass(r: Resource): Promise<Validatable> {
  const [group, version] = r.apiVersion.includes('/') ? r.apiVersion.split('/') : ['', r.apiVersion];
  const mod = (await import(
    group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`
  )) as Record<string, Validatable | undefined>;
  const cls = mod[r.kind];
  assert.ok(cls, `${r.apiVersion} ${r.kind}: no such kind`);
  return cls;
}

function tracked(value: unknown, path: string, seen: Set<string>): unknown {
  if (typeof value !== 'object' || value === null) return value;
  return new Proxy(value, {
    get(target, key) {
      const child = Reflect.get(target, key);
      if (typeof key !== 'string') return child;
      seen.add(`${path}/${key}`);
      return tracked(child, `${path}/${key}`, seen);
    },
  });
}

function unread(value: unknown, path: string, seen: Set<string>, out: string[]): string[] {
  if (typeof value !== 'object' || value === null) return out;
  for (const [key, child] of Object.entries(value)) {
    const p = `${path}/${key}`;
    if (!seen.has(p)) out.push(p);
    unread(child, p, seen, out);
  }
  return out;
}

async function schemaProblems(r: Resource): Promise<string[]> {
  const cls = await modelClass(r);
  const seen = new Set<string>();
  try {
    cls.prototype.validate.call(tracked(r, '', seen));
  } catch (err) {
    return [(err as Error).message];
  }
  return unread(r, '', seen, []).map((p) => `${p}: unknown field`);
}

// ---------------------------------------------------------------------------
// Helpers over rendered objects.

const id = (r: Resource) => `${r.kind}/${r.metadata.name}`;

function podSpec(r: Resource): IPodSpec | undefined {
  const spec = r.spec as Obj | undefined;
  if (!spec) return undefined;
  if (r.kind === 'Pod') return spec as unknown as IPodSpec;
  const template = spec.template as { spec?: IPodSpec } | undefined;
  return template?.spec;
}

interface Workload {
  resource: Resource;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  spec: IPodSpec;
}

function workloads(rs: Resource[]): Workload[] {
  return rs.flatMap((r) => {
    const spec = podSpec(r);
    if (!spec || r.kind === 'Pod') return [];
    const meta = ((r.spec as Obj).template as { metadata?: Meta }).metadata;
    return [{ resource: r, labels: meta?.labels ?? {}, annotations: meta?.annotations ?? {}, spec }];
  });
}

interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

function selects(
  sel: Selector | Record<string, string> | undefined,
  labels: Record<string, string>,
): boolean {
  if (!sel) return false;
  const s: Selector =
    'matchLabels' in sel || 'matchExpressions' in sel
      ? (sel as Selector)
      : { matchLabels: sel as Record<string, string> };
  for (const [k, v] of Object.entries(s.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of s.matchExpressions ?? []) {
    const has = e.key in labels;
    const value = labels[e.key] ?? '';
    if (e.operator === 'In' && !(has && e.values?.includes(value))) return false;
    if (e.operator === 'NotIn' && has && e.values?.includes(value)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** The llmmesh subcommand a container runs, if it runs llmmesh. */
function llmmeshCommand(c: IContainer): CommandSpec | undefined {
  if (!/\/llmmesh-(router|sidecar)[:@]/.test(c.image ?? '')) return undefined;
  const name = c.args?.[0];
  const spec = [routerCommand, sidecarCommand, simCommand].find((s) => s.name === name);
  assert.ok(spec, `${c.name}: runs llmmesh "${name}", not router, sidecar or sim`);
  return spec;
}

/** Option values as the command will see them: flags > environment > defaults. */
function effectiveOptions(c: IContainer, spec: CommandSpec): Record<string, string | boolean | undefined> {
  const env: NodeJS.ProcessEnv = {};
  for (const e of c.env ?? []) env[e.name] = e.value ?? (e.valueFrom ? '<from a secret>' : '');
  return parseOptions(spec, (c.args ?? []).slice(1), env).values;
}

function portOf(address: unknown): number {
  return parseHostPort(String(address)).port;
}

function containerPorts(spec: IPodSpec): Map<number | string, number> {
  const ports = new Map<number | string, number>();
  for (const c of containersOf(spec)) {
    for (const p of c.ports ?? []) {
      ports.set(p.containerPort, p.containerPort);
      if (p.name) ports.set(p.name, p.containerPort);
    }
  }
  return ports;
}

function probes(c: IContainer): Array<[string, IProbe]> {
  return (['startupProbe', 'readinessProbe', 'livenessProbe'] as const).flatMap((k) => {
    const p = c[k];
    return p ? [[k, p] as [string, IProbe]] : [];
  });
}

/** Metric names a registry factory registers (gauges are collected from a stub source). */
async function registeredMetrics(
  modulePath: string,
  factory: string,
  ...args: unknown[]
): Promise<Set<string>> {
  const mod = (await import(modulePath)) as Record<string, unknown>;
  const create = mod[factory] as (...a: unknown[]) => {
    registry: { getMetricsAsJSON(): Promise<Array<{ name: string }>> };
  };
  assert.equal(typeof create, 'function', `${modulePath} no longer exports ${factory}`);
  const metrics = await create(...args).registry.getMetricsAsJSON();
  return new Set(metrics.map((m) => m.name));
}

const stubSource = new Proxy({}, { get: () => () => 0 });

/** Metric names in a PromQL expression or adapter rule. */
/** Metrics the router's canary analysis adds to the router's registry. */
async function canaryMetricNames(): Promise<string[]> {
  const { createRouterMetrics } = await import('../router/metrics.js');
  const { createCanary } = await import('../router/canary/controller.js');
  const { validateRouterConfig } = await import('../router/config/load.js');
  const { EventEmitter } = await import('node:events');
  const metrics = createRouterMetrics();
  const canary = createCanary(validateRouterConfig({ models: { m: { versions: { v: { weight: 1 } } } } }), {
    metrics,
    log: silentLogger,
    now: Date.now,
    events: new EventEmitter(),
    replicaId: 'r',
    timer: false,
  });
  await canary.close();
  return (await metrics.registry.getMetricsAsJSON()).map((m) => m.name);
}

function metricNamesIn(text: string): string[] {
  return [...text.matchAll(/\b(llm_[a-z0-9_]+)/g)].map((m) =>
    (m[1] as string).replace(/_(bucket|sum|count)$/, ''),
  );
}

function runCli(args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'llmmesh.js'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, LLMMESH_CONFIG: '', LLMMESH_LISTEN: '', LLMMESH_ADMIN: '', LLMMESH_ENDPOINTS: '' },
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

// ---------------------------------------------------------------------------

const rendered = new Map<string, Resource[]>();
let routerMetricNames = new Set<string>();
let sidecarMetricNames = new Set<string>();

before(async () => {
  for (const o of OVERLAYS) rendered.set(o, build(join(K8S, o)));
  routerMetricNames = await registeredMetrics('../router/metrics.js', 'createRouterMetrics');
  // The canary analysis registers its metrics on the router's registry too.
  for (const n of await canaryMetricNames()) routerMetricNames.add(n);
  sidecarMetricNames = await registeredMetrics(
    '../sidecar/metrics.js',
    'createSidecarMetrics',
    { model: 'm', model_version: 'v' },
    stubSource,
  );
});

function overlay(o: string): Resource[] {
  const rs = rendered.get(o);
  assert.ok(rs, `${o} not rendered`);
  return rs;
}

function byKind<T = Obj>(rs: Resource[], kind: string): Array<Resource & { spec: T }> {
  return rs.filter((r) => r.kind === kind) as Array<Resource & { spec: T }>;
}

function component(w: Workload): string | undefined {
  return w.labels['app.kubernetes.io/component'];
}

function routerWorkload(rs: Resource[]): { w: Workload; c: IContainer } {
  const ws = workloads(rs).filter((w) => component(w) === 'router');
  assert.equal(ws.length, 1, 'one router Deployment');
  const w = ws[0] as Workload;
  const c = w.spec.containers.find((x) => x.name === 'router');
  assert.ok(c, 'router container');
  return { w, c };
}

function engineWorkloads(rs: Resource[]): Array<{ w: Workload; sidecar: IContainer; engine: IContainer }> {
  return workloads(rs)
    .filter((w) => component(w) === 'engine')
    .map((w) => {
      const sidecar = w.spec.initContainers?.find((c) => c.name === 'sidecar');
      const engine = w.spec.containers.find((c) => c.name === 'vllm');
      assert.ok(sidecar && engine, `${id(w.resource)}: sidecar and vllm containers`);
      return { w, sidecar, engine };
    });
}

describe('deploy/kubernetes kustomizations', () => {
  it('every kustomization and component renders, and only from files that exist', () => {
    for (const dir of ['base', ...OVERLAYS]) assert.ok(build(join(K8S, dir)).length > 0, dir);
    // Components alone (onto the base) too, so each stays usable by itself.
    for (const c of ['redis', 'jaeger', 'otel-collector', 'simulated-engines', 'tls']) {
      assert.ok(build(join(K8S, 'components', c), build(join(K8S, 'base'))).length > 0, c);
    }
  });

  it('renders no duplicate objects, and puts every namespaced object in the llm namespace', () => {
    for (const o of OVERLAYS) {
      const ids = overlay(o).map(id);
      assert.deepEqual(
        ids.filter((x, i) => ids.indexOf(x) !== i),
        [],
        `${o}: duplicates`,
      );
      for (const r of overlay(o)) {
        if (CLUSTER_SCOPED.has(r.kind)) continue;
        assert.equal(r.metadata.namespace, NAMESPACE, `${o}: ${id(r)}`);
      }
      const ns = overlay(o).find((r) => r.kind === 'Namespace');
      assert.equal(ns?.metadata.name, NAMESPACE, `${o}: the Namespace object`);
    }
  });

  it('every object validates against the Kubernetes schemas, with no unknown fields', async () => {
    for (const o of OVERLAYS) {
      for (const r of overlay(o)) assert.deepEqual(await schemaProblems(r), [], `${o}: ${id(r)}`);
    }
    // Components no overlay uses are checked on top of the base.
    const readme = readFileSync(join(ROOT, 'deploy', 'README.md'), 'utf8');
    for (const c of ['tls']) {
      for (const r of build(join(K8S, 'components', c), build(join(K8S, 'base')))) {
        assert.deepEqual(await schemaProblems(r), [], `base + ${c}: ${id(r)}`);
        for (const v of podSpec(r)?.volumes ?? []) {
          if (v.secret)
            assert.ok(readme.includes(v.secret.secretName ?? '?'), `README: Secret ${v.secret.secretName}`);
        }
      }
    }
  });

  it('the schema check itself rejects wrong types and unknown fields', async () => {
    const bad = structuredClone(routerWorkload(overlay('overlays/prod')).w.resource);
    const spec = podSpec(bad) as IPodSpec;
    (spec.containers[0] as unknown as Obj).portz = [];
    (spec as unknown as Obj).terminationGracePeriodSeconds = 'long';
    const problems = await schemaProblems(bad);
    assert.ok(
      problems.some((p) => /terminationGracePeriodSeconds/.test(p)),
      problems.join('\n'),
    );
    assert.equal((await schemaProblems({ ...bad, spec: {} } as Resource)).length > 0, true);
    const onlyUnknown = structuredClone(routerWorkload(overlay('overlays/prod')).w.resource);
    ((podSpec(onlyUnknown) as IPodSpec).containers[0] as unknown as Obj).portz = [];
    assert.deepEqual(await schemaProblems(onlyUnknown), [
      '/spec/template/spec/containers/0/portz: unknown field',
    ]);
  });
});

describe('deploy/kubernetes against the llmmesh code', () => {
  it("the routes ConfigMap passes `llmmesh router --check`, and a broken one doesn't", () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmmesh-deploy-'));
    try {
      const texts = OVERLAYS.map((o) => {
        const cm = overlay(o).find((r) => r.kind === 'ConfigMap' && r.metadata.name === 'llmmesh-routes');
        const text = (cm?.data as Record<string, string> | undefined)?.['routes.yaml'];
        assert.ok(text, `${o}: llmmesh-routes has routes.yaml`);
        return text;
      });
      assert.equal(new Set(texts).size, 1, 'the overlays ship the same routes.yaml');
      const file = join(dir, 'routes.yaml');
      writeFileSync(file, texts[0] as string);
      const ok = runCli(['router', '--config', file, '--check']);
      assert.equal(ok.status, 0, ok.out);
      writeFileSync(file, (texts[0] as string).replace(/weight: 10\b/, 'weight: -1'));
      const bad = runCli(['router', '--config', file, '--check']);
      assert.equal(bad.status, 1, bad.out);
      assert.match(bad.out, /weight/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('every flag and LLMMESH_ variable given to llmmesh is one its command accepts', () => {
    const seen = new Set<string>();
    for (const o of OVERLAYS) {
      for (const w of workloads(overlay(o))) {
        for (const c of containersOf(w.spec)) {
          const spec = llmmeshCommand(c);
          if (!spec) continue;
          seen.add(spec.name);
          const where = `${o}: ${id(w.resource)} ${c.name}`;
          assert.equal(c.command, undefined, `${where}: must keep the image's entrypoint`);
          // Strict parsing: an unknown flag or a stray positional throws.
          assert.doesNotThrow(() => parseOptions(spec, (c.args ?? []).slice(1), {}), where);
          assert.deepEqual(parseOptions(spec, (c.args ?? []).slice(1), {}).positionals, [], where);
          const known = new Set(Object.values(spec.options).flatMap((x) => (x.env ? [x.env] : [])));
          for (const e of c.env ?? []) {
            if (e.name.startsWith('LLMMESH_')) {
              assert.ok(known.has(e.name), `${where}: ${e.name} is not an option of llmmesh ${spec.name}`);
            } else {
              assert.match(e.name, /^(OTEL_[A-Z_]+|NODE_OPTIONS)$/, `${where}: ${e.name}`);
            }
          }
          // Numbers are numbers.
          const values = effectiveOptions(c, spec);
          for (const [name, o2] of Object.entries(spec.options)) {
            if (/^(MS|N|BYTES)$/.test(o2.valueName ?? '') && typeof values[name] === 'string') {
              assert.ok(
                values[name] === 'auto' || Number.isFinite(Number(values[name])),
                `${where}: --${name}=${values[name]}`,
              );
            }
          }
        }
      }
    }
    assert.deepEqual(
      [...seen].sort(),
      ['router', 'sidecar', 'sim'],
      'router, sidecar and (dev) sim are checked',
    );
  });

  it("the router mounts the routes ConfigMap's directory where LLMMESH_CONFIG points", () => {
    for (const o of OVERLAYS) {
      const { w, c } = routerWorkload(overlay(o));
      const config = String(effectiveOptions(c, routerCommand).config);
      const mount = c.volumeMounts?.find((m) => m.mountPath === dirname(config));
      assert.ok(mount, `${o}: ${dirname(config)} is mounted`);
      assert.equal(mount.subPath, undefined, `${o}: no subPath (it would never see ConfigMap updates)`);
      const volume = w.spec.volumes?.find((v) => v.name === mount.name);
      const cm = overlay(o).find(
        (r) => r.kind === 'ConfigMap' && r.metadata.name === volume?.configMap?.name,
      );
      assert.ok(cm && basename(config) in (cm.data as Obj), `${o}: the ConfigMap holds ${basename(config)}`);
      assert.equal(volume?.configMap?.items, undefined, `${o}: the whole ConfigMap is projected`);
    }
  });

  it('router ports, probes and scrape annotations are what the router serves', () => {
    for (const o of OVERLAYS) {
      const { w, c } = routerWorkload(overlay(o));
      const values = effectiveOptions(c, routerCommand);
      const ports = containerPorts(w.spec);
      const grpcPort = portOf(values.listen);
      const adminPort = portOf(values.admin);
      assert.equal(ports.get('grpc'), grpcPort, `${o}: grpc port = LLMMESH_LISTEN`);
      assert.equal(ports.get('admin'), adminPort, `${o}: admin port = LLMMESH_ADMIN`);
      assert.equal(Number(w.annotations['prometheus.io/port']), adminPort, `${o}: scrape port`);
      assert.equal(w.annotations['prometheus.io/path'], '/metrics');
      assert.equal(c.readinessProbe?.grpc?.port, grpcPort);
      assert.equal(c.livenessProbe?.grpc?.port, grpcPort);
      assert.ok([INFERENCE_SERVICE, ''].includes(c.readinessProbe?.grpc?.service ?? ''), 'readiness service');
      assert.equal(c.livenessProbe?.grpc?.service ?? '', '', 'liveness on the whole server');
    }
  });

  it('sidecars are native sidecars whose ports and probes are what the sidecar serves', () => {
    for (const o of OVERLAYS) {
      for (const { w, sidecar, engine } of engineWorkloads(overlay(o))) {
        const where = `${o}: ${id(w.resource)}`;
        assert.equal(sidecar.restartPolicy, 'Always', `${where}: native sidecar`);
        const values = effectiveOptions(sidecar, sidecarCommand);
        const grpcPort = portOf(values.listen);
        const adminPort = portOf(values.admin);
        const own = new Map((sidecar.ports ?? []).map((p) => [p.name, p.containerPort]));
        assert.equal(own.get('grpc'), grpcPort, `${where}: grpc port = LLMMESH_LISTEN`);
        assert.equal(own.get('admin'), adminPort, `${where}: admin port = LLMMESH_ADMIN`);
        assert.equal(Number(w.annotations['prometheus.io/port']), adminPort, `${where}: scrape port`);
        for (const [kind, p] of probes(sidecar)) {
          assert.equal(p.grpc?.port, grpcPort, `${where}: sidecar ${kind}`);
          assert.ok(
            [ENGINE_SERVICE, ''].includes(p.grpc?.service ?? ''),
            `${where}: sidecar ${kind} service`,
          );
        }
        assert.equal(sidecar.readinessProbe?.grpc?.service, ENGINE_SERVICE, `${where}: ready = engine ready`);
        // The sidecar talks to the engine container over the pod's loopback.
        const engineUrl = new URL(String(values['engine-url']));
        assert.equal(engineUrl.hostname, '127.0.0.1');
        const enginePort = Number(engineUrl.port);
        assert.deepEqual(
          (engine.ports ?? []).map((p) => p.containerPort),
          [enginePort],
          `${where}: engine port = the sidecar's --engine-url`,
        );
        assert.ok(engine.startupProbe, `${where}: startupProbe for model loading`);
        for (const [kind, p] of probes(engine)) {
          assert.equal(p.httpGet?.port, enginePort, `${where}: engine ${kind}`);
          assert.equal(p.httpGet?.path, '/health', `${where}: engine ${kind}`);
        }
      }
    }
  });

  it('engine containers are told the port, model name and batch size the sidecar expects', () => {
    const simSource = readFileSync(join(ROOT, 'sim', 'server.ts'), 'utf8');
    assert.match(simSource, /['"]\/health['"]/, 'the simulator serves /health');
    for (const o of OVERLAYS) {
      for (const { w, sidecar, engine } of engineWorkloads(overlay(o))) {
        const where = `${o}: ${id(w.resource)}`;
        const values = effectiveOptions(sidecar, sidecarCommand);
        const enginePort = Number(new URL(String(values['engine-url'])).port);
        const sim = llmmeshCommand(engine);
        // vLLM and `llmmesh sim` take the same flag names.
        const flags = sim
          ? effectiveOptions(engine, sim)
          : Object.fromEntries(
              (engine.args ?? []).map((a) => {
                const [k, v] = a.replace(/^--/, '').split('=');
                return [k, v ?? true];
              }),
            );
        assert.equal(Number(flags.port), enginePort, `${where}: engine --port`);
        assert.equal(flags.host, '0.0.0.0', `${where}: engine --host (kubelet probes come from the node)`);
        assert.equal(
          flags['served-model-name'],
          values.model,
          `${where}: --served-model-name = LLMMESH_MODEL`,
        );
        assert.equal(
          flags['max-num-seqs'],
          values['max-in-flight'],
          `${where}: --max-num-seqs = LLMMESH_MAX_IN_FLIGHT`,
        );
        assert.equal(w.labels['llmmesh.io/model'], values.model, `${where}: model label`);
        assert.equal(w.labels['llmmesh.io/version'], values.version, `${where}: version label`);
        assert.ok(
          ['on-demand', 'spot'].includes(w.labels['llmmesh.io/capacity-type'] ?? ''),
          `${where}: tier`,
        );
      }
      const engines = engineWorkloads(overlay(o));
      assert.ok(
        engines.some(({ w }) => w.labels['llmmesh.io/capacity-type'] === 'spot'),
        `${o}: a spot tier`,
      );
    }
  });

  it('routes.yaml discovers every sidecar through a headless Service, and every weighted version has pods', () => {
    for (const o of OVERLAYS) {
      const rs = overlay(o);
      const cm = rs.find((r) => r.kind === 'ConfigMap' && r.metadata.name === 'llmmesh-routes');
      const text = (cm?.data as Record<string, string> | undefined)?.['routes.yaml'];
      assert.ok(text, `${o}: routes.yaml`);
      const routes = parseYaml(text) as {
        discovery: { kind: string; name?: string; port?: number };
        models: Record<string, { versions: Record<string, { weight: number }> }>;
      };
      const engines = engineWorkloads(rs);
      const sidecarPorts = new Set(
        engines.map(({ sidecar }) => portOf(effectiveOptions(sidecar, sidecarCommand).listen)),
      );
      assert.equal(routes.discovery.kind, 'dns', `${o}: dns discovery`);
      const m = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local\.?$/.exec(routes.discovery.name ?? '');
      assert.ok(m, `${o}: discovery.name is a Service FQDN`);
      assert.equal(m[2], NAMESPACE);
      const svc = byKind<{
        clusterIP?: string;
        publishNotReadyAddresses?: boolean;
        selector: Record<string, string>;
        ports: Array<{ port: number; targetPort: number }>;
      }>(rs, 'Service').find((s) => s.metadata.name === m[1]);
      assert.ok(svc, `${o}: Service ${m[1]}`);
      assert.equal(svc.spec.clusterIP, 'None', `${o}: headless (one record per pod)`);
      assert.equal(svc.spec.publishNotReadyAddresses, true, `${o}: loading and draining pods stay visible`);
      assert.deepEqual([...sidecarPorts], [routes.discovery.port], `${o}: discovery.port = sidecar port`);
      assert.deepEqual(
        engines.filter(({ w }) => !selects(svc.spec.selector, w.labels)).map(({ w }) => id(w.resource)),
        [],
        `${o}: the Service selects every engine`,
      );
      const served = new Set(
        engines.map(({ sidecar }) => {
          const v = effectiveOptions(sidecar, sidecarCommand);
          return `${v.model}/${v.version}`;
        }),
      );
      for (const [model, mc] of Object.entries(routes.models)) {
        for (const [version, vc] of Object.entries(mc.versions)) {
          if (vc.weight > 0)
            assert.ok(served.has(`${model}/${version}`), `${o}: ${model} ${version} has pods`);
        }
      }
      for (const s of served) {
        const [model, version] = s.split('/') as [string, string];
        assert.ok(routes.models[model]?.versions[version], `${o}: pods of ${s} are in routes.yaml`);
      }
    }
  });

  it('every Service, PodDisruptionBudget, HPA and NetworkPolicy points at pods and ports that exist', () => {
    for (const o of OVERLAYS) {
      const rs = overlay(o);
      const ws = workloads(rs);
      for (const s of byKind<{
        selector?: Record<string, string>;
        ports: Array<{ targetPort?: number | string }>;
      }>(rs, 'Service')) {
        const pods = ws.filter((w) => selects(s.spec.selector, w.labels));
        assert.ok(pods.length > 0, `${o}: ${id(s)} selects no pods`);
        for (const p of s.spec.ports) {
          for (const w of pods) {
            assert.ok(
              containerPorts(w.spec).has(p.targetPort as string | number),
              `${o}: ${id(s)} → ${id(w.resource)}:${p.targetPort}`,
            );
          }
        }
      }
      const pdbOwners = new Map<string, string>();
      for (const pdb of byKind<{ selector: Selector }>(rs, 'PodDisruptionBudget')) {
        const pods = ws.filter((w) => selects(pdb.spec.selector, w.labels));
        assert.ok(pods.length > 0, `${o}: ${id(pdb)} selects no pods`);
        for (const w of pods) {
          assert.ok(!pdbOwners.has(id(w.resource)), `${o}: ${id(w.resource)} is under two PDBs`);
          pdbOwners.set(id(w.resource), id(pdb));
        }
      }
      const scaled = new Set<string>();
      for (const h of byKind<{ scaleTargetRef: { kind: string; name: string } }>(
        rs,
        'HorizontalPodAutoscaler',
      )) {
        const target = rs.find(
          (r) => r.kind === h.spec.scaleTargetRef.kind && r.metadata.name === h.spec.scaleTargetRef.name,
        );
        assert.ok(target, `${o}: ${id(h)} targets nothing`);
        assert.ok(!scaled.has(id(target)), `${o}: ${id(target)} has two HPAs`);
        scaled.add(id(target));
        // A `replicas` in the manifest would fight the HPA on every apply.
        assert.equal(
          (target.spec as Obj).replicas,
          undefined,
          `${o}: ${id(target)} leaves replicas to its HPA`,
        );
      }
      for (const w of ws) {
        const sel = (w.resource.spec as { selector: Selector }).selector;
        assert.ok(selects(sel, w.labels), `${o}: ${id(w.resource)} selector matches its template`);
        for (const other of ws) {
          if (other !== w)
            assert.ok(
              !selects(sel, other.labels),
              `${o}: ${id(w.resource)} selects ${id(other.resource)}'s pods`,
            );
        }
        const sa = w.spec.serviceAccountName;
        if (sa)
          assert.ok(
            rs.some((r) => r.kind === 'ServiceAccount' && r.metadata.name === sa),
            `${o}: ${sa}`,
          );
        for (const v of w.spec.volumes ?? []) {
          if (v.configMap)
            assert.ok(rs.some((r) => r.kind === 'ConfigMap' && r.metadata.name === v.configMap?.name));
          if (v.persistentVolumeClaim) {
            assert.ok(
              rs.some(
                (r) =>
                  r.kind === 'PersistentVolumeClaim' &&
                  r.metadata.name === v.persistentVolumeClaim?.claimName,
              ),
            );
          }
        }
        const volumeNames = new Set((w.spec.volumes ?? []).map((v) => v.name));
        for (const c of containersOf(w.spec)) {
          for (const m of c.volumeMounts ?? [])
            assert.ok(volumeNames.has(m.name), `${o}: ${id(w.resource)} mounts ${m.name}`);
        }
      }
      type Peer = { podSelector?: Selector; namespaceSelector?: Selector };
      for (const np of byKind<{
        podSelector: Selector;
        ingress?: Array<{ from?: Peer[]; ports?: Array<{ port: number }> }>;
      }>(rs, 'NetworkPolicy')) {
        const pods = ws.filter(
          (w) => selects(np.spec.podSelector, w.labels) || Object.keys(np.spec.podSelector).length === 0,
        );
        assert.ok(pods.length > 0, `${o}: ${id(np)} selects no pods`);
        for (const rule of np.spec.ingress ?? []) {
          for (const p of rule.ports ?? []) {
            for (const w of pods)
              assert.ok(
                containerPorts(w.spec).has(p.port),
                `${o}: ${id(np)} port ${p.port} on ${id(w.resource)}`,
              );
          }
          for (const peer of rule.from ?? []) {
            if (peer.podSelector && !peer.namespaceSelector) {
              assert.ok(
                ws.some((w) => selects(peer.podSelector, w.labels)),
                `${o}: ${id(np)} allows pods that do not exist`,
              );
            }
          }
        }
      }
    }
  });

  it('only routers reach the sidecars, and nothing reaches vLLM but its own sidecar', () => {
    for (const o of OVERLAYS) {
      const rs = overlay(o);
      const ws = workloads(rs);
      const nps = byKind<{
        podSelector: Selector;
        ingress?: Array<{
          from?: Array<{ podSelector?: Selector; namespaceSelector?: Selector }>;
          ports?: Array<{ port: number }>;
        }>;
      }>(rs, 'NetworkPolicy');
      assert.ok(
        nps.some((n) => Object.keys(n.spec.podSelector).length === 0 && !n.spec.ingress),
        `${o}: default deny`,
      );
      for (const { w, sidecar, engine } of engineWorkloads(rs)) {
        const grpcPort = portOf(effectiveOptions(sidecar, sidecarCommand).listen);
        const enginePort = engine.ports?.[0]?.containerPort;
        const rules = nps
          .filter((n) => selects(n.spec.podSelector, w.labels))
          .flatMap((n) => n.spec.ingress ?? []);
        for (const rule of rules) {
          const ports = (rule.ports ?? []).map((p) => p.port);
          assert.ok(ports.length > 0, `${o}: a rule opening every port of ${id(w.resource)}`);
          assert.ok(!ports.includes(enginePort as number), `${o}: vLLM's port is open to other pods`);
          if (ports.includes(grpcPort)) {
            for (const peer of rule.from ?? []) {
              assert.equal(peer.namespaceSelector, undefined, `${o}: sidecar gRPC open to a namespace`);
              const allowed = ws.filter((x) => selects(peer.podSelector, x.labels));
              assert.deepEqual(
                [...new Set(allowed.map(component))],
                ['router'],
                `${o}: only routers reach sidecars`,
              );
            }
          }
        }
      }
    }
  });

  it('HPAs and adapter rules use metrics the pods they scale really export', async () => {
    const adapter = parseYaml(readFileSync(join(K8S, 'prometheus-adapter', 'values.yaml'), 'utf8')) as {
      rules: { custom: Array<{ seriesQuery: string; metricsQuery: string; name: { as: string } }> };
    };
    const exposed = new Map(adapter.rules.custom.map((r) => [r.name.as, r]));
    for (const rule of adapter.rules.custom) {
      for (const n of [...metricNamesIn(rule.seriesQuery), ...metricNamesIn(rule.metricsQuery)]) {
        assert.ok(
          routerMetricNames.has(n) || sidecarMetricNames.has(n),
          `adapter rule uses ${n}, which nothing exports`,
        );
      }
      assert.match(rule.seriesQuery, /namespace!="",pod!=""/, `${rule.name.as}: per-pod series`);
    }
    for (const o of OVERLAYS) {
      const rs = overlay(o);
      for (const h of byKind<{
        scaleTargetRef: { name: string };
        metrics: Array<{ type: string; pods?: { metric: { name: string } } }>;
      }>(rs, 'HorizontalPodAutoscaler')) {
        const target = workloads(rs).find(
          (w) => w.resource.metadata.name === h.spec.scaleTargetRef.name,
        ) as Workload;
        const exported = component(target) === 'router' ? routerMetricNames : sidecarMetricNames;
        for (const m of h.spec.metrics) {
          if (m.type !== 'Pods') continue;
          const name = m.pods?.metric.name as string;
          assert.ok(exposed.has(name), `${o}: ${id(h)}: no adapter rule exposes ${name}`);
          assert.ok(exported.has(name), `${o}: ${id(h)}: ${component(target)} pods do not export ${name}`);
        }
      }
      const engineHpas = byKind<{ metrics: Array<{ pods?: { metric: { name: string } } }>; behavior: Obj }>(
        rs,
        'HorizontalPodAutoscaler',
      ).filter((h) => h.metadata.labels?.['app.kubernetes.io/component'] === 'engine');
      assert.equal(engineHpas.length, engineWorkloads(rs).length, `${o}: one HPA per engine Deployment`);
      for (const h of engineHpas) {
        assert.deepEqual(
          h.spec.metrics.map((m) => m.pods?.metric.name),
          ['llm_queue_depth'],
        );
        const b = h.spec.behavior as {
          scaleUp: { stabilizationWindowSeconds: number };
          scaleDown: { stabilizationWindowSeconds: number };
        };
        assert.equal(b.scaleUp.stabilizationWindowSeconds, 0, `${o}: ${id(h)} scales up at once`);
        assert.ok(b.scaleDown.stabilizationWindowSeconds >= 300, `${o}: ${id(h)} scales down after minutes`);
      }
    }
  });

  it('the PromQL in deploy/README.md uses metrics llmmesh exports', () => {
    const readme = readFileSync(join(ROOT, 'deploy', 'README.md'), 'utf8');
    const names = metricNamesIn(readme);
    assert.ok(names.includes('llm_route_weight') && names.includes('llm_router_version_choices_total'));
    for (const n of names) {
      assert.ok(
        routerMetricNames.has(n) || sidecarMetricNames.has(n),
        `deploy/README.md: ${n} is not exported`,
      );
    }
  });

  it('pods run as non-root without privileges, and secrets are referenced, never inlined', () => {
    const readme = readFileSync(join(ROOT, 'deploy', 'README.md'), 'utf8');
    for (const o of OVERLAYS) {
      const rs = overlay(o);
      assert.deepEqual(
        rs.filter((r) => r.kind === 'Secret').map(id),
        [],
        `${o}: Secret objects carry values`,
      );
      for (const w of workloads(rs)) {
        const where = `${o}: ${id(w.resource)}`;
        const pod = w.spec.securityContext;
        assert.equal(pod?.runAsNonRoot, true, `${where}: runAsNonRoot`);
        assert.ok((pod?.runAsUser ?? 0) > 0, `${where}: runAsUser`);
        assert.equal(pod?.seccompProfile?.type, 'RuntimeDefault', `${where}: seccomp`);
        assert.equal(w.spec.automountServiceAccountToken, false, `${where}: no API token`);
        for (const k of ['hostNetwork', 'hostPID', 'hostIPC'] as const)
          assert.ok(!w.spec[k], `${where}: ${k}`);
        for (const c of containersOf(w.spec)) {
          const sc = c.securityContext;
          assert.equal(sc?.allowPrivilegeEscalation, false, `${where} ${c.name}: allowPrivilegeEscalation`);
          assert.deepEqual(sc?.capabilities?.drop, ['ALL'], `${where} ${c.name}: capabilities`);
          assert.ok(!sc?.privileged, `${where} ${c.name}: privileged`);
          assert.ok(c.resources?.requests && c.resources.limits, `${where} ${c.name}: requests and limits`);
          // Pinned, pullable images: a registry path and a tag (the overlays' `images` ran).
          assert.match(c.image ?? '', /^[a-z0-9.-]+(\/[a-z0-9._-]+)+:[\w.-]+$/, `${where} ${c.name}: image`);
          assert.ok(!c.image?.endsWith(':latest'), `${where} ${c.name}: a pinned tag`);
          for (const e of c.env ?? []) {
            if (/KEY|TOKEN|PASSWORD|SECRET/.test(e.name)) {
              assert.equal(e.value, undefined, `${where} ${c.name}: ${e.name} inlined`);
              const ref = e.valueFrom?.secretKeyRef?.name;
              assert.ok(ref, `${where} ${c.name}: ${e.name} not from a Secret`);
              assert.ok(readme.includes(ref), `deploy/README.md does not say how to create Secret ${ref}`);
            }
          }
        }
        for (const v of w.spec.volumes ?? []) {
          if (v.secret)
            assert.ok(readme.includes(v.secret.secretName ?? '?'), `README: Secret ${v.secret.secretName}`);
        }
      }
      const ns = rs.find((r) => r.kind === 'Namespace');
      assert.equal(ns?.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
      const quota = byKind<{ hard: Record<string, string> }>(rs, 'ResourceQuota');
      assert.ok(
        quota.some((q) => 'requests.nvidia.com/gpu' in q.spec.hard),
        `${o}: GPU quota`,
      );
    }
  });

  it('termination grace covers the drain of streams', () => {
    for (const o of OVERLAYS) {
      const { w, c } = routerWorkload(overlay(o));
      const grace = Number(effectiveOptions(c, routerCommand)['shutdown-grace-ms']) / 1000;
      const preStop = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
      assert.ok(preStop >= 5, `${o}: router preStop lets endpoint removal propagate`);
      assert.ok(
        (w.spec.terminationGracePeriodSeconds ?? 30) >= preStop + grace + 5,
        `${o}: router terminationGracePeriodSeconds >= preStop + shutdown grace + 5 s`,
      );
      for (const { w: e, sidecar, engine } of engineWorkloads(overlay(o))) {
        const drain = Number(effectiveOptions(sidecar, sidecarCommand)['drain-grace-ms']) / 1000;
        const where = `${o}: ${id(e.resource)}`;
        assert.ok(
          (e.spec.terminationGracePeriodSeconds ?? 30) >= drain + 5,
          `${where}: grace >= drain + 5 s`,
        );
        // vLLM's preStop signals the sidecar: same process namespace and user.
        assert.equal(e.spec.shareProcessNamespace, true, `${where}: shareProcessNamespace`);
        assert.ok(engine.lifecycle?.preStop?.exec?.command, `${where}: engine preStop drains the sidecar`);
        const uid = (c2: IContainer) => c2.securityContext?.runAsUser ?? e.spec.securityContext?.runAsUser;
        assert.equal(uid(sidecar), uid(engine), `${where}: sidecar and engine run as one user`);
      }
    }
  });

  it('prod is highly available: routers >= 2, spread, disruption-budgeted; dev is one replica', () => {
    const prod = overlay('overlays/prod');
    const hpa = byKind<{ minReplicas: number; maxReplicas: number; scaleTargetRef: { name: string } }>(
      prod,
      'HorizontalPodAutoscaler',
    ).find((h) => h.spec.scaleTargetRef.name === 'llmmesh-router');
    assert.ok(hpa && hpa.spec.minReplicas >= 2, 'prod routers >= 2');
    const { w } = routerWorkload(prod);
    assert.ok(
      w.spec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.length,
      'anti-affinity',
    );
    const pdb = byKind<{ minAvailable?: number }>(prod, 'PodDisruptionBudget').find(
      (p) => p.metadata.name === 'llmmesh-router',
    );
    assert.ok(
      pdb?.spec.minAvailable !== undefined && pdb.spec.minAvailable < hpa.spec.minReplicas,
      'PDB leaves room to drain',
    );
    for (const h of byKind<{ maxReplicas: number }>(overlay('overlays/dev'), 'HorizontalPodAutoscaler')) {
      assert.equal(h.spec.maxReplicas, 1, `dev: ${id(h)}`);
    }
  });
});

describe('the engine preStop hook', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llmmesh-prestop-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  // Runs the hook from the manifest in a PID namespace of its own (so it can
  // only see, and signal, the processes this test starts there) beside a
  // stand-in sidecar and an unrelated process.
  it('sends the sidecar SIGTERM, waits for it to exit, and touches nothing else', () => {
    const probe = spawnSync('unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', 'true']);
    assert.equal(
      probe.status,
      0,
      `this test runs the hook in a PID namespace of its own: it needs unshare --pid (root or user namespaces): ${probe.stderr}`,
    );
    const engine = engineWorkloads(overlay('overlays/prod'))[0]?.engine;
    const command = engine?.lifecycle?.preStop?.exec?.command ?? [];
    assert.deepEqual(command.slice(0, 2), ['/bin/sh', '-c']);
    const fake = join(dir, 'app', 'bin', 'llmmesh.js');
    spawnSync('mkdir', ['-p', dirname(fake)]);
    writeFileSync(
      fake,
      `const fs = require('node:fs');
       process.on('SIGTERM', () => { fs.writeFileSync(${JSON.stringify(join(dir, 'terminated'))}, ''); setTimeout(() => process.exit(0), 300); });
       fs.writeFileSync(${JSON.stringify(join(dir, 'started'))}, '');
       setInterval(() => {}, 1000);`,
    );
    // Started from a file, so that no other command line in the namespace
    // (this script's included) spells out the sidecar's.
    writeFileSync(join(dir, 'sidecar.sh'), `exec node ${fake} sidecar --listen 0.0.0.0:7001\n`);
    const script = [
      `sh ${join(dir, 'sidecar.sh')} &`,
      'sleep 30 & other=$!',
      `while [ ! -f ${join(dir, 'started')} ]; do sleep 0.05; done`,
      'sh -c "$HOOK"',
      `[ -f ${join(dir, 'terminated')} ] && echo sidecar-terminated`,
      `for d in /proc/[0-9]*; do tr '\\0' ' ' < $d/cmdline 2>/dev/null | grep -q 'bin/llmmesh[.]js sidecar' && echo sidecar-still-running; done`,
      'kill -0 $other && echo other-alive',
    ].join('\n');
    // --kill-child: if the hook hangs, the timeout kills the whole namespace.
    const r = spawnSync('unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', 'sh', '-c', script], {
      encoding: 'utf8',
      timeout: 20_000,
      killSignal: 'SIGKILL',
      env: { ...process.env, HOOK: command[2] },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['sidecar-terminated', 'other-alive']);
  });
});
