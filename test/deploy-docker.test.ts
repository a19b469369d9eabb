/**
 * deploy/docker without a Docker engine: the Dockerfile copies files that
 * exist and runs package scripts that exist, the images run the compiled CLI
 * as a non-root user with a health check, the compose file passes llmmesh
 * only flags and variables it accepts and wires sims, sidecars and router by
 * matching names and ports, and the health-check script gives the right
 * answer against real gRPC and HTTP servers.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { routerCommand } from '../cli/commands/router.js';
import { sidecarCommand } from '../cli/commands/sidecar.js';
import { simCommand } from '../cli/commands/sim.js';
import { type CommandSpec, parseOptions } from '../cli/options.js';
import { parseHostPort } from '../common/address.js';
import { type RunningGrpcServer, startGrpcServer } from '../common/grpc-server.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DOCKER = join(ROOT, 'deploy', 'docker');
const HEALTHCHECK = join(DOCKER, 'healthcheck.mjs');

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

/** Parses a Dockerfile into stages (line continuations joined, comments dropped). */
function parseDockerfile(text: string): { args: Instruction[]; stages: Stage[] } {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const args: Instruction[] = [];
  const stages: Stage[] = [];
  for (const line of lines) {
    const m = /^([A-Z]+)\s+(.*)$/.exec(line);
    assert.ok(m, `Dockerfile: cannot read "${line}"`);
    const ins = { op: m[1] as string, args: (m[2] as string).trim() };
    if (ins.op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      stages.push({ from: f?.[1] ?? '', name: f?.[2] ?? String(stages.length), instructions: [] });
    } else if (stages.length === 0) {
      assert.equal(ins.op, 'ARG', 'only ARG before the first FROM');
      args.push(ins);
    } else {
      stages[stages.length - 1]?.instructions.push(ins);
    }
  }
  return { args, stages };
}

const dockerfile = parseDockerfile(readFileSync(join(DOCKER, 'Dockerfile'), 'utf8'));
const stage = (name: string): Stage => {
  const s = dockerfile.stages.find((x) => x.name === name);
  assert.ok(s, `Dockerfile: no stage ${name}`);
  return s;
};

/** Instructions of a stage including those of the stages it is built FROM. */
function inherited(name: string): Instruction[] {
  const s = stage(name);
  const parent = dockerfile.stages.find((x) => x.name === s.from);
  return [...(parent ? inherited(parent.name) : []), ...s.instructions];
}

function last(ins: Instruction[], op: string): Instruction | undefined {
  return ins.filter((i) => i.op === op).at(-1);
}

function execForm(i: Instruction | undefined): string[] {
  assert.ok(i, 'missing instruction');
  const json = i.args.replace(/^(--\S+\s+)*CMD\s+/, '');
  const parsed = JSON.parse(json) as unknown;
  assert.ok(Array.isArray(parsed), `${i.op} in exec form (JSON array): ${i.args}`);
  return parsed as string[];
}

/** COPY sources from the build context (not --from=stage). */
function contextCopies(s: Stage): Array<{ sources: string[]; dest: string }> {
  return s.instructions
    .filter((i) => i.op === 'COPY' && !/--from=/.test(i.args))
    .map((i) => {
      const parts = i.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      return { sources: parts.slice(0, -1), dest: parts.at(-1) as string };
    });
}

const COMMANDS: CommandSpec[] = [routerCommand, sidecarCommand, simCommand];

function checkLlmmeshInvocation(where: string, argv: string[], env: Record<string, string>): CommandSpec {
  const spec = COMMANDS.find((c) => c.name === argv[0]);
  assert.ok(spec, `${where}: "${argv[0]}" is not router, sidecar or sim`);
  const parsed = parseOptions(spec, argv.slice(1), {});
  assert.deepEqual(parsed.positionals, [], `${where}: stray arguments`);
  const known = new Set(Object.values(spec.options).flatMap((o) => (o.env ? [o.env] : [])));
  for (const name of Object.keys(env)) {
    if (name.startsWith('LLMMESH_'))
      assert.ok(known.has(name), `${where}: ${name} is not an option of ${spec.name}`);
    else assert.match(name, /^OTEL_[A-Z_]+$/, `${where}: ${name}`);
  }
  return spec;
}

