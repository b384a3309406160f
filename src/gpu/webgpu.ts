// The WebGPU backend: the forward pass's arithmetic on the GPU (src/gpu/*.wgsl), the wasm
// still deciding which neurons to read and reading them (src/core/backend.ts has the step order).
//
// At load the resident weights are copied from wasm memory into GPU buffers once. Dense mode
// runs a whole token in one submission and reads back only the logits. With the FFN on flash
// each layer's FFN input is read back (the predictor and planner run in the wasm), and the GPU
// keeps a mirror of every layer's neuron cache: rows the wasm appends are written straight into
// the mirror, a swap-delete is repeated there by rows.wgsl (a copy on the GPU: the wasm moves
// no bytes, nothing is re-sent), and neurons streamed past a full cache go to a stream area. The FFN kernels then run over the list of
// wanted rows. Everything is allocated here, none of it per token.
import type { Backend } from '../core/backend.js';
import type { ModelConfig } from '../format/config.js';
import type { FfnLayout } from '../format/image.js';
import { widenToF32 } from '../format/dtype.js';
import { ABI, type EngineExports, type LayerSlot } from '../core/abi.js';
import { WGSL } from './shaders.js';
import { gpuLacks, type Gpu } from './adapter.js';

export { gpuLacks, openGpu, type Gpu } from './adapter.js';

/** What the backend needs of an engine (src/core/engine.ts). */
export interface GpuEngineView {
  wasm: EngineExports;
  config: ModelConfig;
  /** The FFN layout in wasm memory (dense: possibly the engine's matrix layout, see Engine). */
  ffn: FfnLayout;
  /** Dense: bytes of one layer's FFN in wasm memory. */
  ffnLayerBytes?: number;
  /** The FFN is read from flash (naive, hybrid, sparse): mirror the neuron caches. */
  flash: boolean;
  /** Largest storage binding to use (default: the device's limit; smaller forces row blocks, for tests). */
  maxBindingBytes?: number;
  /** The wasm needs each layer's FFN input (the predictor, or an oracle that inspects it). */
  readInput: boolean;
  contextLength: number;
}

const STORAGE = 0x80, COPY_SRC = 0x04, COPY_DST = 0x08, UNIFORM = 0x40, MAP_READ = 0x01;  // GPUBufferUsage
const NONE = 0xffffffff;
const CH = 32;          // rows per partial-sum chunk (ffn.wgsl)
const MAX_GROUPS = 65535;
const CHAIN_BATCH = 16; // greedy(): tokens per id read-back
const BOUNCE_BYTES = 8 << 20;   // write(): slice of shared wasm memory copied per writeBuffer

type Bind = GPUBindGroup;
/** One dispatch, or (parts) several: a matrix too large for one storage binding runs in row blocks. */
interface Dispatch { pipeline: GPUComputePipeline; bind: Bind; x: number; y?: number; parts?: Dispatch[] }

interface Layer {
  norm1: Dispatch; q: Dispatch; k: Dispatch; v: Dispatch; rope: Dispatch; attend: Dispatch; o: Dispatch; norm2: Dispatch;
  act: Dispatch; partial: Dispatch; reduce: Dispatch; scatter?: Dispatch;
  cache: GPUBuffer;          // dense: the layer's bundles; flash: the neuron-cache mirror
  xbRead: GPUBuffer;         // FFN input read back (flash modes)
}

