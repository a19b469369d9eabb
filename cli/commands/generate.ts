/** `llmmesh generate`: sends one request through the router and prints the answer. */
import { createInferenceClient, type GenerateInput } from '../../client/index.js';
import { MeshError } from '../../common/errors.js';
import { type CommandSpec, helpText, num, parseOptions, str, UsageError } from '../options.js';

export const generateCommand: CommandSpec = {
  name: 'generate',
  summary: 'Send one request to a router (or any llmmesh.v1.Inference server) and print the answer.',
  usage:
    'llmmesh generate --model NAME --prompt TEXT [--stream] [--version V] [--session KEY] [--target ADDR]',
  options: {
    model: {
      type: 'string',
      env: 'LLMMESH_MODEL',
      default: 'llama-3-8b-chat',
      valueName: 'NAME',
      description: 'Logical model name',
    },
    prompt: { type: 'string', valueName: 'TEXT', description: 'Prompt (completion API)' },
    chat: {
      type: 'string',
      valueName: 'TEXT',
      description: 'Send TEXT as one user chat message instead of a raw prompt',
    },
    system: { type: 'string', valueName: 'TEXT', description: 'System message (with --chat)' },
    stream: { type: 'boolean', description: 'Print tokens as they arrive' },
    version: { type: 'string', valueName: 'V', description: 'Pin a model version (bypasses canary weights)' },
    session: {
      type: 'string',
      valueName: 'KEY',
      description: 'Session key: same key, same version (and pod)',
    },
    'max-tokens': { type: 'string', valueName: 'N', description: 'Tokens to generate (engine default 16)' },
    temperature: { type: 'string', valueName: 'T', description: 'Sampling temperature' },
    seed: { type: 'string', valueName: 'N', description: 'Sampling seed' },
    target: {
      type: 'string',
      env: 'LLMMESH_TARGET',
      default: '127.0.0.1:50051',
      valueName: 'ADDR',
      description: 'Router address',
    },
    'timeout-ms': {
      type: 'string',
      env: 'LLMMESH_TIMEOUT_MS',
      default: '60000',
      valueName: 'MS',
      description: 'Deadline',
    },
    'api-key': {
      type: 'string',
      env: 'LLMMESH_API_KEY',
      valueName: 'KEY',
      description: 'Sent as authorization: Bearer KEY',
    },
    json: { type: 'boolean', description: 'Print the result as JSON' },
  },
};

/** Runs the command; returns the exit code. */
export async function runGenerate(argv: string[]): Promise<number> {
  const spec = generateCommand;
  const { values, positionals } = parseOptions(spec, argv);
  if (values.help) {
    process.stdout.write(helpText(spec));
    return 0;
  }
  const prompt = str(values, 'prompt', spec) ?? (positionals.length > 0 ? positionals.join(' ') : undefined);
  const chat = str(values, 'chat', spec);
  if (!prompt && !chat) throw new UsageError('generate: give --prompt TEXT or --chat TEXT');
  const input: GenerateInput = { model: str(values, 'model', spec, true) as string };
  if (chat) {
    const system = str(values, 'system', spec);
    input.messages = [
      ...(system ? [{ role: 'system', content: system }] : []),
      { role: 'user', content: chat },
    ];
  } else {
    input.prompt = prompt;
  }
  const maxTokens = num(values, 'max-tokens', spec, { min: 1, integer: true });
  const temperature = num(values, 'temperature', spec, { min: 0 });
  const seed = num(values, 'seed', spec, { integer: true });
  input.sampling = {};
  if (maxTokens !== undefined) input.sampling.maxTokens = maxTokens;
  if (temperature !== undefined) input.sampling.temperature = temperature;
  if (seed !== undefined) input.sampling.seed = seed;
  const version = str(values, 'version', spec);
  const session = str(values, 'session', spec);
  if (version || session) input.routing = { version: version ?? '', sessionKey: session ?? '' };

  const apiKey = str(values, 'api-key', spec);
  const target = str(values, 'target', spec, true) as string;
  const client = createInferenceClient(
    target,
    apiKey ? { metadata: { authorization: `Bearer ${apiKey}` } } : {},
  );
  const timeoutMs = num(values, 'timeout-ms', spec, { min: 1 });
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  const err = process.stderr;
  try {
    if (values.stream) {
      const call = client.generateStream(input, { timeoutMs, signal: controller.signal });
      let chunks = 0;
      let last:
        | {
            finishReason: string;
            usage: { promptTokens: number; completionTokens: number; cachedTokens: number } | null;
          }
        | undefined;
      let text = '';
      for await (const chunk of call) {
        chunks++;
        text += chunk.text;
        if (!values.json) process.stdout.write(chunk.text);
        if (chunk.finishReason !== 'FINISH_REASON_UNSPECIFIED') last = chunk;
      }
      const served = await call.servedBy;
      const traceId = await call.traceId;
      if (values.json) {
        process.stdout.write(
          `${JSON.stringify({ text, chunks, ...served, finishReason: last?.finishReason, usage: last?.usage, traceId })}\n`,
        );
      } else {
        process.stdout.write('\n');
        err.write(
          summary(
            served.version,
            served.endpoint,
            last?.finishReason,
            last?.usage ?? null,
            traceId,
            chunks,
            served.cache,
          ),
        );
      }
    } else {
      const r = await client.generate(input, { timeoutMs, signal: controller.signal });
      if (values.json) {
        process.stdout.write(`${JSON.stringify(r)}\n`);
      } else {
        process.stdout.write(`${r.text}\n`);
        err.write(
          summary(r.modelVersion, r.endpoint, r.finishReason, r.usage, r.traceId, undefined, r.cache),
        );
      }
    }
    return 0;
  } catch (e) {
    const m = MeshError.from(e);
    err.write(`\nllmmesh generate: ${m.codeName}: ${m.message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
    client.close();
  }
}

function summary(
  version: string,
  endpoint: string,
  finish: string | undefined,
  usage: { promptTokens: number; completionTokens: number; cachedTokens: number } | null,
  traceId: string,
  chunks?: number,
  cache?: string,
): string {
  const parts = [
    `version ${version || '?'}`,
    `endpoint ${endpoint || '?'}`,
    `finish ${(finish ?? '?').replace('FINISH_REASON_', '').toLowerCase()}`,
    usage
      ? `tokens prompt ${usage.promptTokens} / completion ${usage.completionTokens} / cached ${usage.cachedTokens}`
      : 'no usage',
  ];
  if (chunks !== undefined) parts.push(`${chunks} chunks`);
  if (cache) parts.push(`cache ${cache}`);
  if (traceId) parts.push(`trace ${traceId}`);
  return `-- ${parts.join(' · ')}\n`;
}