describe('deploy/docker/Dockerfile', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  const tsconfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as {
    compilerOptions: { outDir: string; rootDir: string };
  };
  // What `npm run build` compiles: the shipped code, no tests.
  const buildConfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as {
    extends: string;
    include: string[];
    exclude: string[];
  };

  it('has build, deps, runtime, sidecar and router stages; router is the default', () => {
    assert.deepEqual(
      dockerfile.stages.map((s) => s.name),
      ['build', 'deps', 'runtime', 'sidecar', 'router'],
    );
    assert.equal(stage('sidecar').from, 'runtime');
    assert.equal(stage('router').from, 'runtime');
  });

  it('runs only npm scripts that exist, installs production dependencies with npm ci --omit=dev', () => {
    for (const s of dockerfile.stages) {
      for (const i of s.instructions.filter((x) => x.op === 'RUN')) {
        for (const m of i.args.matchAll(/npm run (\S+)/g)) {
          assert.ok(pkg.scripts[m[1] as string], `${s.name}: npm run ${m[1]}: no such script`);
        }
        assert.doesNotMatch(i.args, /npm install\b/, `${s.name}: npm ci, not npm install`);
      }
    }
    assert.ok(
      stage('deps').instructions.some((i) => /npm ci --omit=dev/.test(i.args)),
      'deps: npm ci --omit=dev',
    );
    assert.ok(
      stage('build').instructions.some((i) => /npm run build/.test(i.args)),
      'build: npm run build',
    );
    assert.equal(pkg.scripts.build, 'tsc -p tsconfig.build.json', 'the build script compiles with tsc');
  });

  it('copies files that exist, every directory the build compiles, and what the runtime needs', () => {
    for (const s of dockerfile.stages) {
      for (const c of contextCopies(s)) {
        for (const src of c.sources)
          assert.ok(existsSync(join(ROOT, src)), `${s.name}: COPY ${src}: not in the repo`);
      }
    }
    const built = new Set(contextCopies(stage('build')).flatMap((c) => c.sources));
    for (const dir of buildConfig.include)
      assert.ok(built.has(dir), `build: COPY ${dir} (tsconfig.build.json include)`);
    assert.ok(!buildConfig.include.includes('test') && !built.has('test'), 'the image compiles no tests');
    assert.ok(buildConfig.exclude.includes('**/*.spec.ts'), 'nor unit specs');
    assert.equal(buildConfig.extends, './tsconfig.json');
    assert.ok(
      built.has('tsconfig.json') && built.has('tsconfig.build.json') && built.has('package-lock.json'),
    );
    assert.equal(tsconfig.compilerOptions.outDir, 'dist');
    assert.equal(tsconfig.compilerOptions.rootDir, '.');
    const runtime = stage('runtime');
    const copied = new Set(contextCopies(runtime).flatMap((c) => c.sources));
    for (const need of [
      'package.json',
      'package-lock.json',
      'proto',
      'bin',
      'deploy/docker/healthcheck.mjs',
    ]) {
      assert.ok(copied.has(need), `runtime: COPY ${need}`);
    }
    const fromStages = runtime.instructions
      .filter((i) => i.op === 'COPY' && /--from=/.test(i.args))
      .map((i) => i.args);
    assert.ok(
      fromStages.some((a) => /--from=build \/src\/dist \.\/dist/.test(a)),
      'runtime: dist/ from build',
    );
    assert.ok(
      fromStages.some((a) => /--from=deps \/app\/node_modules/.test(a)),
      'runtime: node_modules from deps',
    );
    // No TypeScript sources in the image: bin/llmmesh.js then runs dist/.
    for (const src of copied)
      assert.ok(!/\.ts$/.test(src) && !['cli', 'common', 'router'].includes(src), src);
    const bin = readFileSync(join(ROOT, 'bin', 'llmmesh.js'), 'utf8');
    assert.match(bin, /'dist', 'cli', 'main\.js'/, 'bin/llmmesh.js runs dist/cli/main.js');
    assert.ok(existsSync(join(ROOT, 'cli', 'main.ts')), 'cli/main.ts compiles to dist/cli/main.js');
  });

  it('runs the CLI as a numeric non-root user, with a health check and a command llmmesh has', () => {
    const entry = execForm(last(stage('runtime').instructions, 'ENTRYPOINT'));
    assert.deepEqual(entry, ['node', '/app/bin/llmmesh.js']);
    assert.equal(last(stage('runtime').instructions, 'WORKDIR')?.args, '/app');
    for (const target of ['router', 'sidecar']) {
      const ins = inherited(target);
      const user = last(ins, 'USER')?.args ?? '0';
      assert.match(user, /^[1-9]\d*(:[1-9]\d*)?$/, `${target}: numeric non-root USER`);
      const cmd = execForm(last(ins, 'CMD'));
      assert.deepEqual(cmd, [target], `${target}: CMD`);
      checkLlmmeshInvocation(`${target} image`, cmd, {});
      const hc = last(ins, 'HEALTHCHECK');
      assert.ok(hc, `${target}: HEALTHCHECK`);
      const argv = execForm(hc);
      assert.deepEqual(
        argv.slice(0, 2),
        ['node', '/app/deploy/docker/healthcheck.mjs'],
        `${target}: health check`,
      );
      const port = parseHostPort(argv[argv.indexOf('--default-addr') + 1] as string).port;
      const listen = String(
        parseOptions(target === 'router' ? routerCommand : sidecarCommand, [], {}).values.listen ?? '',
      );
      if (target === 'sidecar')
        assert.equal(port, parseHostPort(listen).port, 'sidecar: checks its default listen port');
      const exposed = (last(ins, 'EXPOSE')?.args ?? '').split(/\s+/).map(Number);
      assert.ok(exposed.includes(port), `${target}: EXPOSEs the checked port`);
    }
  });

  it('keeps node_modules, dist and .git out of the build context', () => {
    const ignore = readFileSync(join(DOCKER, 'Dockerfile.dockerignore'), 'utf8').split('\n');
    for (const p of ['**/node_modules', 'dist', '.git']) assert.ok(ignore.includes(p), p);
  });
});