export class WebGpuBackend implements Backend {
  readonly device = 'gpu';
  readonly name: string;
  private readonly dev: GPUDevice;
  private readonly w: EngineExports;
  private readonly cfg: ModelConfig;
  private readonly ffn: FfnLayout;
  private readonly flash: boolean;
  /** ffnInput reads each layer's FFN input back into the wasm (its predictor needs it). */
  readInput: boolean;
  /** Per layer: the mirror row of each neuron it received (a move looks up where the neuron was). */
  private slots: Int32Array[] = [];
  private pairs = new Uint32Array(0);
  private readonly layers: Layer[] = [];
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private buffers: GPUBuffer[] = [];
  private enc: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  // Activations and scratch
  private x!: GPUBuffer; private xb!: GPUBuffer; private logits!: GPUBuffer; private logitsRead!: GPUBuffer;
  private step!: GPUBuffer; private list!: GPUBuffer; private count!: GPUBuffer;
  private stream!: GPUBuffer; private movePairs!: GPUBuffer;
  private head!: { norm: Dispatch; lm: Dispatch };
  /** Greedy decoding on the GPU (dense, embeddings resident): argmax and embed, the ids ring and its read-backs. */
  private chain: { argmax: Dispatch; embed: Dispatch; ids: GPUBuffer; reads: GPUBuffer[] } | undefined;
  // Host-side staging for the per-layer lists (allocated once)
  private readonly rowList: Uint32Array;
  private readonly stepData = new Uint32Array(4);
  private readonly countData = new Uint32Array(4);
  private pack: Uint8Array;
  private nList = 0;
  private nStream = 0;
  private readonly bundle: number;
  /** Views of the whole wasm memory (it does not grow after loading). */
  private readonly bytes: Uint8Array;
  private readonly words: Int32Array;
  /** Where each part of a bundle lands in a cache row (split images read the parts apart). */
  private readonly parts: { row: number; len: number }[];
  private caps: number[] = [];

  private constructor(gpu: Gpu, view: GpuEngineView) {
    this.dev = gpu.device; this.w = view.wasm; this.cfg = view.config; this.ffn = view.ffn; this.flash = view.flash;
    this.readInput = view.readInput;
    this.name = gpu.name + (gpu.f16 ? ' (shader-f16)' : '');
    this.bundle = view.ffn.bundle_bytes;
    this.bytes = new Uint8Array(view.wasm.memory.buffer);
    this.words = new Int32Array(view.wasm.memory.buffer);
    this.parts = view.ffn.layout === 'split' ? view.ffn.parts! : [{ row: 0, len: view.ffn.bundle_bytes }];
    this.rowList = new Uint32Array(view.config.ffn);
    this.pack = new Uint8Array(0);
  }

  /** Mirrors the engine's resident weights on the GPU; throws if a shape is not supported. */
  static async create(gpu: Gpu, view: GpuEngineView): Promise<WebGpuBackend> {
    const b = new WebGpuBackend(gpu, view);
    const dev = gpu.device;
    dev.pushErrorScope('out-of-memory');
    dev.pushErrorScope('validation');
    try {
      b.build(gpu, view);
    } catch (e) {
      b.close();
      throw e;
    } finally {
      const invalid = await dev.popErrorScope(), oom = await dev.popErrorScope();
      const err = invalid ?? oom;
      if (err) { b.close(); throw new Error(`WebGPU backend setup failed on ${gpu.name}: ${err.message}`); }
    }
    dev.addEventListener('uncapturederror', (ev) => { b.failure ??= (ev as GPUUncapturedErrorEvent).error.message; });
    return b;
  }

  /** The first error the device reported while running (checked after every token). */
  private failure: string | undefined;

