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
  let text: string | undefined;
  const memo = new Map<number, readonly number[]>();
  return {
    get promptChars() {
      text ??= canonicalPrompt(req);
      return text.length;
    },
    requestId,
    model: req.model,
    version,
    sessionKey: req.routing?.sessionKey ?? '',
    exclude,
    prefixHashes(blockChars) {
      let h = memo.get(blockChars);
      if (!h) {
        text ??= canonicalPrompt(req);
        h = hashPrompt(text, blockChars);
        memo.set(blockChars, h);
      }
      return h;
    },
  };
}
