// The page's side of the engine worker (worker.ts): a model with the interface of the Node API's
// Model — generate() streams tokens, complete(), tokenize(), perplexity(), close() — whose calls
// travel to the worker as messages (protocol.ts), as web-llm's WebWorkerMLCEngine does.
import type { Completion, GenerateOptions, GeneratedToken, PerplexityOptions } from '../core/model.js';
import type { FlashStats } from '../core/model.js';
import type { MemoryReport } from '../core/engine.js';
import type { ResolvedOptions } from '../core/options.js';
import type { ModelConfig } from '../format/config.js';
import type { ModelSpec } from './opfs.js';
import type { ChatMessage } from '../core/chat-template.js';
import type { Reply, Request, WorkerLoadOptions } from './protocol.js';
import { relaxedSimd } from '../core/relaxed.js';

/** What a loaded model is, as the worker reports it. */
export interface ModelInfo {
  name: string;
  mode: string;
  model_bytes: number;
  memory: MemoryReport;
  config: ModelConfig;
  simd: boolean;
  /** What runs the arithmetic: "wasm simd", or the WebGPU adapter. */
  device: string;
  options: ResolvedOptions;
}

type Listener = { progress?: (phase: string, done: number, total: number) => void; token?: (t: GeneratedToken, stats: Extract<Reply, { type: 'token' }>['stats']) => void;
  resolve: (v: unknown) => void; reject: (e: Error) => void };

/** A request that does not fit the union as a literal (its id is added on send). */
export type Body = Request extends infer R ? R extends { id: number } ? Omit<R, 'id'> : never : never;

export class WorkerModel {
  private next = 1;
  private nextSession = 1;
  private readonly waiting = new Map<number, Listener>();
  /** The loaded model, after load(). */
  info: ModelInfo | undefined;
  /** Stats of the last generate() run. */
  lastStats: Completion['stats'] | undefined;

  /** `worker`: the engine worker (flashneuron/worker, built as worker.js). */
  constructor(readonly worker: Worker) {
    worker.onmessage = ({ data: m }: MessageEvent<Reply>) => {
      const l = this.waiting.get(m.id);
      if (!l) return;
      if (m.type === 'progress') l.progress?.(m.phase, m.done, m.total);
      else if (m.type === 'token') l.token?.(m.token, m.stats);
      else {
        this.waiting.delete(m.id);
        if (m.type === 'result') l.resolve(m.value); else l.reject(new Error(m.message));
      }
    };
  }

  /**
   * Hands the worker the engine's wasm builds (fetched from these URLs). `threads` (the threads
   * build) lets it compute on several threads where the page is cross-origin isolated
   * (COOP/COEP headers: shared memory); it is fetched only there. `relaxed` / `relaxedThreads`
   * (the relaxed-SIMD builds) are fetched only where the browser has relaxed SIMD, and the worker
   * runs the best build that validates.
   */
  async init(wasm: { simd: string | URL; plain: string | URL; threads?: string | URL; relaxed?: string | URL; relaxedThreads?: string | URL }): Promise<void> {
    const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
    const relaxed = relaxedSimd();
    const get = (u: string | URL | undefined, wanted = true) => u === undefined || !wanted ? undefined : fetch(u).then((r) => {
      if (!r.ok) throw new Error(`cannot fetch ${u}: HTTP ${r.status}`);
      return r.arrayBuffer();
    });
    const [simd, plain, threads, rs, rt] = await Promise.all([get(wasm.simd), get(wasm.plain), get(wasm.threads, isolated),
      get(wasm.relaxed, relaxed), get(wasm.relaxedThreads, relaxed && isolated)]);
    const body = { op: 'init' as const, simd: simd!, plain: plain!, ...(threads ? { threads } : {}), ...(rs ? { relaxed: rs } : {}), ...(rt ? { relaxedThreads: rt } : {}) };
    await this.call(body, {}, [simd!, plain!, threads, rs, rt].filter((b): b is ArrayBuffer => b !== undefined));
  }

  /** Puts the model into OPFS (once) and loads it with `options` (memory budget, mode, device …). */
  async load(spec: ModelSpec, options: WorkerLoadOptions = {}, onProgress?: (phase: string, done: number, total: number) => void): Promise<ModelInfo> {
    this.info = undefined;
    this.info = await this.call({ op: 'load', spec, options }, { progress: onProgress }) as ModelInfo;
    return this.info;
  }

