// The engine in a dedicated Web Worker: the model image lives in OPFS and is read from there,
// through the WASI shim, straight into wasm memory. Messages (see web/app.js):
//   in  { type: 'init', simd, plain }                       the wasm builds (ArrayBuffers)
//   in  { type: 'load', name, url? | file? | files? (a Hugging Face folder), predictorUrl?, memory?, mode?, window?,
//         io? ('async': reads as parallel Blob reads of the OPFS file instead of its sync handle),
//         device? ('cpu' | 'gpu' | 'auto', default auto: WebGPU when the browser offers a hardware adapter) }
//   in  { type: 'generate', prompt, maxTokens, temperature, topK, topP, seed }   { type: 'stop' }
//   out { type: 'progress', phase, done, total } { type: 'ready', info } { type: 'token', id, text, stats }
//       { type: 'done', completion } { type: 'error', message }
import { Device, Engine, FfnMode } from '../src/engine.js';
import { Model, parseMemory, pickRank } from '../src/model.js';
import { Tokenizer } from '../src/tokenizer.js';
import { setEngineBinaries } from '../src/wasm.js';
import { decodePredictor, modelFingerprint, Predictor } from '../src/predictor.js';
import { readImageHeader, writeImage } from '../src/image.js';
import { openHFCheckpoint } from '../src/hf.js';
import { filesCheckpointFS, openOpfs, streamFill, writeAll, writeOpfs } from '../src/opfs.js';

const post = (m: unknown) => (self as unknown as Worker).postMessage(m);
let model: Model | undefined;
let stop: AbortController | undefined;

self.onmessage = async (ev: MessageEvent) => {
  const m = ev.data;
  try {
    if (m.type === 'init') setEngineBinaries(new Uint8Array(m.simd), new Uint8Array(m.plain));
    else if (m.type === 'load') await load(m);
    else if (m.type === 'generate') await generate(m);
    else if (m.type === 'stop') stop?.abort();
  } catch (e) {
    post({ type: 'error', message: (e as Error).message });
  }
};

/** Streams a File or a fetched URL in chunks, with its size. */
async function source(m: { url?: string; file?: File }): Promise<{ total: number; chunks: AsyncIterable<Uint8Array> }> {
  if (m.file) {
    const reader = m.file.stream().getReader();
    return { total: m.file.size, chunks: iterate(reader) };
  }
  const r = await fetch(m.url!);
  if (!r.ok || !r.body) throw new Error(`cannot fetch ${m.url}: HTTP ${r.status}`);
  return { total: Number(r.headers.get('content-length') ?? 0), chunks: iterate(r.body.getReader()) };
}

async function* iterate(reader: ReadableStreamDefaultReader<Uint8Array>): AsyncIterable<Uint8Array> {
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    yield value;
  }
}

async function load(m: { name: string; url?: string; file?: File; files?: File[]; predictorUrl?: string; io?: 'wasi' | 'async'; memory?: string; mode?: FfnMode; window?: number; device?: Device }): Promise<void> {
  model?.close();
  model = undefined;
  // Written once into OPFS (checked before it gets its name), then read from there.
  const dir = await navigator.storage.getDirectory();
  const have = await dir.getFileHandle(m.name).then((h) => h.getFile()).catch(() => undefined);
  let predictorBytes: Uint8Array | undefined;
  if (m.files?.length) {
    // A Hugging Face folder: converted once, straight into OPFS; its predictor file, if any, is used.
    const fs = filesCheckpointFS(m.files);
    const ckpt = await openHFCheckpoint(fs);
    try {
      const total = m.files.reduce((a, f) => a + f.size, 0);
      await writeOpfs(m.name, total, (h) => {
        writeImage(ckpt, (bytes, pos) => writeAll(h, bytes, pos), (done, t, phase) => post({ type: 'progress', phase: `convert ${phase}`, done, total: t }));
      }, (src) => readImageHeader(src));
    } finally { ckpt.close(); }
    const pred = m.files.find((f) => f.name === 'flashneuron.fnpred');
    if (pred) predictorBytes = new Uint8Array(await pred.arrayBuffer());
  } else if (!have || m.file) {
    const { total, chunks } = await source(m);
    await writeOpfs(m.name, total, streamFill(chunks, total, (done, t) => post({ type: 'progress', phase: 'write to OPFS', done, total: t })), (src) => readImageHeader(src));
  }
  const src = await openOpfs(m.name, { parallel: m.io === 'async' });
  try {
    const header = readImageHeader(src);
    const memoryBytes = m.memory ? parseMemory(m.memory, src.size) : undefined;
    // Without a predictor a budget still works: a share of neurons kept, the rest read per token.
    const hasPredictor = !!(m.predictorUrl || predictorBytes);
    const mode: FfnMode = m.mode ?? (memoryBytes ? (hasPredictor ? 'sparse' : 'hybrid') : 'dense');
    let predictor: Predictor | undefined;
    if (mode === 'sparse') {
      if (!hasPredictor) throw new Error('sparse mode needs the model\'s predictor (flashneuron.fnpred, made by flashneuron train-predictor)');
      if (!predictorBytes) {
        const r = await fetch(m.predictorUrl!);
        if (!r.ok) throw new Error(`cannot fetch ${m.predictorUrl}: HTTP ${r.status}`);
        predictorBytes = new Uint8Array(await r.arrayBuffer());
      }
      predictor = decodePredictor(predictorBytes, m.predictorUrl ?? 'flashneuron.fnpred', modelFingerprint(header));
    }
    const p = predictor;
    const engine = Engine.open(src, {
      wasi: 'shim', mode, memoryBytes, window: m.window, contextLength: memoryBytes ? 192 : undefined,
      kvDtype: memoryBytes ? 'f16' : 'f32', io: m.io,
      // WebGPU takes the weights as stored: where it may run, the budget does not quantize them.
      residentDtype: m.device !== 'cpu' && (navigator as { gpu?: unknown }).gpu ? 'stored' : 'auto',
      predictor: p && pickRank(p, undefined),
      onProgress: (done, total, phase) => post({ type: 'progress', phase, done, total }),
    });
    await engine.setDevice(m.device ?? 'auto');
    const tokenizer = Tokenizer.fromJSON(engine.tokenizerJson, engine.header.tokenizer_config as any);
    model = new Model(engine, tokenizer, m.name);
    post({ type: 'ready', info: { name: m.name, mode, model_bytes: src.size, memory: engine.memory, config: engine.config, simd: engine.simd, device: engine.backend.name } });
  } catch (e) {
    src.close();
    throw e;
  }
}

async function generate(m: { prompt: string; maxTokens?: number; temperature?: number; topK?: number; topP?: number; seed?: number; stopAtEos?: boolean }): Promise<void> {
  if (!model) throw new Error('no model loaded');
  stop = new AbortController();
  const it = model.generate(m.prompt, { ...m, signal: stop.signal });
  const t0 = performance.now();
  let n = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) { post({ type: 'done', completion: r.value }); break; }
    n++;
    const s = model.engine.stats();
    post({ type: 'token', id: r.value.id, text: r.value.text, stats: { tokens: n, tokens_per_s: (1000 * n) / (performance.now() - t0), bytes_read: s.bytes_read, memory_bytes: model.engine.memoryBytes } });
  }
}