  private build(gpu: Gpu, view: GpuEngineView): void {
    const { config: c, wasm: w, ffn: f } = view;
    const missing = gpuLacks(c, view.contextLength);
    if (missing) throw new Error(`the WebGPU backend does not run ${missing} (${c.architecture}); use the wasm (--device cpu)`);
    const d = c.hidden, qDim = c.nHeads * c.headDim, kvDim = c.nKvHeads * c.headDim, ctx = view.contextLength;
    if (d % 2 || qDim % 2 || kvDim % 2 || c.headDim % 2) throw new Error('the WebGPU backend needs even widths');
    if (f.bundle_bytes % 16 || [f.up, f.gate, f.down].some((o) => o >= 0 && o % (f.dtype === 'f32' ? 8 : 4))) {
      throw new Error('the WebGPU backend needs bundle parts aligned to a pair of elements');
    }
    const dtName = (code: number) => {
      const n = (['f32', 'f16', 'bf16'] as const)[code];
      if (!n) throw new Error('the WebGPU backend runs f32, f16 and bf16 weights; this model has block-quantized (q8_0/q4_0) ones');
      return n;
    };
    if (f.dtype !== 'f32' && f.dtype !== 'f16' && f.dtype !== 'bf16') dtName(-1);
    const bufF32 = (n: number) => this.buffer(Math.max(n, 1) * 4, STORAGE | COPY_SRC | COPY_DST);
    const fromWasm = (ptr: number, bytes: number) => this.upload_(new Uint8Array(w.memory.buffer, ptr, bytes));
    // Small vectors (norm weights, biases) as f32, whatever their stored dtype.
    const vecF32 = (ptr: number, code: number, n: number): GPUBuffer => {
      if (!ptr) return this.dummy();
      const raw = new Uint8Array(w.memory.buffer, ptr, n * (code === 0 ? 4 : 2));
      return this.upload_(new Uint8Array(widenToF32(raw, dtName(code)).buffer));
    };
    const matrix = (ptr: number, code: number, rows: number, cols: number) => fromWasm(ptr, rows * cols * (code === 0 ? 4 : 2));

    this.x = bufF32(d); this.xb = bufF32(d);
    const q = bufF32(qDim), k = bufF32(kvDim), v = bufF32(kvDim), attOut = bufF32(qDim);
    const att = bufF32(c.nHeads * ctx);
    const h = bufF32(c.ffn);
    const part = bufF32(Math.ceil(c.ffn / CH) * d);
    this.logits = bufF32(c.vocab);
    this.logitsRead = this.buffer(c.vocab * 4, MAP_READ | COPY_DST);
    this.step = this.buffer(16, UNIFORM | COPY_DST);
    this.list = this.buffer(c.ffn * 4, STORAGE | COPY_DST);
    this.count = this.buffer(16, STORAGE | COPY_DST);
    const rope = c.ropeTheta > 0;
    const ropeCos = rope ? fromWasm(w.rope_cos_ptr(), ctx * (c.headDim / 2) * 4) : this.dummy();
    const ropeSin = rope ? fromWasm(w.rope_sin_ptr(), ctx * (c.headDim / 2) * 4) : this.dummy();

    const limit = Math.min(view.maxBindingBytes ?? Infinity, this.dev.limits.maxStorageBufferBindingSize);
    const matvec = (wPtr: number, code: number, rows: number, cols: number, xin: GPUBuffer, y: GPUBuffer, bias: GPUBuffer | null, acc: boolean): Dispatch => {
      const pipeline = this.pipeline('matvec', 'main', dtName(code), gpu.f16);
      const rowB = cols * (code === 0 ? 4 : 2);
      // Row blocks of a multiple of 64 rows keep the y and bias binding offsets 256-byte aligned.
      const block = rows * rowB <= limit ? rows : Math.floor(limit / rowB / 64) * 64;
      if (block < 1) throw new Error(`a ${rows}x${cols} matrix needs storage bindings of ${64 * rowB} bytes; this adapter allows ${limit}`);
      const parts: Dispatch[] = [];
      for (let r0 = 0; r0 < rows; r0 += block) {
        const n = Math.min(block, rows - r0);
        const params = this.uniform([n, cols, (bias ? 1 : 0) | (acc ? 2 : 0), 0]);
        const W = matrix(wPtr + r0 * rowB, code, n, cols);
        const part = (b: GPUBuffer) => (n === rows ? b : { buffer: b, offset: r0 * 4, size: n * 4 });
        const bind = this.bind(pipeline, [W, xin, part(y), bias ? part(bias) : this.dummy(), params]);
        parts.push({ pipeline, bind, x: Math.min(n, MAX_GROUPS), y: Math.ceil(n / MAX_GROUPS) });
      }
      return parts.length === 1 ? parts[0] : { ...parts[0], parts };
    };
    const norm = (wv: GPUBuffer, bv: GPUBuffer, xin: GPUBuffer, out: GPUBuffer): Dispatch => {
      const pipeline = this.pipeline('norm', 'main');
      const params = this.uniform([d, c.arch === 'opt' ? 0 : 1, 0, 0], [2, c.normEps]);
      return { pipeline, bind: this.bind(pipeline, [xin, wv, bv, out, params]), x: 1 };
    };
    const L = (l: number, slot: LayerSlot) => [w.layer_ptr(l, ABI[slot]), w.layer_dt(l, ABI[slot])] as const;
    const attnParams = this.uniform([c.nHeads, c.nKvHeads, c.headDim, ctx, rope ? 1 : 0, 0, 0, 0]);
    const pairBytes = f.dtype === 'f32' ? 8 : 4;
    const streamRows = view.flash ? c.ffn : 1;
    this.stream = this.buffer(streamRows * f.bundle_bytes, STORAGE | COPY_DST);
    let maxCap = 1;
    for (let l = 0; l < c.nLayers; l++) {
      const [ln1w, ln1wDt] = L(l, 'L_LN1_W'), [ln1b, ln1bDt] = L(l, 'L_LN1_B');
      const [ln2w, ln2wDt] = L(l, 'L_LN2_W'), [ln2b, ln2bDt] = L(l, 'L_LN2_B');
      const bias = (slot: LayerSlot, n: number) => { const [p, dt] = L(l, slot); return p ? vecF32(p, dt, n) : null; };
      const kc = bufF32(ctx * kvDim), vc = bufF32(ctx * kvDim);
      const ropeP = this.pipeline('attention', 'rope_kv'), attendP = this.pipeline('attention', 'attend');
      const cap = view.flash ? w.cache_capacity(l) : c.ffn;
      this.caps.push(cap);
      maxCap = Math.max(maxCap, cap);
      const [ffnPtr] = L(l, 'L_FFN');
      const layerBytes = view.flash ? c.ffn * f.bundle_bytes : view.ffnLayerBytes ?? c.ffn * f.bundle_bytes;
      if (Math.max(cap, 1) * f.bundle_bytes > limit || layerBytes > limit) {
        throw new Error(`the FFN of a layer (${layerBytes} bytes) needs a larger storage binding than this adapter allows (${limit})`);
      }
      const cache = view.flash ? this.buffer(Math.max(cap, 1) * f.bundle_bytes, STORAGE | COPY_DST) : fromWasm(ffnPtr, view.ffnLayerBytes ?? c.ffn * f.bundle_bytes);
      const ffnParams = this.uniform([d, f.bundle_bytes / pairBytes, f.up / pairBytes, f.gate >= 0 ? f.gate / pairBytes : NONE,
        f.down / pairBytes, f.bias >= 0 ? f.bias / 4 : NONE, c.act === 'relu' ? 0 : 1, cap,
        view.flash ? 1 : 0, c.ffn, 0, (f.bias_stride ?? 0) / 4]);
      const downB = bias('L_DOWN_B', d);
      if (downB) this.patchUniform(ffnParams, 10, 1);
      const fdt = f.dtype as 'f32' | 'f16' | 'bf16';
      const actP = this.pipeline('ffn', 'act', fdt, gpu.f16), partP = this.pipeline('ffn', 'partial', fdt, gpu.f16);
      const redP = this.pipeline('ffn', 'reduce', fdt, gpu.f16);
      const layer: Layer = {
        norm1: norm(vecF32(ln1w, ln1wDt, d), vecF32(ln1b, ln1bDt, d), this.x, this.xb),
        q: matvec(...L(l, 'L_Q'), qDim, d, this.xb, q, bias('L_QB', qDim), false),
        k: matvec(...L(l, 'L_K'), kvDim, d, this.xb, k, bias('L_KB', kvDim), false),
        v: matvec(...L(l, 'L_V'), kvDim, d, this.xb, v, bias('L_VB', kvDim), false),
        rope: { pipeline: ropeP, bind: this.bind(ropeP, [q, k, v, kc, vc, ropeCos, ropeSin, attnParams, this.step]), x: Math.ceil((qDim / 2 + kvDim / 2 + kvDim) / 64) },
        attend: { pipeline: attendP, bind: this.bind(attendP, [q, kc, vc, att, attOut, attnParams, this.step], [9, 10, 11, 12, 13, 7, 8]), x: c.nHeads },
        o: matvec(...L(l, 'L_O'), d, qDim, attOut, this.x, bias('L_OB', d), true),
        norm2: norm(vecF32(ln2w, ln2wDt, d), vecF32(ln2b, ln2bDt, d), this.x, this.xb),
        act: { pipeline: actP, bind: this.bind(actP, [cache, this.stream, this.xb, this.list, this.count, ffnParams, h], [0, 1, 2, 3, 4, 5, 6]), x: 0 },
        partial: { pipeline: partP, bind: this.bind(partP, [cache, this.stream, this.list, this.count, ffnParams, h, part], [0, 1, 3, 4, 5, 7, 8]), x: Math.ceil(d / 2 / 64) },
        reduce: { pipeline: redP, bind: this.bind(redP, [this.count, ffnParams, part, this.x, downB ?? this.dummy()], [4, 5, 9, 10, 11]), x: Math.ceil(d / 2 / 64) },
        cache,
        xbRead: this.buffer(view.flash ? d * 4 : 4, MAP_READ | COPY_DST),
      };
      this.layers.push(layer);
    }
    if (view.flash) {
      this.movePairs = this.buffer(maxCap * 8, STORAGE | COPY_DST);
      this.pack = new Uint8Array(c.ffn * f.bundle_bytes);
      this.pairs = new Uint32Array(maxCap * 2);
      this.slots = this.caps.map(() => new Int32Array(c.ffn).fill(-1));
      const scatterP = this.pipeline('rows', 'main');
      const params = this.uniform([f.bundle_bytes / 4, 0, 0, 0]);
      for (const layer of this.layers) layer.scatter = { pipeline: scatterP, bind: this.bind(scatterP, [layer.cache, this.movePairs, params]), x: 0 };
    }
    const normW = vecF32(w.global_ptr(ABI.G_NORM_W), w.global_dt(ABI.G_NORM_W), d);
    const normB = vecF32(w.global_ptr(ABI.G_NORM_B), w.global_dt(ABI.G_NORM_B), d);
    this.head = {
      norm: norm(normW, normB, this.x, this.xb),
      lm: matvec(w.global_ptr(ABI.G_LM_HEAD), w.global_dt(ABI.G_LM_HEAD), c.vocab, d, this.xb, this.logits, null, false),
    };
    const tok = w.global_ptr(ABI.G_TOK_EMBED), tokDt = w.global_dt(ABI.G_TOK_EMBED);
    const pos = w.global_ptr(ABI.G_POS_EMBED), posDt = w.global_dt(ABI.G_POS_EMBED);
    if (!view.flash && tok && (c.arch !== 'opt' || (pos && posDt === tokDt)) && c.vocab * d * (tokDt === 0 ? 4 : 2) <= limit) {
      const argmaxP = this.pipeline('greedy', 'argmax', dtName(tokDt), gpu.f16), embedP = this.pipeline('greedy', 'embed', dtName(tokDt), gpu.f16);
      const params = this.uniform([c.vocab, d, c.posOffset, c.arch === 'opt' ? 1 : 0]);
      const ids = this.buffer(CHAIN_BATCH * 4, STORAGE | COPY_SRC);
      const tokW = matrix(tok, tokDt, c.vocab, d);
      const posW = c.arch === 'opt' ? matrix(pos, posDt, c.maxPositions + c.posOffset, d) : this.dummy();
      this.chain = {
        argmax: { pipeline: argmaxP, bind: this.bind(argmaxP, [this.logits, ids, this.step, params]), x: 1 },
        embed: { pipeline: embedP, bind: this.bind(embedP, [this.step, params, tokW, posW, this.x, ids], [2, 3, 4, 5, 6, 7]), x: Math.ceil(d / 2 / 64) },
        ids,
        reads: [0, 1].map(() => this.buffer(CHAIN_BATCH * 4, MAP_READ | COPY_DST)),
      };
    }
  }

