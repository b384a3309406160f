// OpenAI's request and response shapes for `flashneuron serve` (src/node/serve.ts): the request
// bodies of /v1/chat/completions and /v1/completions checked and turned into generate() options,
// and the completions, chunks, log-probabilities and errors written back as OpenAI writes them.
import type { ChatMessage } from '../core/chat-template.js';
import type { Completion, GenerateOptions, TokenLogprob } from '../core/model.js';

/** An error answered as OpenAI does: {"error": {"message", "type", "param", "code"}}. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly type = 'invalid_request_error',
    readonly param: string | null = null, readonly code: string | null = null) { super(message); }
  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) => new ApiError(400, message, 'invalid_request_error', param, code);

type Body = Record<string, unknown>;

/** What one request asks for, in generate()'s terms. */
export interface Job {
  model: string;
  stream: boolean;
  includeUsage: boolean;
  /** Log-probabilities wanted: none, chat's (top_logprobs alternatives) or the legacy completion's (logprobs alternatives). */
  logprobs: { kind: 'chat' | 'legacy'; top: number } | undefined;
  gen: GenerateOptions;
  /** max_tokens as given (undefined: until end-of-sequence or the context is full). */
  maxTokens: number | undefined;
}

function num(b: Body, key: string, lo: number, hi: number, integer = false): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi || (integer && !Number.isInteger(v))) {
    throw badRequest(`'${key}' must be ${integer ? 'an integer' : 'a number'} from ${lo} to ${hi} (got ${JSON.stringify(v)})`, key, 'invalid_value');
  }
  return v;
}

function bool(b: Body, key: string): boolean | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw badRequest(`'${key}' must be a boolean`, key, 'invalid_type');
  return v;
}

/** The options chat and text completions share (OpenAI's sampling defaults: temperature 1, top_p 1, no top-k). */
function common(b: Body, what: 'chat' | 'legacy'): Job {
  if (typeof b.model !== 'string' || !b.model) throw badRequest("'model' is required: a model id from GET /v1/models (or \"default\")", 'model', 'missing_required_parameter');
  const n = num(b, 'n', 1, 128, true);
  if (n !== undefined && n !== 1) throw badRequest("only 'n': 1 is supported", 'n', 'invalid_value');
  const stream = bool(b, 'stream') ?? false;
  const so = b.stream_options;
  if (so !== undefined && so !== null && (typeof so !== 'object' || Array.isArray(so))) throw badRequest("'stream_options' must be an object", 'stream_options', 'invalid_type');
  const includeUsage = so ? bool(so as Body, 'include_usage') ?? false : false;
  if (includeUsage && !stream) throw badRequest("'stream_options' is only allowed with 'stream': true", 'stream_options', 'invalid_value');
  let stop = b.stop;
  if (stop === null) stop = undefined;
  if (stop !== undefined && !(typeof stop === 'string' || (Array.isArray(stop) && stop.length <= 4 && stop.every((s) => typeof s === 'string')))) {
    throw badRequest("'stop' must be a string or an array of up to 4 strings", 'stop', 'invalid_type');
  }
  if (Array.isArray(stop)) stop = stop.filter((s) => s !== '');
  if (stop === '' || (Array.isArray(stop) && !stop.length)) stop = undefined;
  const maxKey = b.max_completion_tokens !== undefined && b.max_completion_tokens !== null ? 'max_completion_tokens' : 'max_tokens';
  const maxTokens = num(b, maxKey, 1, 2 ** 31, true);
  let logprobs: Job['logprobs'];
  if (what === 'chat') {
    const want = bool(b, 'logprobs') ?? false;
    const top = num(b, 'top_logprobs', 0, 20, true);
    if (top !== undefined && !want) throw badRequest("'top_logprobs' needs 'logprobs': true", 'top_logprobs', 'invalid_value');
    if (want) logprobs = { kind: 'chat', top: top ?? 0 };
  } else {
    const top = num(b, 'logprobs', 0, 5, true);
    if (top !== undefined) logprobs = { kind: 'legacy', top };
  }
  const gen: GenerateOptions = {
    temperature: num(b, 'temperature', 0, 2) ?? 1,
    topP: num(b, 'top_p', 0, 1) ?? 1,
    topK: num(b, 'top_k', 0, 2 ** 31, true) ?? 0,
    minP: num(b, 'min_p', 0, 1),
    seed: num(b, 'seed', -(2 ** 53), 2 ** 53, true),
    frequencyPenalty: num(b, 'frequency_penalty', -2, 2),
    presencePenalty: num(b, 'presence_penalty', -2, 2),
    repetitionPenalty: num(b, 'repetition_penalty', 0.01, 100),
    stop: stop as string | string[] | undefined,
    // The chosen token's log-probability comes with at least one alternative; the extra ones are cut.
    logprobs: logprobs ? Math.max(1, logprobs.top) : undefined,
  };
  for (const k of Object.keys(gen) as (keyof GenerateOptions)[]) if (gen[k] === undefined) delete gen[k];
  return { model: b.model, stream, includeUsage, logprobs, gen, maxTokens };
}