describe('deploy/docker/compose.yaml', () => {
  interface Service {
    image?: string;
    build?: { context: string; dockerfile: string; target: string };
    command?: string[];
    environment?: Record<string, string>;
    volumes?: string[];
    ports?: string[];
    depends_on?: string[];
    profiles?: string[];
    stop_grace_period?: string;
  }
  const compose = parseYaml(readFileSync(join(DOCKER, 'compose.yaml'), 'utf8'), { merge: true }) as {
    services: Record<string, Service>;
  };
  const services = compose.services;
  const llmmesh = Object.entries(services).filter(([, s]) => s.build);
  const invocation = (s: Service) => s.command ?? [s.build?.target as string];
  const env = (s: Service) =>
    Object.fromEntries(Object.entries(s.environment ?? {}).filter(([, v]) => v !== ''));

  it('builds from the repository with targets the Dockerfile has', () => {
    assert.ok(llmmesh.length >= 7);
    for (const [name, s] of llmmesh) {
      const b = s.build as NonNullable<Service['build']>;
      assert.equal(resolve(DOCKER, b.context), ROOT, `${name}: context is the repository root`);
      assert.ok(existsSync(join(ROOT, b.dockerfile)), `${name}: ${b.dockerfile}`);
      stage(b.target);
      assert.equal(s.image?.split(':')[0], `llmmesh-${b.target}`, `${name}: image named after its target`);
    }
  });

  it('passes llmmesh only flags and variables it accepts', () => {
    const seen = new Set<string>();
    for (const [name, s] of llmmesh) seen.add(checkLlmmeshInvocation(name, invocation(s), env(s)).name);
    assert.deepEqual([...seen].sort(), ['router', 'sidecar', 'sim']);
  });

  it('gives routers and sidecars time to drain their streams when stopped', () => {
    for (const [name, s] of llmmesh) {
      const spec = COMMANDS.find((c) => c.name === invocation(s)[0]) as CommandSpec;
      const option = { router: 'shutdown-grace-ms', sidecar: 'drain-grace-ms' }[
        spec.name as 'router' | 'sidecar'
      ];
      if (!option) continue;
      const graceMs = Number(parseOptions(spec, invocation(s).slice(1), env(s)).values[option]);
      const stop = /^(\d+)s$/.exec(s.stop_grace_period ?? '10s');
      assert.ok(stop && Number(stop[1]) * 1000 > graceMs, `${name}: stop_grace_period > --${option}`);
    }
  });

  it('wires sidecars to sims and the router to sidecars by name and port', () => {
    const of = (kind: string) => llmmesh.filter(([, s]) => invocation(s)[0] === kind);
    const simPort = new Map(
      of('sim').map(([n, s]) => [
        n,
        Number(parseOptions(simCommand, invocation(s).slice(1), env(s)).values.port),
      ]),
    );
    const sidecarPort = new Map<string, number>();
    const versions = new Set<string>();
    for (const [n, s] of of('sidecar')) {
      const v = parseOptions(sidecarCommand, [], env(s)).values;
      const url = new URL(String(v['engine-url']));
      assert.equal(simPort.get(url.hostname), Number(url.port), `${n}: engine ${url.host} is a sim service`);
      assert.ok(s.depends_on?.includes(url.hostname), `${n}: depends on ${url.hostname}`);
      sidecarPort.set(n, parseHostPort(String(v.listen)).port);
      versions.add(`${v.model}/${v.version}`);
      for (const sim of of('sim')) {
        const served = parseOptions(simCommand, invocation(sim[1]).slice(1), {}).values['served-model-name'];
        assert.equal(served, v.model, `${sim[0]} serves ${v.model}`);
      }
    }
    const [[, router]] = of('router') as [[string, Service]];
    const rv = parseOptions(routerCommand, [], env(router)).values;
    const endpoints = String(rv.endpoints).split(',');
    assert.deepEqual(
      endpoints.map((e) => parseHostPort(e)).map((e) => [e.host, e.port]),
      [...sidecarPort.entries()],
      'the router lists every sidecar at its port',
    );
    for (const p of router.ports ?? []) {
      const inside = Number(p.split(':').at(-1));
      assert.ok(
        [parseHostPort(String(rv.listen)).port, parseHostPort(String(rv.admin)).port].includes(inside),
        p,
      );
    }
    // The mounted routes directory holds the file the router is told to read.
    const [hostDir, containerDir] = (router.volumes?.[0] ?? '').split(':') as [string, string];
    assert.ok(statSync(resolve(DOCKER, hostDir)).isDirectory());
    assert.equal(dirname(String(rv.config)), containerDir);
    const routesFile = join(resolve(DOCKER, hostDir), String(rv.config).slice(containerDir.length + 1));
    const routes = parseYaml(readFileSync(routesFile, 'utf8')) as {
      models: Record<string, { versions: Record<string, unknown> }>;
    };
    for (const mv of versions) {
      const [m, v] = mv.split('/') as [string, string];
      assert.ok(routes.models[m]?.versions[v], `${mv} is routed`);
    }
    // And that file, with the router's environment, passes --check.
    const r = spawnSync(
      process.execPath,
      [join(ROOT, 'bin', 'llmmesh.js'), 'router', '--config', routesFile, '--check'],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, ...env(router), LLMMESH_CONFIG: routesFile },
      },
    );
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  });

  it('keeps Jaeger optional (a profile) and exports traces only when asked', () => {
    assert.deepEqual(services.jaeger?.profiles, ['tracing']);
    for (const [name, s] of llmmesh) {
      // Compose interpolation: the caller's value, else empty (tracing off).
      assert.equal(
        s.environment?.OTEL_EXPORTER_OTLP_ENDPOINT,
        ['$', '{OTEL_EXPORTER_OTLP_ENDPOINT:-}'].join(''),
        name,
      );
    }
  });
});

