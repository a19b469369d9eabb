/**
 * The chat template: how a list of messages becomes one prompt string. The
 * simulator renders Llama-3's template, so chat prompts carry the same
 * per-message overhead (header tokens, end-of-turn token) as the real model.
 */
import { BOS_TOKEN } from './tokenizer.js';

/** A chat message with its content already flattened to text. */
export interface TemplateMessage {
  role: string;
  content: string;
}

/** Options of {@link renderChatTemplate}, named as in vLLM's chat request. */
export interface ChatTemplateOptions {
  /** Open an assistant turn at the end (default true). */
  addGenerationPrompt?: boolean;
  /** Leave the last message open so the model continues it (default false). */
  continueFinalMessage?: boolean;
}

/** Renders `messages` with the Llama-3 chat template. */
export function renderChatTemplate(
  messages: readonly TemplateMessage[],
  options: ChatTemplateOptions = {},
): string {
  const continueFinal = options.continueFinalMessage ?? false;
  const addGenerationPrompt = (options.addGenerationPrompt ?? true) && !continueFinal;
  let out = BOS_TOKEN;
  messages.forEach((message, i) => {
    out += `<|start_header_id|>${message.role}<|end_header_id|>\n\n${message.content.trim()}`;
    if (!(continueFinal && i === messages.length - 1)) out += '<|eot_id|>';
  });
  if (addGenerationPrompt) out += '<|start_header_id|>assistant<|end_header_id|>\n\n';
  return out;
}