/** A chat message's content: a string, or text parts (other parts are refused). */
function content(m: Body, i: number): string {
  const c = m.content;
  if (c === undefined || c === null) return '';
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) {
    return c.map((p: Body) => {
      if (p && typeof p === 'object' && p.type === 'text' && typeof p.text === 'string') return p.text;
      throw badRequest(`messages[${i}].content: only text parts are supported (got ${JSON.stringify(p?.type ?? p)})`, `messages[${i}].content`, 'invalid_value');
    }).join('');
  }
  throw badRequest(`messages[${i}].content must be a string or an array of text parts`, `messages[${i}].content`, 'invalid_type');
}

export function chatJob(b: Body): Job & { messages: ChatMessage[]; tools: unknown[] | undefined } {
  const job = common(b, 'chat');
  if (!Array.isArray(b.messages) || !b.messages.length) throw badRequest("'messages' must be a non-empty array", 'messages', 'invalid_type');
  const messages = b.messages.map((m: Body, i: number) => {
    if (!m || typeof m !== 'object' || typeof m.role !== 'string') throw badRequest(`messages[${i}] must be an object with a string 'role'`, `messages[${i}]`, 'invalid_type');
    return { ...m, role: m.role, content: content(m, i) } as ChatMessage;
  });
  const tools = b.tools === undefined || b.tools === null ? undefined : b.tools;
  if (tools !== undefined && !Array.isArray(tools)) throw badRequest("'tools' must be an array", 'tools', 'invalid_type');
  return { ...job, messages, tools: tools as unknown[] | undefined };
}

export function textJob(b: Body): Job & { prompt: string | number[] } {
  const job = common(b, 'legacy');
  if (bool(b, 'echo')) throw badRequest("'echo' is not supported", 'echo', 'unsupported_parameter');
  if (b.suffix !== undefined && b.suffix !== null) throw badRequest("'suffix' is not supported", 'suffix', 'unsupported_parameter');
  const bestOf = num(b, 'best_of', 1, 20, true);
  if (bestOf !== undefined && bestOf !== 1) throw badRequest("only 'best_of': 1 is supported", 'best_of', 'invalid_value');
  let p = b.prompt;
  if (Array.isArray(p) && p.length === 1 && typeof p[0] === 'string') p = p[0];
  const ids = Array.isArray(p) && p.length > 0 && p.every((x) => Number.isInteger(x) && x >= 0);
  if (!(typeof p === 'string' && p.length) && !ids) throw badRequest("'prompt' must be a non-empty string (or one string, or an array of token ids)", 'prompt', 'invalid_value');
  return { ...job, prompt: p as string | number[] };
}

export const usage = (c: Completion) => ({
  prompt_tokens: c.stats.prompt_tokens,
  completion_tokens: c.ids.length,
  total_tokens: c.stats.prompt_tokens + c.ids.length,
  // Prompt tokens whose keys and values an earlier request left in the KV cache.
  prompt_tokens_details: { cached_tokens: c.stats.prompt_tokens - c.stats.prefill_tokens },
});

type Lp = TokenLogprob & { top: TokenLogprob[] };
const utf8 = new TextEncoder();
const bytes = (s: string) => [...utf8.encode(s)];

/** Chat's logprobs.content entries. */
export function chatLogprobs(lps: Lp[], top: number) {
  return lps.map((l) => ({
    token: l.token, logprob: l.logprob, bytes: bytes(l.token),
    top_logprobs: l.top.slice(0, top).map((t) => ({ token: t.token, logprob: t.logprob, bytes: bytes(t.token) })),
  }));
}

/** The legacy completion's logprobs; text_offset counts from the start of the prompt text, as OpenAI's. */
export function legacyLogprobs(lps: Lp[], top: number, offset: number) {
  const text_offset: number[] = [];
  for (const l of lps) { text_offset.push(offset); offset += l.token.length; }
  return {
    tokens: lps.map((l) => l.token),
    token_logprobs: lps.map((l) => l.logprob),
    top_logprobs: lps.map((l) => Object.fromEntries(l.top.slice(0, top).map((t) => [t.token, t.logprob]))),
    text_offset,
  };
}
