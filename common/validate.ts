/**
 * Validation of GenerateRequest shared by every hop (router and sidecar), so a
 * request is rejected with the same INVALID_ARGUMENT wherever it enters, with
 * a message that starts with the field and names the limit and the value.
 */
import { errors } from './errors.js';
import type { GenerateRequest__Output } from './generated/llmmesh/v1/GenerateRequest.js';

/** Roles the OpenAI chat API accepts. */
export const CHAT_ROLES = new Set(['system', 'user', 'assistant', 'tool', 'developer']);

/** Configurable input limits; the defaults are generous but finite. */
export interface InputLimits {
  /** Characters of `prompt`, or of all message contents together. */
  maxPromptChars: number;
  maxMessages: number;
  maxStopStrings: number;
  /** Characters of one stop string. */
  maxStopChars: number;
  /** Characters of `request_id` and `routing.session_key`. */
  maxIdChars: number;
}

/** Default input limits. */
export const DEFAULT_INPUT_LIMITS: InputLimits = {
  maxPromptChars: 2_000_000,
  maxMessages: 2_048,
  maxStopStrings: 16,
  maxStopChars: 256,
  maxIdChars: 256,
};

/**
 * Validates a request for the fields every hop checks, throwing
 * INVALID_ARGUMENT naming the field.
 */
export function validateGenerateRequest(
  req: GenerateRequest__Output,
  limits: InputLimits = DEFAULT_INPUT_LIMITS,
): void {
  const hasPrompt = req.prompt.length > 0;
  const hasMessages = req.messages.length > 0;
  if (!req.model) throw errors.invalidArgument('model', 'is required');
  if (!hasPrompt && !hasMessages)
    throw errors.invalidArgument('prompt', 'set prompt or messages (both are empty)');
  if (hasPrompt && hasMessages) throw errors.invalidArgument('prompt', 'set prompt or messages, not both');
  if (req.prompt.length > limits.maxPromptChars) {
    throw errors.invalidArgument(
      'prompt',
      `${req.prompt.length} characters exceeds the limit of ${limits.maxPromptChars}`,
    );
  }
  if (req.messages.length > limits.maxMessages) {
    throw errors.invalidArgument(
      'messages',
      `${req.messages.length} messages exceeds the limit of ${limits.maxMessages}`,
    );
  }
  let chars = 0;
  req.messages.forEach((m, i) => {
    if (!CHAT_ROLES.has(m.role)) {
      throw errors.invalidArgument(
        `messages[${i}].role`,
        `unknown role "${m.role.slice(0, 40)}" (expected one of ${[...CHAT_ROLES].join(', ')})`,
      );
    }
    if (m.content.length === 0) throw errors.invalidArgument(`messages[${i}].content`, 'is empty');
    chars += m.content.length;
  });
  if (chars > limits.maxPromptChars) {
    throw errors.invalidArgument(
      'messages',
      `${chars} characters of content exceeds the limit of ${limits.maxPromptChars}`,
    );
  }
  if (req.requestId.length > limits.maxIdChars) {
    throw errors.invalidArgument(
      'request_id',
      `${req.requestId.length} characters exceeds the limit of ${limits.maxIdChars}`,
    );
  }
  if ((req.routing?.sessionKey.length ?? 0) > limits.maxIdChars) {
    throw errors.invalidArgument(
      'routing.session_key',
      `longer than the limit of ${limits.maxIdChars} characters`,
    );
  }
  const s = req.sampling;
  if (s) {
    if (
      s.temperature !== undefined &&
      !(Number.isFinite(s.temperature) && s.temperature >= 0 && s.temperature <= 100)
    ) {
      throw errors.invalidArgument(
        'sampling.temperature',
        `must be a finite number in [0, 100], got ${s.temperature}`,
      );
    }
    if (s.topP !== undefined && !(Number.isFinite(s.topP) && s.topP > 0 && s.topP <= 1)) {
      throw errors.invalidArgument('sampling.top_p', `must be in (0, 1], got ${s.topP}`);
    }
    if (s.seed !== undefined && !Number.isSafeInteger(s.seed)) {
      throw errors.invalidArgument('sampling.seed', `must be an integer within ±2^53, got ${s.seed}`);
    }
    if (s.stop.length > limits.maxStopStrings) {
      throw errors.invalidArgument(
        'sampling.stop',
        `${s.stop.length} stop strings exceeds the limit of ${limits.maxStopStrings}`,
      );
    }
    s.stop.forEach((stop, i) => {
      if (stop.length === 0) throw errors.invalidArgument(`sampling.stop[${i}]`, 'is empty');
      if (stop.length > limits.maxStopChars) {
        throw errors.invalidArgument(
          `sampling.stop[${i}]`,
          `longer than the limit of ${limits.maxStopChars} characters`,
        );
      }
    });
  }
}

/**
 * Rough token count of a request's prompt for admission decisions made before
 * any tokenizer runs (rate limits, context checks): ~4 characters per token
 * for English text, plus a few template tokens per chat message. It errs
 * high for code and CJK-free text less often than it errs low.
 */
export function estimatePromptTokens(req: Pick<GenerateRequest__Output, 'prompt' | 'messages'>): number {
  if (req.messages.length === 0) return Math.ceil(req.prompt.length / 4);
  let n = 0;
  for (const m of req.messages) n += Math.ceil(m.content.length / 4) + 4;
  return n + 3;
}
