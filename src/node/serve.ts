// `flashneuron serve`: an OpenAI-compatible HTTP server over one loaded model, on node:http.
//   POST /v1/chat/completions   messages → the model's chat template → generate (whole or SSE)
//   POST /v1/completions        prompt → generate (whole or SSE)
//   GET  /v1/models[/ID]        the one model (alias "default" accepted in requests)
//   GET  /health                {"status":"ok"} (no API key needed)
// The model runs one request at a time (its FIFO queue); a client that goes away before its
// answer is written aborts its generation, which frees the model at the next token.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID, createHash, timingSafeEqual } from 'node:crypto';
import { basename } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Completion, GeneratedToken, Model } from '../core/model.js';
import { chatPrompt } from '../core/session.js';
import { ApiError, badRequest, chatJob, chatLogprobs, legacyLogprobs, textJob, usage, type Job } from './openai.js';

export interface ServeOptions {
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 8080; 0 picks a free one — see the returned url). */
  port?: number;
  /** When set, every /v1 request needs `Authorization: Bearer KEY`. */
  apiKey?: string;
  /** The id /v1/models lists and requests name (default: the model path's basename). */
  modelId?: string;
  /** A Jinja chat template used instead of the model's. */
  chatTemplate?: string;
  /** Largest request body in bytes (default 1 MiB); a larger one is answered 413. */
  maxBody?: number;
  /** One line per request (method, path, status, time). */
  log?: (line: string) => void;
}

export interface Server {
  url: string;
  port: number;
  modelId: string;
  /** Stops listening, aborts running generations, closes connections; resolves once all handlers have ended. */
  close(): Promise<void>;
}

const MiB = 1 << 20;

