/**
 * Benchmark workloads: seeded, reproducible streams of requests. A workload
 * is a pure function of its parameters, its seed and the request index, so
 * two runs with the same seed send the same prompts in the same order, and a
 * request can be rebuilt from its index alone.
 *
 * Text is made of short common English words, each about one token for
 * Llama-3-style tokenizers (and exactly one for the simulator's), so lengths
 * given in words are lengths in tokens.
 */
import { createRandom, deriveSeed } from '../common/random.js';
import { createShareGptSampler } from '../sim/sharegpt.js';

/**
 * The workload kinds `llmmesh bench --workload` accepts. `sharegpt` draws each
 * request's prompt and output lengths from the ShareGPT-shaped distribution of
 * `sim/sharegpt.ts` (means 202 / 179 tokens, with their tails), as `vllm bench
 * serve --dataset-name sharegpt` sends them; it reads no parameters.
 */
export const WORKLOAD_KINDS = ['fixed', 'shared-prefix', 'multi-turn', 'long-prompt', 'sharegpt'] as const;
/** A workload kind. */
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

/** One chat message. */
export interface BenchMessage {
  role: string;
  content: string;
}

/** One request of a workload. Exactly one of `prompt` / `messages` is set. */
export interface BenchRequest {
  /** Position in the workload (0-based). */
  index: number;
  prompt?: string;
  messages?: BenchMessage[];
  /** Tokens to generate. */
  maxTokens: number;
  /** Routing session key (multi-turn: the conversation). */
  sessionKey?: string;
  /** Shared-prefix group, or conversation number for multi-turn. */
  group?: number;
  /** Prompt length in words (≈ tokens), templates excluded. */
  promptWords: number;
}

/** Parameters of every workload kind; each kind reads the ones it needs. */
export interface WorkloadParams {
  /** fixed: prompt length in words. long-prompt: the minimum. */
  promptLen: number;
  /** long-prompt: the maximum prompt length in words (uniform between promptLen and this). */
  promptLenMax: number;
  /** Tokens generated per request (multi-turn: per turn). */
  outputLen: number;
  /** shared-prefix: groups (tenants), each with its own system prompt. */
  groups: number;
  /** shared-prefix: distinct questions per group. */
  promptsPerGroup: number;
  /** shared-prefix and multi-turn: system prompt length in words. */
  systemPromptLen: number;
  /** shared-prefix: question length in words. multi-turn: words per user turn. */
  questionLen: number;
  /** multi-turn: conversations in flight at once. */
  conversations: number;
  /** multi-turn: turns per conversation before it starts over as a new one. */
  turns: number;
}

/** Defaults per kind (shared-prefix follows the shape of inference-perf's and llm-d's benchmarks). */
export const WORKLOAD_DEFAULTS: Readonly<Record<WorkloadKind, Readonly<Partial<WorkloadParams>>>> = {
  fixed: { promptLen: 128, outputLen: 64 },
  'shared-prefix': {
    groups: 16,
    promptsPerGroup: 16,
    systemPromptLen: 1000,
    questionLen: 64,
    outputLen: 64,
  },
  'multi-turn': { conversations: 16, turns: 8, systemPromptLen: 128, questionLen: 48, outputLen: 64 },
  'long-prompt': { promptLen: 4000, promptLenMax: 8000, outputLen: 64 },
  sharegpt: {},
};

const BASE_PARAMS: WorkloadParams = {
  promptLen: 128,
  promptLenMax: 128,
  outputLen: 64,
  groups: 16,
  promptsPerGroup: 16,
  systemPromptLen: 1000,
  questionLen: 64,
  conversations: 16,
  turns: 8,
};

/** A seeded request source. */
export interface Workload {
  readonly kind: WorkloadKind;
  readonly seed: number;
  /** The resolved parameters (defaults applied). */
  readonly params: Readonly<WorkloadParams>;
  /** The request at `index`; the same index always gives the same request. */
  request(index: number): BenchRequest;
  /** A one-line description for reports, e.g. `shared-prefix 16×16, system 1000, question 64, output 64`. */
  describe(): string;
}

// Short, frequent words: one token each for BPE tokenizers of English.
const VOCAB = (
  'the of and to in is was for on that with as it by at from this be are or an have not which but had one ' +
  'they you were all their there can more has been would when we if will each about how up out them then ' +
  'she many some so these could time very what see way him like long make thing look two day go come did ' +
  'number sound no most people my over know water than call first who may down side now find any new work ' +
  'part take get place made live where after back little only round man year came show every good me give ' +
  'our under name just form great think say help low line turn cause much mean before move right boy old ' +
  'too same tell does set three want air well also play small end put home read hand port large spell add ' +
  'even land here must big high such follow act why ask men change went light kind off need house picture ' +
  'try us again animal point mother world near build self earth father head stand own page should country ' +
  'found answer school grow study still learn plant cover food sun four thought let keep eye never last ' +
  'door between city tree cross since hard start might story saw far sea draw left late run while press ' +
  'close night real life few stop open seem together next white children begin got walk example ease paper'
).split(' ');