  /** Streams generated tokens (the model's generate(), in the worker). Abort with options.signal or stop(). */
  generate(prompt: string | number[], options: GenerateOptions = {}): AsyncGenerator<GeneratedToken, Completion> {
    const { signal, ...rest } = options;
    return this.stream({ op: 'generate', prompt, options: rest }, signal);
  }

  /** A conversation held in the worker (ChatSession there): the Node API's ChatSession interface. */
  async session(options: { system?: string; template?: string; messages?: ChatMessage[]; /** fork of this session */ from?: number } = {}): Promise<WorkerSession> {
    const id = this.nextSession++;
    await this.call({ op: 'session', session: id, options });
    return new WorkerSession(this, id);
  }

  /** Streams the tokens of a request (generate, or a session's turn) until its result. */
  stream(body: Body, signal?: AbortSignal): AsyncGenerator<GeneratedToken, Completion> {
    const queue: GeneratedToken[] = [];
    let wake: (() => void) | undefined, done = false, result: Completion | undefined, failure: Error | undefined;
    const onAbort = () => this.stop();
    const self = this;
    return (async function* () {
      signal?.addEventListener('abort', onAbort);
      self.call(body, { token: (t) => { queue.push(t); wake?.(); } })
        .then((v) => { result = v as Completion; }, (e) => { failure = e; })
        .finally(() => { done = true; wake?.(); });
      try {
        for (;;) {
          while (queue.length) yield queue.shift()!;
          if (done) break;
          await new Promise<void>((r) => { wake = r; });
          wake = undefined;
        }
        if (failure) throw failure;
        self.lastStats = result!.stats;
        return result!;
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    })();
  }

  /** Runs generate() to the end. */
  async complete(prompt: string | number[], options: GenerateOptions = {}): Promise<Completion> {
    const it = this.generate(prompt, options);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
    }
  }

  tokenize(text: string, options: { addSpecialTokens?: boolean } = {}): Promise<number[]> {
    return this.call({ op: 'tokenize', text, options }) as Promise<number[]>;
  }

  perplexity(text: string, options: PerplexityOptions = {}): Promise<{ tokens: number; nll: number; ppl: number; stats: FlashStats }> {
    const { signal: _s, onProgress, ...rest } = options;
    return this.call({ op: 'perplexity', text, options: rest }, { progress: onProgress && ((phase, d, t) => onProgress(d, t, phase)) }) as Promise<{ tokens: number; nll: number; ppl: number; stats: FlashStats }>;
  }

  /** Stops a generate() in flight (it ends with the tokens so far). */
  stop(): void {
    this.worker.postMessage({ id: 0, op: 'stop' } satisfies Request);
  }

  close(): void {
    void this.call({ op: 'close' }).catch(() => {});
    this.info = undefined;
  }

  /** Sends a request and settles with its result. */
  call(body: Body, on: Omit<Listener, 'resolve' | 'reject'> = {}, transfer: Transferable[] = []): Promise<unknown> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { ...on, resolve, reject });
      this.worker.postMessage({ ...body, id } as Request, transfer);
    });
  }
}

/** A conversation on a WorkerModel: send / reply / fork / reset / messages, as ChatSession in Node. */
export class WorkerSession {
  constructor(private readonly model: WorkerModel, readonly id: number) {}

  /** Streams the answer to `content`; once it ends, the turn is part of the conversation. */
  send(content: string, options: GenerateOptions = {}): AsyncGenerator<GeneratedToken, Completion> {
    const { signal, ...rest } = options;
    return this.model.stream({ op: 'send', session: this.id, content, options: rest }, signal);
  }

  async reply(content: string, options: GenerateOptions = {}): Promise<Completion> {
    const it = this.send(content, options);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
    }
  }

  /** The conversation so far. */
  messages(): Promise<ChatMessage[]> {
    return this.model.call({ op: 'messages', session: this.id }) as Promise<ChatMessage[]>;
  }

  reset(): Promise<void> {
    return this.model.call({ op: 'reset', session: this.id }).then(() => {});
  }

  /** A session that continues from here on its own. */
  fork(): Promise<WorkerSession> {
    return this.model.session({ from: this.id });
  }
}
