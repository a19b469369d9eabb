/** Builds the scheduling view of a GenerateRequest. */

import type { GenerateRequest__Output } from '../../common/generated/llmmesh/v1/GenerateRequest.js';
import { canonicalPrompt, createPrefixHasher } from '../../common/prefix-hash.js';
import type { SchedulingRequest } from './types.js';

/** The router's prompts, hashed: blocks shared with a recent prompt (a system prompt) are not hashed again. */
const hashPrompt = createPrefixHasher();

/**
 * A scheduling request for `req` on `version`. The prompt is hashed lazily,
 * once per block size, exactly as common/prefix-hash.ts defines it.
 */
export function createSchedulingRequest(
  req: Pick<GenerateRequest__Output, 'model' | 'prompt' | 'messages' | 'routing'>,
  requestId: string,
  version: string,
  exclude: ReadonlySet<string>,
): SchedulingRequest {
  return new PromptRequest(req, requestId, version, exclude);
}

/**
 * A class rather than an object literal with a getter: each such literal
 * gets a hidden class of its own, which old space keeps until a full
 * collection, and through it the literal's closures and whatever they hold
 * (the prompt, its hashes) outlive every scavenge in between.
 */
class PromptRequest implements SchedulingRequest {
  readonly model: string;
  readonly sessionKey: string;
  #text: string | undefined;
  /** Block size and hashes of the one size asked so far (a pool's pods share one). */
  #blockChars = 0;
  #hashes: readonly number[] | undefined;
  /** Further sizes, when pods of one pool hash with different block sizes. */
  #more: Map<number, readonly number[]> | undefined;

  constructor(
    private readonly req: Pick<GenerateRequest__Output, 'model' | 'prompt' | 'messages' | 'routing'>,
    readonly requestId: string,
    readonly version: string,
    readonly exclude: ReadonlySet<string>,
  ) {
    this.model = req.model;
    this.sessionKey = req.routing?.sessionKey ?? '';
  }

  get promptChars(): number {
    return this.#prompt().length;
  }

  prefixHashes(blockChars: number): readonly number[] {
    if (this.#hashes === undefined) {
      this.#blockChars = blockChars;
      this.#hashes = hashPrompt(this.#prompt(), blockChars);
      return this.#hashes;
    }
    if (blockChars === this.#blockChars) return this.#hashes;
    this.#more ??= new Map();
    let h = this.#more.get(blockChars);
    if (!h) {
      h = hashPrompt(this.#prompt(), blockChars);
      this.#more.set(blockChars, h);
    }
    return h;
  }

  #prompt(): string {
    this.#text ??= canonicalPrompt(this.req);
    return this.#text;
  }
}
