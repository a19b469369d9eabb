/**
 * `llmmesh sim` as users and the local mesh start it: vLLM-named flags and
 * their LLMMESH_SIM_... variables become simulator options, the mesh file's
 * `sim:` settings become those flags, and a real process serves, lists its
 * presets, and really exits mid-stream on an injected crash.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { simArgsFromMesh, simConfigFromArgs } from '../cli/commands/sim.js';
import { UsageError } from '../cli/options.js';
import { runCommand, runToEnd } from './helpers/processes.js';

describe('llmmesh sim: flags', () => {
  it('defaults to the 8B preset with its fitted step model', () => {
    const { port, host, options } = simConfigFromArgs([], {});
    assert.deepEqual([port, host], [8000, '127.0.0.1']);
    assert.equal(options.preset, 'llama-3.1-8b-h100');
    assert.equal(options.servedModelName, 'llama-3-8b-chat');
    assert.equal(options.maxModelLen, undefined, "the model's own context length");
    assert.equal(options.timeScale, 1);
    assert.equal(options.loadDelayMs, 0);
    for (const fixed of ['interTokenLatencyMs', 'timeToFirstTokenMs', 'maxNumSeqs'] as const) {
      assert.equal(options[fixed], undefined, `${fixed} comes from the preset`);
    }
    assert.deepEqual(options.faults, {});
    assert.equal(options.serverInfo, undefined, 'no /server_info, as vLLM');
    assert.equal(
      simConfigFromArgs([], { VLLM_SERVER_DEV_MODE: '1' }).options.serverInfo,
      true,
      'as vLLM in dev mode',
    );
  });

  it('maps every vLLM-named flag, and each has an environment variable', () => {
    const flags = [
      '--port=0',
      '--preset=llama-3.1-70b-4xh100',
      '--served-model-name=big',
      '--max-model-len=32768',
      '--max-num-seqs=64',
      '--max-num-batched-tokens=2048',
      '--block-size=32',
      '--num-gpu-blocks-override=5000',
      '--no-enable-prefix-caching',
      '--load-delay-ms=preset',
      '--time-scale=0.5',
      '--fault-error-rate=0.2',
      '--fault-error-status=429',
      '--fault-stall-after-tokens=7',
      '--fault-crash-after-tokens=9',
      '--fault-slow-factor=2',
      '--fault-health-status=503',
    ];
    const env = Object.fromEntries(
      flags.map((f) => {
        const [name, value = 'true'] = f.slice(2).split('=');
        return [`LLMMESH_SIM_${name!.toUpperCase().replace(/-/g, '_')}`, value];
      }),
    );
    const fromFlags = simConfigFromArgs(flags, {});
    const fromEnv = simConfigFromArgs([], env);
    for (const config of [fromFlags, fromEnv]) {
      const { onCrash, ...options } = config.options;
      assert.equal(typeof onCrash, 'function');
      assert.equal(config.port, 0);
      assert.deepEqual(options, {
        servedModelName: 'big',
        preset: 'llama-3.1-70b-4xh100',
        model: undefined,
        maxModelLen: 32768,
        maxNumSeqs: 64,
        maxNumBatchedTokens: 2048,
        blockSize: 32,
        numGpuBlocks: 5000,
        enablePrefixCaching: false,
        loadDelayMs: 'preset',
        interTokenLatencyMs: undefined,
        timeToFirstTokenMs: undefined,
        prefillTimePerTokenMs: undefined,
        timeScale: 0.5,
        faults: {
          errorRate: 0.2,
          errorStatus: 429,
          stallAfterTokens: 7,
          crashAfterTokens: 9,
          slowFactor: 2,
          healthStatus: 503,
        },
      });
    }
  });

  it('refuses bad values, naming the flag', () => {
    for (const [args, message] of [
      [['--preset', 'gpt-9'], /--preset must be one of llama-3\.1-8b-h100, llama-3\.1-70b-4xh100/],
      [['--fault-error-status', '418'], /--fault-error-status must be one of 429, 500, 503/],
      [['--fault-error-rate', '2'], /--fault-error-rate must be a number >= 0 and <= 1/],
      [['--max-num-seqs', '0'], /--max-num-seqs must be an integer >= 1/],
      [['--load-delay-ms', 'soon'], /--load-delay-ms must be a number/],
    ] as const) {
      assert.throws(
        () => simConfigFromArgs([...args], {}),
        (err: Error) => err instanceof UsageError && message.test(err.message),
      );
    }
  });

  it('turns a mesh file’s sim settings into the same flags', () => {
    const args = simArgsFromMesh({
      preset: 'llama-3.1-8b-h100',
      time_scale: 0.1,
      max_model_len: 4096,
      max_num_seqs: 128,
      load_delay_ms: 0,
      inter_token_latency_ms: 1,
      faults: { error_rate: 0.5, error_status: 503, slow_factor: 2 },
    });
    const { options } = simConfigFromArgs(args, {});
    assert.equal(options.preset, 'llama-3.1-8b-h100');
    assert.equal(options.timeScale, 0.1);
    assert.equal(options.maxModelLen, 4096);
    assert.equal(options.maxNumSeqs, 128);
    assert.equal(options.interTokenLatencyMs, 1);
    assert.equal(options.timeToFirstTokenMs, undefined);
    assert.deepEqual(options.faults, { errorRate: 0.5, errorStatus: 503, slowFactor: 2 });
  });
});

describe('llmmesh sim: the process', () => {
  it('lists the presets with their sources', async () => {
    const { code, stdout } = await runToEnd(['sim', '--list-presets']);
    assert.equal(code, 0);
    assert.match(stdout, /^llama-3\.1-8b-h100 \(default\): /m);
    assert.match(stdout, /^llama-3\.1-70b-4xh100: /m);
    assert.match(stdout, /blog\.vllm\.ai/);
  });

  it('serves, and exits with code 1 in the middle of a stream on an injected crash', async () => {
    const sim = runCommand(['sim', '--port', '0', '--time-scale', '0', '--fault-crash-after-tokens', '3']);
    try {
      await sim.waitForOutput(/serving on http:\/\/\S+ \(preset llama-3\.1-8b-h100\)/);
      const url = /serving on (http:\/\/\S+)/.exec(sim.stdout())![1]!;
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'hello', max_tokens: 50, stream: true }),
      });
      assert.equal(res.status, 200);
      let text = '';
      const read = (async () => {
        const decoder = new TextDecoder();
        for await (const chunk of res.body!) text += decoder.decode(chunk, { stream: true });
      })();
      await assert.rejects(read, 'the connection drops');
      assert.equal(text.split('\n\n').filter((e) => e.startsWith('data: {')).length, 3);
      assert.ok(!text.includes('[DONE]'));
      assert.equal(await sim.exit, 1);
      assert.match(sim.stderr(), /simulated crash after 3 tokens/);
    } finally {
      sim.proc.kill('SIGKILL');
    }
  });
});
