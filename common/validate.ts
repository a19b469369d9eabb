/**
 * Validation of GenerateRequest shared by every hop (router and sidecar), so a
 * request is rejected with the same INVALID_ARGUMENT wherever it enters.
 */
import { errors } from './errors.js';
import type { GenerateRequest__Output } from './generated/llmmesh/v1/GenerateRequest.js';

/** Roles the OpenAI chat API accepts. */
export const CHAT_ROLES = new Set(['system', 'user', 'assistant', 'tool', 'developer']);

/**
 * Validates a request for the fields every hop checks, throwing
 * INVALID_ARGUMENT naming the field.
 */
export function validateGenerateRequest(req: GenerateRequest__Output): void {
  const hasPrompt = req.prompt.length > 0;
  const hasMessages = req.messages.length > 0;
  if (!req.model) throw errors.invalidArgument('model', 'is required');
  if (!hasPrompt && !hasMessages)
    throw errors.invalidArgument('prompt', 'set prompt or messages (both are empty)');
  if (hasPrompt && hasMessages) throw errors.invalidArgument('prompt', 'set prompt or messages, not both');
  req.messages.forEach((m, i) => {
    if (!CHAT_ROLES.has(m.role)) {
      throw errors.invalidArgument(
        `messages[${i}].role`,
        `unknown role "${m.role}" (expected one of ${[...CHAT_ROLES].join(', ')})`,
      );
    }
  });
  const s = req.sampling;
  if (s) {
    if (s.temperature !== undefined && !(Number.isFinite(s.temperature) && s.temperature >= 0)) {
      throw errors.invalidArgument(
        'sampling.temperature',
        `must be a finite number >= 0, got ${s.temperature}`,
      );
    }
    if (s.topP !== undefined && !(Number.isFinite(s.topP) && s.topP > 0 && s.topP <= 1)) {
      throw errors.invalidArgument('sampling.top_p', `must be in (0, 1], got ${s.topP}`);
    }
  }
}