/** `n` seeded words, each with a leading space. */
export function words(random: () => number, n: number): string {
  const out = new Array<string>(n);
  for (let i = 0; i < n; i++) out[i] = ` ${VOCAB[Math.floor(random() * VOCAB.length)]}`;
  return out.join('');
}

/** Creates a workload of `kind` with `params` over the kind's defaults. */
export function createWorkload(
  kind: WorkloadKind,
  options: { seed?: number; params?: Partial<WorkloadParams> } = {},
): Workload {
  const seed = options.seed ?? 1;
  const params: WorkloadParams = { ...BASE_PARAMS, ...WORKLOAD_DEFAULTS[kind], ...defined(options.params) };
  if (kind === 'long-prompt' && params.promptLenMax < params.promptLen)
    params.promptLenMax = params.promptLen;
  for (const [k, v] of Object.entries(params)) {
    if (!Number.isInteger(v) || v < 0)
      throw new RangeError(`workload ${kind}: ${k} must be a whole number >= 0`);
  }
  for (const k of ['groups', 'promptsPerGroup', 'conversations', 'turns'] as const) {
    if (params[k] < 1) throw new RangeError(`workload ${kind}: ${k} must be >= 1`);
  }
  const text = (...parts: number[]) => createRandom(deriveSeed(seed, ...parts));
  const systemPrompts = new Map<number, string>();
  const systemPrompt = (group: number): string => {
    let s = systemPrompts.get(group);
    if (s === undefined) {
      s = words(text(1, group), params.systemPromptLen);
      systemPrompts.set(group, s);
    }
    return s;
  };

  const request = (index: number): BenchRequest => {
    if (!Number.isInteger(index) || index < 0)
      throw new RangeError(`request index must be >= 0, got ${index}`);
    const pick = text(0, index);
    switch (kind) {
      case 'fixed':
        return {
          index,
          prompt: words(text(2, index), params.promptLen),
          maxTokens: params.outputLen,
          promptWords: params.promptLen,
        };
      case 'long-prompt': {
        const len = params.promptLen + Math.floor(pick() * (params.promptLenMax - params.promptLen + 1));
        return { index, prompt: words(text(2, index), len), maxTokens: params.outputLen, promptWords: len };
      }
      case 'sharegpt': {
        const { promptTokens, outputTokens } = createShareGptSampler(pick)();
        return {
          index,
          prompt: words(text(2, index), promptTokens),
          maxTokens: outputTokens,
          promptWords: promptTokens,
        };
      }
      case 'shared-prefix': {
        const group = Math.floor(pick() * params.groups);
        const question = Math.floor(pick() * params.promptsPerGroup);
        const prompt = systemPrompt(group) + words(text(3, group, question), params.questionLen);
        return {
          index,
          prompt,
          maxTokens: params.outputLen,
          group,
          promptWords: params.systemPromptLen + params.questionLen,
        };
      }
      case 'multi-turn': {
        // Conversations take turns round-robin, so turn t of a conversation is
        // sent `conversations` requests after turn t-1 (which has usually
        // finished by then); after `turns` turns it starts over as a new one.
        const round = Math.floor(index / params.conversations);
        const slot = index % params.conversations;
        const turn = round % params.turns;
        const conversation = slot + params.conversations * Math.floor(round / params.turns);
        const messages: BenchMessage[] = [];
        if (params.systemPromptLen > 0)
          messages.push({ role: 'system', content: systemPrompt(conversation).trim() });
        let promptWords = params.systemPromptLen;
        for (let t = 0; t <= turn; t++) {
          messages.push({
            role: 'user',
            content: words(text(4, conversation, t), params.questionLen).trim(),
          });
          promptWords += params.questionLen;
          if (t < turn) {
            // The assistant's earlier replies are synthesised from the seed,
            // not taken from the responses, so the workload stays reproducible.
            messages.push({
              role: 'assistant',
              content: words(text(5, conversation, t), params.outputLen).trim(),
            });
            promptWords += params.outputLen;
          }
        }
        return {
          index,
          messages,
          maxTokens: params.outputLen,
          sessionKey: `conversation-${seed}-${conversation}`,
          group: conversation,
          promptWords,
        };
      }
    }
  };

  const describe = (): string => {
    switch (kind) {
      case 'fixed':
        return `fixed: prompt ${params.promptLen}, output ${params.outputLen}`;
      case 'long-prompt':
        return `long-prompt: prompt ${params.promptLen}–${params.promptLenMax}, output ${params.outputLen}`;
      case 'shared-prefix':
        return `shared-prefix: ${params.groups} groups × ${params.promptsPerGroup} prompts, system ${params.systemPromptLen}, question ${params.questionLen}, output ${params.outputLen}`;
      case 'multi-turn':
        return `multi-turn: ${params.conversations} conversations × ${params.turns} turns, system ${params.systemPromptLen}, turn ${params.questionLen}, output ${params.outputLen}`;
      case 'sharegpt':
        return 'sharegpt: ShareGPT-shaped lengths, prompt 4–1024 (mean 202), output from 4 (mean 179)';
    }
  };

  return { kind, seed, params, request, describe };
}

function defined<T extends object>(value: T | undefined): Partial<T> {
  if (!value) return {};
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