  /** Whether greedy() can run: dense, with the token embeddings resident. */
  get canChain(): boolean { return this.chain !== undefined; }

  /**
   * Greedy decoding chained on the GPU: from the logits of the last forward pass, `count`
   * tokens are chosen by argmax on the GPU, each embedded and run at positions pos, pos+1, ...
   * (the last one only chosen) without the host in the loop. Ids come back in batches, the
   * read-back of one batch overlapping the next batch's work. Stopping early (EOS) wastes at
   * most a batch of work; the positions past it are overwritten by the next sequence.
   */
  async *greedy(pos: number, count: number, batch = CHAIN_BATCH): AsyncGenerator<number[], void> {
    const ch = this.chain;
    if (!ch) throw new Error('greedy() needs the dense mode with resident token embeddings');
    batch = Math.max(1, Math.min(batch, CHAIN_BATCH));
    const q = this.dev.queue;
    let pending: { read: GPUBuffer; n: number; mapped: Promise<void> } | undefined;
    const take = async (p: { read: GPUBuffer; n: number; mapped: Promise<void> }) => {
      await p.mapped;
      const ids = Array.from(new Uint32Array(p.read.getMappedRange(0, p.n * 4)));
      p.read.unmap();
      if (this.failure) throw new Error(`WebGPU: ${this.failure}`);
      return ids;
    };
    try {
      for (let k = 0, b = 0; k < count; b++) {
        const n = Math.min(batch, count - k);
        for (let i = 0; i < n; i++, k++) {
          this.stepData[0] = pos + k; this.stepData[1] = i;
          q.writeBuffer(this.step, 0, this.stepData);
          this.run(ch.argmax);
          if (k < count - 1) {
            this.run(ch.embed);
            for (let l = 0; l < this.cfg.nLayers; l++) { this.attention(l); this.ffnDense(l); }
            this.run(this.head.norm);
            this.run(this.head.lm);
          }
          this.submit();
        }
        const read = ch.reads[b & 1];
        this.endPass();
        this.enc!.copyBufferToBuffer(ch.ids, 0, read, 0, n * 4);
        this.submit();
        const prev = pending;
        pending = { read, n, mapped: read.mapAsync(1) };
        if (prev) yield await take(prev);
      }
      if (pending) { const last = pending; pending = undefined; yield await take(last); }
    } finally {
      // Stopped early: let the outstanding read-back finish so its buffer can be mapped again.
      if (pending) { await pending.mapped.catch(() => {}); pending.read.unmap(); }
    }
  }