export async function startServer(model: Model, opts: ServeOptions = {}): Promise<Server> {
  const modelId = opts.modelId ?? basename(model.path.replace(/[\\/]+$/, ''));
  const maxBody = opts.maxBody ?? MiB;
  const keyHash = opts.apiKey !== undefined ? sha256(opts.apiKey) : undefined;
  const created = Math.floor(Date.now() / 1000);
  const running = new Set<AbortController>();
  const handlers = new Set<Promise<void>>();

  const server = createServer((req, res) => {
    const t0 = Date.now();
    const p = handle(req, res).catch((e) => fail(res, e)).finally(() => {
      handlers.delete(p);
      opts.log?.(`${req.method} ${req.url} ${res.statusCode} ${Date.now() - t0} ms`);
    });
    handlers.add(p);
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/';
    if (path === '/health') return route(req, res, 'GET', () => json(res, 200, { status: 'ok' }));
    if (keyHash) {
      const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
      if (!m || !timingSafeEqual(sha256(m[1].trim()), keyHash)) {
        throw new ApiError(401, m ? 'Incorrect API key provided.' : 'You didn\'t provide an API key: give it as "Authorization: Bearer KEY".', 'invalid_request_error', null, 'invalid_api_key');
      }
    }
    const p = path.replace(/^\/v1(?=\/)/, '');
    if (p === '/models') return route(req, res, 'GET', () => json(res, 200, { object: 'list', data: [modelCard()] }));
    if (p.startsWith('/models/')) {
      return route(req, res, 'GET', () => {
        checkModel(decodeURIComponent(p.slice('/models/'.length)));
        json(res, 200, modelCard());
      });
    }
    if (p === '/chat/completions') return route(req, res, 'POST', async () => chat(res, await readJson(req)));
    if (p === '/completions') return route(req, res, 'POST', async () => text(res, await readJson(req)));
    throw new ApiError(404, `Unknown request URL: ${req.method} ${path}. Please check the URL for typos.`, 'invalid_request_error', null, 'unknown_url');
  }

  async function route(req: IncomingMessage, res: ServerResponse, method: string, fn: () => unknown): Promise<void> {
    if (req.method !== method && !(method === 'GET' && req.method === 'HEAD')) {
      res.setHeader('Allow', method === 'GET' ? 'GET, HEAD' : method);
      throw new ApiError(405, `Method ${req.method} is not allowed for this URL; use ${method}.`, 'invalid_request_error', null, 'method_not_allowed');
    }
    await fn();
  }

  const modelCard = () => ({ id: modelId, object: 'model', created, owned_by: 'flashneuron' });

  function checkModel(id: string): void {
    if (id !== modelId && id !== 'default') {
      throw new ApiError(404, `The model '${id}' does not exist; this server serves '${modelId}' (or "default").`, 'invalid_request_error', 'model', 'model_not_found');
    }
  }

  async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
    const raw = await readBody(req, maxBody);
    let body: unknown;
    try { body = JSON.parse(raw.toString('utf8')); } catch (e) {
      throw badRequest(`We could not parse the JSON body of your request (${(e as Error).message}). Send JSON with Content-Type: application/json.`);
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('The request body must be a JSON object.');
    return body as Record<string, unknown>;
  }

  /** The prompt's ids checked against the context; the tokens left to generate. */
  function budget(ids: number[], job: Job): number {
    const ctx = model.engine.contextLength;
    if (ids.length === 0) throw badRequest('The prompt encodes to no tokens.', 'prompt');
    if (ids.length >= ctx) {
      throw badRequest(`This model's maximum context length is ${ctx} tokens. However, your prompt has ${ids.length} tokens.`, 'messages', 'context_length_exceeded');
    }
    return Math.min(job.maxTokens ?? Infinity, ctx - ids.length);
  }

  async function chat(res: ServerResponse, body: Record<string, unknown>): Promise<void> {
    const job = chatJob(body);
    checkModel(job.model);
    let ids: number[];
    try { ids = chatPrompt(model, job.messages, { tools: job.tools, template: opts.chatTemplate }); } catch (e) {
      throw badRequest(`The chat template could not be applied: ${(e as Error).message}`, 'messages');
    }
    const id = `chatcmpl-${randomUUID().replace(/-/g, '')}`;
    const head = { id, object: 'chat.completion.chunk', created: now(), model: modelId, system_fingerprint: null };
    const lp = (t: Parameters<typeof chatLogprobs>[0]) => ({ content: chatLogprobs(t, job.logprobs!.top), refusal: null });
    await generate(res, job, ids, {
      whole: (c, finish) => ({
        id, object: 'chat.completion', created: head.created, model: modelId, system_fingerprint: null,
        choices: [{ index: 0, message: { role: 'assistant', content: c.text, refusal: null }, logprobs: job.logprobs ? lp(c.logprobs ?? []) : null, finish_reason: finish }],
        usage: usage(c),
      }),
      first: () => ({ ...head, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] }),
      token: (t) => (t.text || (job.logprobs && t.logprobs) ? {
        ...head, choices: [{ index: 0, delta: { content: t.text }, logprobs: job.logprobs && t.logprobs ? lp([t.logprobs]) : null, finish_reason: null }],
      } : undefined),
      last: (finish) => ({ ...head, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: finish }] }),
      usage: (c) => ({ ...head, choices: [], usage: usage(c) }),
    });
  }

  async function text(res: ServerResponse, body: Record<string, unknown>): Promise<void> {
    const job = textJob(body);
    checkModel(job.model);
    const ids = typeof job.prompt === 'string' ? model.tokenize(job.prompt) : job.prompt;
    const vocab = model.config.vocab;
    if (ids.some((i) => i >= vocab)) throw badRequest(`Token ids must be below the vocabulary size ${vocab}.`, 'prompt', 'invalid_value');
    const id = `cmpl-${randomUUID().replace(/-/g, '')}`;
    const head = { id, object: 'text_completion', created: now(), model: modelId, system_fingerprint: null };
    let offset = typeof job.prompt === 'string' ? job.prompt.length : 0;
    const lp = (t: Parameters<typeof legacyLogprobs>[0]) => {
      const r = legacyLogprobs(t, job.logprobs!.top, offset);
      if (t.length) offset = r.text_offset.at(-1)! + t.at(-1)!.token.length;
      return r;
    };
    const choice = (text: string, logprobs: unknown, finish: string | null) => ({ text, index: 0, logprobs, finish_reason: finish });
    await generate(res, job, ids, {
      whole: (c, finish) => ({ ...head, choices: [choice(c.text, job.logprobs ? lp(c.logprobs ?? []) : null, finish)], usage: usage(c) }),
      token: (t) => (t.text || (job.logprobs && t.logprobs) ? { ...head, choices: [choice(t.text, job.logprobs && t.logprobs ? lp([t.logprobs]) : null, null)] } : undefined),
      last: (finish) => ({ ...head, choices: [choice('', null, finish)] }),
      usage: (c) => ({ ...head, choices: [], usage: usage(c) }),
    });
  }

  interface Shapes {
    whole(c: Completion, finish: string): unknown;
    first?(): unknown;
    token(t: GeneratedToken): unknown;
    last(finish: string): unknown;
    usage(c: Completion): unknown;
  }

  /** Runs one generation and writes it whole or as server-sent events; a client gone aborts it. */
  async function generate(res: ServerResponse, job: Job, ids: number[], shape: Shapes): Promise<void> {
    const limit = budget(ids, job);
    const ac = new AbortController();
    running.add(ac);
    const gone = () => { if (!res.writableFinished) ac.abort(); };
    res.on('close', gone);
    const it = model.generate(ids, { ...job.gen, maxTokens: limit, signal: ac.signal });
    try {
      let r = await it.next();
      if (ac.signal.aborted) return;
      if (!job.stream) {
        while (!r.done) r = await it.next();
        if (!ac.signal.aborted) json(res, 200, shape.whole(r.value, finishReason(r.value, limit, job)));
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
      const send = (o: unknown) => event(res, JSON.stringify(job.includeUsage ? { ...(o as object), usage: (o as { usage?: unknown }).usage ?? null } : o));
      if (shape.first) await send(shape.first());
      while (!r.done) {
        const chunk = shape.token(r.value);
        if (chunk) await send(chunk);
        if (ac.signal.aborted) return;
        r = await it.next();
      }
      if (ac.signal.aborted) return;
      await send(shape.last(finishReason(r.value, limit, job)));
      if (job.includeUsage) await send(shape.usage(r.value));
      await event(res, '[DONE]');
      res.end();
    } catch (e) {
      if (ac.signal.aborted) return; // the client left (or the server closes): nothing to answer
      throw e;
    } finally {
      res.off('close', gone);
      running.delete(ac);
      await it.return(undefined as never).catch(() => {});
    }
  }

  function finishReason(c: Completion, limit: number, job: Job): 'stop' | 'length' {
    if (c.ids.length < limit) return 'stop';
    const last = c.ids.at(-1);
    if (last !== undefined && model.config.eosIds.includes(last)) return 'stop';
    const stop = job.gen.stop === undefined ? [] : ([] as string[]).concat(job.gen.stop);
    if (stop.length) {
      const all = model.tokenizer.decode(c.ids);
      if (stop.some((s) => all.includes(s))) return 'stop';
    }
    return 'length';
  }

  await new Promise<void>((resolve, reject) => {
    const port = opts.port ?? 8080;
    const fail = (e: NodeJS.ErrnoException) => reject(listenError(e, port, opts.host ?? '127.0.0.1'));
    server.once('error', fail);
    server.listen(port, opts.host ?? '127.0.0.1', () => { server.off('error', fail); resolve(); });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' || addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    modelId,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((r) => server.close(() => r()));
        for (const ac of running) ac.abort();
        server.closeIdleConnections();
        await Promise.allSettled([...handlers]);
        server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();
const now = () => Math.floor(Date.now() / 1000);

function json(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(s) });
  res.end(s);
}

/** One server-sent event; waits while the socket's buffer is full (or until the client is gone). */
function event(res: ServerResponse, data: string): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  if (res.write(`data: ${data}\n\n`)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { res.off('drain', done); res.off('close', done); resolve(); };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** An error as OpenAI writes it; unexpected ones are a 500 with their message only. */
function fail(res: ServerResponse, e: unknown): void {
  const err = e instanceof ApiError ? e : new ApiError(500, (e as Error)?.message || String(e), 'server_error');
  if (res.headersSent) {
    // A stream already under way: the error as a last event, then the stream ends.
    if (!res.destroyed) { res.write(`data: ${JSON.stringify(err.body())}\n\n`); res.end(); }
    return;
  }
  if (err.status === 413) res.setHeader('Connection', 'close');
  json(res, err.status, err.body());
}

/** The request body, refused with 413 past `limit` bytes (by Content-Length, or as it arrives). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () => new ApiError(413, `The request body is larger than the server's limit of ${limit} bytes.`, 'invalid_request_error', null, 'request_too_large');
  if (Number(req.headers['content-length'] ?? 0) > limit) { req.resume(); return Promise.reject(tooLarge()); }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const onData = (c: Buffer) => {
      n += c.length;
      if (n <= limit) { chunks.push(c); return; }
      req.off('data', onData);
      req.resume();
      reject(tooLarge());
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** A listen failure as one line a user can act on (the code stays on the error). */
function listenError(e: NodeJS.ErrnoException, port: number, host: string): Error {
  const msg = e.code === 'EADDRINUSE' ? `port ${port} is in use (--port N to choose another)`
    : e.code === 'EACCES' ? `port ${port} needs privileges on this system (--port N with N ≥ 1024)`
    : e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND' ? `cannot listen on ${host}: no such local address (--host)`
    : e.message;
  return Object.assign(new Error(msg), { code: e.code });
}
