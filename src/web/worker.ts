// The engine in a dedicated Web Worker. It only forwards: the model goes into OPFS (opfs.ts),
// then the one load path every host takes (core/load.ts: resolveOptions decides, as for the
// CLI and the Node API), and the model's own generate / tokenize / perplexity. Requests and
// replies: protocol.ts.
import { openModel } from '../core/load.js';
import { ChatSession } from '../core/session.js';
import type { Model } from '../core/model.js';
import { setEngineBinaries } from '../core/wasm.js';
import { setEngineHost } from '../core/engine.js';
import { readImageHeader } from '../format/image.js';
import { decodePredictor, modelFingerprint } from '../predictor/format.js';
import { decodeThresholds, type FfnThresholds } from '../predictor/thresholds.js';
import { openOpfs, storeModel, writeAll, writeOpfs, type ModelSpec } from './opfs.js';
import type { Reply, Request } from './protocol.js';

const post = (m: Reply) => (self as unknown as Worker).postMessage(m);

// Compute threads: nested workers (compute-worker.js, built beside this one) on the engine's
// shared memory — where the page is cross-origin isolated and the threads build was supplied.
setEngineHost({
  computeThreads(module, memory, block, n) {
    const workers: Worker[] = [];
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL('./compute-worker.js', import.meta.url), { type: 'module' });
      w.postMessage({ module, memory, block });
      workers.push(w);
    }
    return { close() { for (const w of workers) w.terminate(); } };
  },
});
let model: Model | undefined;
let stop: AbortController | undefined;
/** The conversations the page holds on the loaded model (ChatSession, the same as in Node). */
const sessions = new Map<number, ChatSession>();

function sessionOf(id: number): ChatSession {
  const s = sessions.get(id);
  if (!s) throw new Error('no such session (the model was loaded again or closed)');
  return s;
}

self.onmessage = async (ev: MessageEvent<Request>) => {
  const m = ev.data;
  try {
    post({ id: m.id, type: 'result', value: await handle(m) });
  } catch (e) {
    post({ id: m.id, type: 'error', message: (e as Error).message });
  }
};

async function handle(m: Request): Promise<unknown> {
  switch (m.op) {
    case 'init': setEngineBinaries(new Uint8Array(m.simd), new Uint8Array(m.plain), undefined, m.threads ? new Uint8Array(m.threads) : undefined,
      { ...(m.relaxed ? { relaxed: new Uint8Array(m.relaxed) } : {}), ...(m.relaxedThreads ? { 'relaxed-threads': new Uint8Array(m.relaxedThreads) } : {}) }); return null;
    case 'load': return load(m.id, m);
    case 'generate': return generate(m.id, m);
    case 'tokenize': return loaded().tokenize(m.text, m.options);
    case 'perplexity': return loaded().perplexity(m.text, { ...m.options, onProgress: (done, total, phase) => post({ id: m.id, type: 'progress', phase, done, total }) });
    case 'session': {
      // A new conversation, or (from) a fork of one the worker holds.
      const base = m.options.from !== undefined ? sessionOf(m.options.from) : undefined;
      sessions.set(m.session, base ? base.fork() : new ChatSession(loaded(), m.options));
      return null;
    }
    case 'send': return generate(m.id, m);
    case 'messages': return sessionOf(m.session).messages;
    case 'reset': sessionOf(m.session).reset(); return null;
    case 'stop': stop?.abort(); return null;
    case 'close': model?.close(); model = undefined; sessions.clear(); return null;
  }
}

function loaded(): Model {
  if (!model) throw new Error('no model loaded');
  return model;
}

async function load(id: number, m: Extract<Request, { op: 'load' }>): Promise<unknown> {
  model?.close();
  model = undefined;
  sessions.clear();
  const progress = (phase: string, done: number, total: number) => post({ id, type: 'progress', phase, done, total });
  const predictorBytes = await storeModel(m.spec, progress);
  const src = await openOpfs(m.spec.name, { parallel: m.options.io === 'async' });
  try {
    const header = readImageHeader(src);
    const predictor = predictorBytes && decodePredictor(predictorBytes, m.spec.predictorUrl ?? 'flashneuron.fnpred', modelFingerprint(header));
    const thresholds = await storedThresholds(m.spec, m.options, modelFingerprint(header));
    model = await openModel({ image: src, header, size: src.size, label: m.spec.name, predictor, thresholds },
      { ...m.options, wasi: 'shim', onProgress: (done, total, phase) => progress(phase, done, total) });
  } catch (e) {
    src.close();
    throw e;
  }
  const e = model.engine;
  return { name: m.spec.name, mode: e.mode, model_bytes: src.size, memory: e.memory, config: e.config, simd: e.simd, device: e.backend.name, options: model.options };
}

/**
 * The calibrated thresholds of a SiLU-gated model (sparse mode without a predictor): those the page
 * names (spec.thresholdsUrl, or flashneuron.fnthr among a folder's files), checked against the model
 * and kept in OPFS as NAME.fnthr beside the image; else the NAME.fnthr kept there before. As in
 * Node, a file calibrated for another model is refused in one line.
 */
async function storedThresholds(spec: ModelSpec, options: { thresholdsPath?: string }, fingerprint: string): Promise<FfnThresholds | undefined> {
  if (options.thresholdsPath !== undefined) throw new Error('thresholdsPath is a file path (Node): in a page, give the model spec a thresholdsUrl, or pass ffnThresholds');
  const dir = await navigator.storage.getDirectory();
  const name = spec.name.replace(/\.fnimg$/i, '') + '.fnthr';
  let text: string | undefined, label = name;
  const picked = spec.files?.find((f) => f.name === 'flashneuron.fnthr');
  if (spec.thresholdsUrl !== undefined) {
    const r = await fetch(spec.thresholdsUrl);
    if (!r.ok) throw new Error(`cannot fetch ${spec.thresholdsUrl}: HTTP ${r.status}`);
    [text, label] = [await r.text(), spec.thresholdsUrl];
  } else if (picked) {
    [text, label] = [await picked.text(), picked.name];
  }
  if (text === undefined) {
    const kept = await dir.getFileHandle(name).then((h) => h.getFile()).catch(() => undefined);
    return kept && decodeThresholds(await kept.text(), `${name} (OPFS)`, fingerprint);
  }
  const t = decodeThresholds(text, label, fingerprint), bytes = new TextEncoder().encode(text);
  await writeOpfs(name, bytes.length, (h) => writeAll(h, bytes, 0), () => {});
  return t;
}

/** A generation (or a session's turn), its tokens streamed to the page. */
async function generate(id: number, m: Extract<Request, { op: 'generate' | 'send' }>): Promise<unknown> {
  const mdl = loaded();
  stop = new AbortController();
  const opts = { ...m.options, signal: stop.signal };
  const it = m.op === 'send' ? sessionOf(m.session).send(m.content, opts) : mdl.generate(m.prompt, opts);
  const t0 = performance.now();
  let n = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
    n++;
    const s = mdl.engine.stats();
    post({ id, type: 'token', token: r.value, stats: { tokens: n, tokens_per_s: (1000 * n) / (performance.now() - t0), bytes_read: s.bytes_read, memory_bytes: mdl.engine.memoryBytes } });
  }
}