  // ---- the steps (src/core/backend.ts) ----

  begin(token: number, pos: number): void {
    const w = this.w;
    w.forward_begin(token, pos);   // embeddings, a flash read for untied ones, the window's clock
    this.stepData[0] = pos;
    this.dev.queue.writeBuffer(this.step, 0, this.stepData);
    this.write(this.x, 0, w.memory.buffer, w.x_ptr(), this.cfg.hidden * 4);
  }

  attention(l: number): void {
    const L = this.layers[l];
    for (const s of [L.norm1, L.q, L.k, L.v, L.rope, L.attend, L.o, L.norm2]) this.run(s);
  }

  ffnDense(l: number): void {
    const L = this.layers[l], n = this.cfg.ffn;
    this.run(L.act, n);
    this.run(L.partial, undefined, Math.ceil(n / CH));
    this.run(L.reduce);
  }

  /** Submits what is encoded (this layer's uploads must land after the last layer's FFN ran)
   *  and, where the wasm predicts from it, reads the FFN input back. */
  async ffnInput(l: number): Promise<void> {
    const L = this.layers[l], d = this.cfg.hidden, w = this.w;
    this.nList = 0; this.nStream = 0;
    this.endPass();
    if (!this.readInput) { this.submit(); return; }
    this.enc!.copyBufferToBuffer(this.xb, 0, L.xbRead, 0, d * 4);
    this.submit();
    await L.xbRead.mapAsync(1 /* GPUMapMode.READ */);
    const xb = new Float32Array(L.xbRead.getMappedRange(0, d * 4));
    new Float32Array(w.memory.buffer, w.xb_ptr(), d).set(xb);
    new Float32Array(w.memory.buffer, w.ffn_input_ptr() + l * d * 4, d).set(xb);
    L.xbRead.unmap();
  }

