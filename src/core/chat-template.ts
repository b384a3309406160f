// Chat templates rendered as transformers' `apply_chat_template` renders them: the template's
// Jinja on @huggingface/jinja (parsed with trim_blocks + lstrip_blocks, as transformers' sandbox),
// with the variables transformers passes, and a thin layer (jinja-python.ts) where the library's
// semantics differ from Python's: `| trim` / `.strip()` keep U+FEFF, `.strip(chars)` /
// `.lstrip(chars)` / `.rstrip(chars)` honour their argument, `select` / `reject` filters.
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { pythonize, strftimeNow } from './jinja-python.js';

export { strftimeNow } from './jinja-python.js';

/** One chat message: `role`, `content` (a string, or a list of parts such as `{type: 'text', text}`), and whatever else a template reads (`tool_calls`, `reasoning_content`, …). */
export interface ChatMessage {
  role: string;
  content?: unknown;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** End with the header that opens the assistant's turn (transformers' `add_generation_prompt`). */
  addGenerationPrompt?: boolean;
  /** JSON-schema function definitions (`tools`); absent: the template sees `none`. */
  tools?: unknown[] | null;
  /** Retrieval documents (`documents`); absent: `none`. */
  documents?: unknown[] | null;
  /** `bos_token`, `eos_token`, `unk_token`, `pad_token`. */
  bosToken?: string;
  eosToken?: string;
  unkToken?: string;
  padToken?: string;
  /** The tokenizer's special tokens by name, as transformers passes `special_tokens_map` ({bos_token: …, eos_token: …, …}). */
  specialTokens?: Record<string, unknown>;
  /** Extra template variables (`date_string`, `enable_thinking`, `tools_in_user_message`, `builtin_tools`, …); they override everything else. */
  variables?: Record<string, unknown>;
  /** Any other key is an extra template variable too, as transformers' `**kwargs`. */
  [variable: string]: unknown;
}

/** What a template's `raise_exception(message)` throws: `message` is exactly the template's text. */
export class ChatTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateError';
  }
}

const OPTION_KEYS = new Set(['addGenerationPrompt', 'tools', 'documents', 'bosToken', 'eosToken', 'unkToken', 'padToken', 'specialTokens', 'variables']);

// Parsing is the costly part; a model renders with the same template again and again.
const parsed = new Map<string, Template>();
function parseTemplate(template: string): Template {
  let t = parsed.get(template);
  if (!t) {
    t = new Template(template);
    if (parsed.size >= 16) parsed.delete(parsed.keys().next().value!);
    parsed.set(template, t);
  }
  return t;
}

function range(...args: number[]): number[] {
  const [start, stop, step = 1] = args.length === 1 ? [0, args[0]] : args;
  if (step === 0) throw new Error('range() arg 3 must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/** The variables a template sees, in transformers' order (later ones override earlier ones). */
export function chatTemplateVariables(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): Record<string, unknown> {
  const vars: Record<string, unknown> = {
    messages,
    tools: options.tools ?? null,
    documents: options.documents ?? null,
    add_generation_prompt: options.addGenerationPrompt ?? false,
    ...options.specialTokens,
  };
  const named: [keyof ChatTemplateOptions, string][] = [['bosToken', 'bos_token'], ['eosToken', 'eos_token'], ['unkToken', 'unk_token'], ['padToken', 'pad_token']];
  for (const [k, v] of named) if (options[k] !== undefined) vars[v] = options[k];
  for (const [k, v] of Object.entries(options)) if (!OPTION_KEYS.has(k) && v !== undefined) vars[k] = v;
  return Object.assign(vars, options.variables);
}

/**
 * Renders `messages` with a chat template (Jinja, as in tokenizer_config.json's `chat_template`)
 * exactly as transformers' `tokenizer.apply_chat_template(messages, tokenize=False, …)` does.
 * A template's `raise_exception(msg)` throws a ChatTemplateError with message `msg`.
 */
export function applyChatTemplate(template: string, messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
  const program = parseTemplate(template).parsed;
  const env = new Environment();
  env.set('false', false);
  env.set('true', true);
  env.set('none', null);
  env.set('False', false);
  env.set('True', true);
  env.set('None', null);
  env.set('range', range);
  env.set('raise_exception', (msg: unknown) => { throw new ChatTemplateError(String(msg)); });
  env.set('strftime_now', (fmt: unknown) => strftimeNow(String(fmt)));
  for (const [k, v] of Object.entries(chatTemplateVariables(messages, options))) env.set(k, v);
  const interpreter = new Interpreter(env);
  pythonize(interpreter);
  return interpreter.run(program).value as string;
}

/** A tokenizer_config.json's `chat_template`: a string, or transformers' list of named templates. */
export type ChatTemplateField = string | { name: string; template: string }[] | Record<string, string> | null | undefined;

export const NO_CHAT_TEMPLATE = 'this model has no chat template (tokenizer_config.json chat_template); give one with --chat-template FILE';

/**
 * The chat template of a tokenizer config (`chat_template`), as transformers picks it: a string
 * as is; from a list of named templates (`[{name: 'default', template}, {name: 'tool_use', …}]`)
 * `name` if given, else `tool_use` when tools are given and it exists, else `default`.
 * Throws a one-line error when there is none.
 */
export function chatTemplateOf(tokenizerConfig: { chat_template?: unknown } | null | undefined, options: { tools?: unknown[] | null; name?: string } = {}): string {
  const field = tokenizerConfig?.chat_template as ChatTemplateField;
  if (typeof field === 'string' && field.length > 0) return field;
  if (field === null || field === undefined || typeof field === 'string') throw new Error(NO_CHAT_TEMPLATE);
  const named = new Map<string, unknown>(Array.isArray(field)
    ? field.map((t) => [String((t as { name?: unknown })?.name), (t as { template?: unknown })?.template])
    : Object.entries(field));
  const pick = (name: string): string => {
    const t = named.get(name);
    if (typeof t !== 'string') throw new Error(`chat_template "${name}" is not a string`);
    return t;
  };
  const names = [...named.keys()].join(', ');
  if (options.name !== undefined) {
    if (!named.has(options.name)) throw new Error(`this model has no chat template named "${options.name}" (it has: ${names})`);
    return pick(options.name);
  }
  if (options.tools && named.has('tool_use')) return pick('tool_use');
  if (named.has('default')) return pick('default');
  throw new Error(`this model has several chat templates and none named "default" (it has: ${names}); give one with --chat-template FILE`);
}
