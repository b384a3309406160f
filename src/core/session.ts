// Conversations with a model: the prompt of a list of messages rendered with the model's chat
// template (as transformers' apply_chat_template(tokenize=True) does), and ChatSession, which
// keeps a conversation's messages and sends each new turn. The model's KV cache keeps the
// positions an earlier request ran with the same tokens (Engine.cachedPrefix), so a session's
// next turn prefills only what is new when it is the model's last user; sessions that take
// turns on one model each recompute what the other displaced — their answers never mix
// (the model runs one request at a time) and are exactly those of a from-scratch run.
import { applyChatTemplate, chatTemplateOf, type ChatMessage } from './chat-template.js';
import type { Completion, GenerateOptions, GeneratedToken, Model } from './model.js';

export type { ChatMessage } from './chat-template.js';

export interface ChatOptions {
  /** A Jinja chat template to use instead of the model's (tokenizer_config.json's chat_template). */
  template?: string;
  /** JSON-schema function definitions the template shows the model. */
  tools?: unknown[];
  /** Extra template variables (date_string, enable_thinking, …). */
  variables?: Record<string, unknown>;
}

/** The special tokens a template sees as variables (transformers passes special_tokens_map). */
function specialTokens(cfg: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token']) {
    const v = cfg[k] as string | { content?: unknown } | null | undefined;
    const s = typeof v === 'string' ? v : typeof v?.content === 'string' ? v.content : undefined;
    if (s !== undefined) out[k] = s;
  }
  return out;
}

/** The prompt ids of `messages`, rendered with the model's chat template (or opts.template) and an assistant header to answer after. */
export function chatPrompt(model: Model, messages: readonly ChatMessage[], opts: ChatOptions & { addGenerationPrompt?: boolean } = {}): number[] {
  const cfg = (model.engine.header.tokenizer_config ?? {}) as Record<string, unknown>;
  const template = opts.template ?? chatTemplateOf(cfg, { tools: opts.tools });
  const text = applyChatTemplate(template, messages, {
    addGenerationPrompt: opts.addGenerationPrompt ?? true, tools: opts.tools, specialTokens: specialTokens(cfg), variables: opts.variables,
  });
  // The template writes every special token itself (BOS included).
  return model.tokenize(text, { addSpecialTokens: false });
}

/** A conversation with a model: its messages, and send() for each new user turn. */
export class ChatSession {
  messages: ChatMessage[];

  constructor(readonly model: Model, readonly options: ChatOptions & { system?: string; messages?: ChatMessage[] } = {}) {
    this.messages = options.messages ? structuredClone(options.messages) : options.system !== undefined ? [{ role: 'system', content: options.system }] : [];
    // Fail now, not at the first turn, when the model has no template and none was given.
    if (options.template === undefined) chatTemplateOf((model.engine.header.tokenizer_config ?? {}) as Record<string, unknown>, { tools: options.tools });
  }

  /**
   * Streams the answer to `content`; once it ends, the user turn and the answer are part of the
   * conversation (an aborted or failed turn leaves the conversation as it was).
   */
  async *send(content: string, opts: GenerateOptions = {}): AsyncGenerator<GeneratedToken, Completion> {
    const messages = [...this.messages, { role: 'user', content }];
    const ids = chatPrompt(this.model, messages, this.options);
    const it = this.model.generate(ids, opts);
    let r = await it.next();
    while (!r.done) {
      yield r.value;
      r = await it.next();
    }
    if (!opts.signal?.aborted) this.messages = [...messages, { role: 'assistant', content: r.value.text }];
    return r.value;
  }

  /** send() run to the end. */
  async reply(content: string, opts: GenerateOptions = {}): Promise<Completion> {
    const it = this.send(content, opts);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
    }
  }

  /** A session that continues from here on its own. */
  fork(): ChatSession {
    return new ChatSession(this.model, { ...this.options, messages: this.messages });
  }

  /** Back to the start: the system prompt only. */
  reset(): void {
    this.messages = this.options.system !== undefined ? [{ role: 'system', content: this.options.system }] : [];
  }

  /** The conversation as JSON (save it; `new ChatSession(model, { messages })` continues it). */
  toJSON(): { messages: ChatMessage[] } {
    return { messages: structuredClone(this.messages) };
  }
}