  /**
   * After ffn_begin: the wanted rows already cached, and the swap-deletes repeated on the GPU:
   * each row that now holds another neuron gets its bundle from the row that neuron held.
   */
  ffnCached(l: number): void {
    const w = this.w, L = this.layers[l], i32 = this.words;
    const hits = w.hit_count(), hitAt = w.hit_rows_ptr() >>> 2;
    for (let i = 0; i < hits; i++) this.rowList[i] = i32[hitAt + i];
    this.nList = hits;
    const live = w.cache_rows(l), movedAt = w.moved_ptr() >>> 2, nMoved = w.moved_count();
    const ids = w.cache_pointers_ptr(l) >>> 2, slot = this.slots[l], pairs = this.pairs;
    let m = 0;
    for (let k = 0; k < nMoved; k++) {
      const r = i32[movedAt + k];
      if (r >= live) continue;           // refilled, then dropped itself
      const n = i32[ids + r], from = slot[n];
      if (from === r) continue;          // refilled twice: the pair is already there
      pairs[2 * m] = r; pairs[2 * m + 1] = from; m++;
      slot[n] = r;
    }
    if (m === 0) return;
    this.dev.queue.writeBuffer(this.movePairs, 0, pairs, 0, 2 * m);
    this.run(L.scatter!, m);
    this.submit();   // the moves read rows this layer's appends (queued writes) will overwrite
  }