describe('deploy/docker/healthcheck.mjs', () => {
  let grpcServer: RunningGrpcServer;
  let httpServer: http.Server;
  let httpPort = 0;

  before(async () => {
    grpcServer = await startGrpcServer({ address: '127.0.0.1:0', services: [], reflect: [] });
    grpcServer.setHealth('', 'SERVING');
    grpcServer.setHealth('llmmesh.v1.Engine', 'NOT_SERVING');
    httpServer = http.createServer((req, res) => {
      res.writeHead(req.url === '/health' ? 200 : 503);
      res.end();
    });
    await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
    httpPort = (httpServer.address() as AddressInfo).port;
  });
  after(async () => {
    await grpcServer.shutdown(0);
    await new Promise((r) => httpServer.close(r));
  });

  // Asynchronous: the servers answering it live in this process.
  const check = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    new Promise<number>((done) => {
      const child = execFile(process.execPath, [HEALTHCHECK, ...args], {
        cwd: ROOT,
        timeout: 15_000,
        env: { PATH: process.env.PATH, ...env },
      });
      child.on('exit', (code) => done(code ?? -1));
    });

  it('is healthy when the gRPC server is SERVING, at --addr or at LLMMESH_LISTEN', async () => {
    assert.equal(await check(['--addr', `127.0.0.1:${grpcServer.port}`]), 0);
    assert.equal(await check([], { LLMMESH_LISTEN: `0.0.0.0:${grpcServer.port}` }), 0);
    assert.equal(await check(['--default-addr', `127.0.0.1:${grpcServer.port}`]), 0);
  });

  it('is unhealthy for a NOT_SERVING or unknown service, and for a closed port', async () => {
    const addr = `127.0.0.1:${grpcServer.port}`;
    assert.equal(await check(['--addr', addr, '--service', 'llmmesh.v1.Engine']), 1);
    assert.equal(await check(['--addr', addr, '--service', 'no.such.Service']), 1);
    assert.equal(await check(['--addr', '127.0.0.1:1']), 1);
  });

  it('checks HTTP endpoints with --http', async () => {
    assert.equal(await check(['--http', `http://127.0.0.1:${httpPort}/health`]), 0);
    assert.equal(await check(['--http', `http://127.0.0.1:${httpPort}/other`]), 1);
  });
});