  /** After round_done: appended rows go straight into the mirror, streamed ones to the stream area. */
  ffnLanded(l: number): void {
    const w = this.w, L = this.layers[l], bundle = this.bundle, q = this.dev.queue;
    w.round_done(l);
    const first = w.landed_first(), cached = w.landed_cached(), items = w.landed_items();
    if (cached > 0) {
      this.write(L.cache, first * bundle, w.memory.buffer, w.cache_rows_ptr(l) + first * bundle, cached * bundle);
      const ids = w.cache_pointers_ptr(l) >>> 2, slot = this.slots[l], i32 = this.words;
      for (let r = first; r < first + cached; r++) {
        const n = i32[ids + r];
        slot[n] = r;
        this.rowList[this.nList++] = r;
      }
    }
    if (items > cached) {
      const mem = this.bytes, ptrs = this.words, at = w.item_ptrs_ptr() >>> 2;
      const n = items - cached;
      for (let i = 0; i < n; i++) {
        // Each part of the bundle (one part unless the image is split) from its staging address.
        for (let j = 0; j < this.parts.length; j++) {
          const p = this.parts[j], s = ptrs[at + (cached + i) * 4 + j] >>> 0;
          this.pack.set(mem.subarray(s, s + p.len), i * bundle + p.row);
        }
        this.rowList[this.nList++] = this.caps[l] + this.nStream + i;
      }
      q.writeBuffer(this.stream, this.nStream * bundle, this.pack, 0, n * bundle);
      this.nStream += n;
    }
  }

  ffnEnd(l: number): void {
    if (!this.flash) return;
    const L = this.layers[l], n = this.nList, q = this.dev.queue;
    this.countData[0] = n;
    q.writeBuffer(this.count, 0, this.countData);
    if (n > 0) {
      q.writeBuffer(this.list, 0, this.rowList, 0, n);
      this.run(L.act, n);
      this.run(L.partial, undefined, Math.ceil(n / CH));
    }
    this.run(L.reduce);
  }

  /** Final norm and lm_head; the logits are read back into wasm memory unless `read` is false
   *  (a prompt token whose logits nobody samples, or greedy() continuing on the GPU). */
  async end(read = true): Promise<void> {
    const w = this.w, V = this.cfg.vocab;
    this.run(this.head.norm);
    this.run(this.head.lm);
    if (!read) { this.submit(); return; }
    this.endPass();
    this.enc!.copyBufferToBuffer(this.logits, 0, this.logitsRead, 0, V * 4);
    this.submit();
    await this.logitsRead.mapAsync(1);
    new Float32Array(w.memory.buffer, w.logits_ptr(), V).set(new Float32Array(this.logitsRead.getMappedRange(0, V * 4)));
    this.logitsRead.unmap();
    if (this.failure) throw new Error(`WebGPU: ${this.failure}`);
  }

  close(): void {
    this.pass = null; this.enc = null;
    for (const b of this.buffers) b.destroy();
    this.buffers = [];
  }

  // ---- plumbing ----

  /** Encodes one dispatch; `rows` overrides the x/y workgroup count (one workgroup per row). */
  private run(s: Dispatch, rows?: number, y?: number): void {
    if (s.parts) { for (const p of s.parts) this.run(p); return; }
    this.enc ??= this.dev.createCommandEncoder();
    this.pass ??= this.enc.beginComputePass();
    this.pass.setPipeline(s.pipeline);
    this.pass.setBindGroup(0, s.bind);
    if (rows !== undefined) this.pass.dispatchWorkgroups(Math.min(rows, MAX_GROUPS), Math.ceil(rows / MAX_GROUPS));
    else this.pass.dispatchWorkgroups(s.x, y ?? s.y ?? 1);
  }

  private endPass(): void {
    this.enc ??= this.dev.createCommandEncoder();
    this.pass?.end();
    this.pass = null;
  }

  private submit(): void {
    this.endPass();
    this.dev.queue.submit([this.enc!.finish()]);
    this.enc = null;
  }

  private pipeline(file: string, entry: string, dtype?: 'f32' | 'f16' | 'bf16', f16 = false): GPUComputePipeline {
    const lib = dtype === undefined ? '' : dtype === 'f32' ? 'w_f32' : dtype === 'f16' && f16 ? 'w_f16' : 'w_half';
    const key = `${file}:${entry}:${lib}:${dtype}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const code = (lib ? WGSL[lib] + '\n' : '') + WGSL[file];
      const module = this.dev.createShaderModule({ code, label: file });
      const constants = lib === 'w_half' ? { DT: dtype === 'bf16' ? 2 : 1 } : undefined;
      p = this.dev.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: entry, constants }, label: key });
      this.pipelines.set(key, p);
    }
    return p;
  }

  private bind(p: GPUComputePipeline, buffers: (GPUBuffer | GPUBufferBinding)[], bindings?: number[]): Bind {
    return this.dev.createBindGroup({
      layout: p.getBindGroupLayout(0),
      entries: buffers.map((b, i) => ({ binding: bindings ? bindings[i] : i, resource: 'buffer' in b ? b : { buffer: b } })),
    });
  }

  private buffer(size: number, usage: number): GPUBuffer {
    const b = this.dev.createBuffer({ size: Math.ceil(Math.max(size, 16) / 16) * 16, usage });
    this.buffers.push(b);
    return b;
  }

  /**
   * queue.writeBuffer of `len` bytes (a multiple of 4) of `src` from `at`, to `offset`. WebGPU
   * takes no shared memory, and the threads build's wasm memory is shared: from there the bytes
   * go through a bounce buffer, a slice at a time (writeBuffer copies them at once, so one buffer
   * serves every call).
   */
  private write(b: GPUBuffer, offset: number, src: ArrayBufferLike, at: number, len: number): void {
    if (typeof SharedArrayBuffer === 'undefined' || !(src instanceof SharedArrayBuffer)) {
      this.dev.queue.writeBuffer(b, offset, src as ArrayBuffer, at, len);
      return;
    }
    for (let done = 0; done < len; done += BOUNCE_BYTES) {
      const n = Math.min(BOUNCE_BYTES, len - done);
      if (this.bounce.length < n) this.bounce = new Uint8Array(Math.min(BOUNCE_BYTES, Math.max(n, 2 * this.bounce.length)));
      this.bounce.set(new Uint8Array(src, at + done, n));
      this.dev.queue.writeBuffer(b, offset + done, this.bounce, 0, n);
    }
  }
  private bounce = new Uint8Array(0);

  private upload_(bytes: Uint8Array): GPUBuffer {
    const b = this.buffer(bytes.length, STORAGE | COPY_DST | COPY_SRC);
    this.write(b, 0, bytes.buffer, bytes.byteOffset, bytes.length & ~3);
    if (bytes.length & 3) {
      const tail = new Uint8Array(4);
      tail.set(bytes.subarray(bytes.length & ~3));
      this.dev.queue.writeBuffer(b, bytes.length & ~3, tail);
    }
    return b;
  }

  private dummyBuf: GPUBuffer | undefined;
  private dummy(): GPUBuffer { return this.dummyBuf ??= this.buffer(16, STORAGE); }

  /** A uniform of u32 words; `floats` puts f32 values at given word indices. */
  private uniform(words: number[], floats?: [number, number]): GPUBuffer {
    const data = new Uint32Array(Math.ceil(words.length / 4) * 4);
    data.set(words);
    if (floats) new Float32Array(data.buffer)[floats[0]] = floats[1];
    const b = this.buffer(data.byteLength, UNIFORM | COPY_DST);
    this.dev.queue.writeBuffer(b, 0, data);
    return b;
  }

  private patchUniform(b: GPUBuffer, word: number, value: number): void {
    this.dev.queue.writeBuffer(b, word * 4, new Uint32Array([value]));
  }
}
