// The engine: one wasm instance holding one model. It reads the image's sections through WASI
// fd_pread into its own memory, verifies their checksums, hands the weight pointers to the
// forward pass (assembly/model.ts) and exposes forward() and the logits.
import type { ModelConfig } from './config.js';
import { DTYPE_CODE, rowBytes, tensorBytes } from './config.js';
import { FileSource, FlashSource } from './flash.js';
import { ThreadReader } from './threadreader.js';
import { quantize } from './quant.js';
import { FfnLayout, ImageHeader, Progress, TensorEntry, f32ToF16, readImageHeader, readTokenizerJson, section, widenToF32 } from './image.js';
import { instantiateEngine, EngineExports } from './wasm.js';
import { Backend, IoReplayBackend, WasmBackend } from './backend.js';
import { openGpu, WebGpuBackend } from './gpu/webgpu.js';
import { createNodeWasi, NodeWasi } from '../wasi/node.js';
import { createWasiShim, PREOPEN_FD, WasiShim } from '../wasi/shim.js';

export type FfnMode = 'dense' | 'naive' | 'hybrid' | 'sparse';
/** Where the arithmetic runs: the wasm (cpu), a WebGPU adapter (gpu), or the GPU when a hardware one is present (auto). */
export type Device = 'cpu' | 'gpu' | 'auto';

/** The sparsity predictor as the engine runs it (src/predictor.ts trains and stores it). */
export interface EnginePredictor {
  rank: number;
  layers: { w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array; threshold: number; predicted_share?: number }[];
}

export interface EngineOptions {
  /** Use the SIMD build when the runtime supports it (default true). */
  simd?: boolean;
  /** KV cache length; defaults to the model's max positions. */
  contextLength?: number;
  /** Leave the token embeddings on flash, one row read per token (untied models; default: under a memory budget). */
  embeddingsOnFlash?: boolean;
  /** KV cache element type (default f32; f16 halves it, as llama.cpp does by default). */
  kvDtype?: 'f32' | 'f16';
  onProgress?: Progress;
  /** How the wasm reaches the file: the runtime's node:wasi (default for files) or the built-in shim. */
  wasi?: 'node' | 'shim';
  /**
   * Where the FFN lives. dense: in memory. naive: read whole from flash every token.
   * hybrid: a share of neurons kept, the rest read every token. sparse: only the neurons the
   * predictor (or an oracle through predict()) wants, through the windowed neuron cache.
   */
  mode?: FfnMode;
  /**
   * Sparse: tokens a neuron stays cached after it was last wanted (0 = no reuse; the paper's
   * window is 5), or 'lru' (default): it stays while the cache has room, and when the cache is
   * full the least recently used neurons make way (the window grows to what the budget holds).
   */
  window?: number | 'lru';
  /** Cap on the bytes of wasm memory the engine may hold (weights, predictor, caches, KV, buffers). */
  memoryBytes?: number;
  /** Neuron-cache rows per layer (default: sized from memoryBytes, else the whole FFN). */
  cacheRows?: number | number[];
  /** How the budget's neuron-cache rows are shared by layers (default: the predictor's expected set sizes, else evenly). */
  cacheWeights?: number[];
  /** Hybrid: share of each layer's neurons kept in memory (default: what the budget allows). */
  hybridShare?: number;
  /**
   * Sparse: the predictor, or a function giving the one to use for the bytes left after the
   * resident part (the caller picks a rank that fits); without one the host supplies the wanted
   * neurons with predict() (oracle).
   */
  predictor?: EnginePredictor | ((roomBytes: number, bytesPerCacheRow: number) => EnginePredictor);
  /**
   * Sparse: how the predictor's weights are held — 'q8_0' (default: int8 blocks, half the bytes
   * and time of f16, the rank padded to a multiple of 32) or 'f16' (as trained).
   */
  predictorDtype?: 'q8_0' | 'f16';
  /**
   * Hold the resident matrices (attention, embeddings, lm_head) as Q8_0, quantized while loading:
   * about half their bytes, left to the neuron caches under a budget. 'auto' (default): Q8_0 in
   * sparse and hybrid mode when the budget, with them as stored, leaves the predictor and the
   * neuron caches less room than the FFN's bytes; else as stored.
   */
  residentDtype?: 'q8_0' | 'stored' | 'auto';
  /** Sparse: probability above which the predictor marks a neuron (default: its calibrated per-layer thresholds). */
  threshold?: number;
  /** Staging buffer for reads (sparse: 128 KiB with io wasi, 256 KiB with the read thread, 512 KiB with io async; 1 MiB for naive/hybrid). */
  stagingBytes?: number;
  /** Planner costs: µs per read operation and per byte, and the merge gap in bytes. */
  planner?: { opUs: number; byteUs: number; gapBytes: number };
  /** Reads issued per round at most. */
  maxOps?: number;
  /** Longest single read with io 'async' (default 256 KiB: long extents become parallel reads). */
  maxReadBytes?: number;
  /**
   * FFN reads: 'wasi' (default) — the wasm reads through WASI fd_pread, one at a time;
   * 'async' — the host reads each round in parallel (queueDepth in flight, libuv pool) while the
   * wasm computes the cached neurons; needs a file path. `direct` opens the file with O_DIRECT
   * (cold reads: no page cache), where the filesystem allows it.
   * 'thread' — a worker thread reads each round with pread (page cache) while the wasm computes
   * the cached neurons (ThreadReader); needs a file path; its staging copy counts in the budget.
   */
  io?: 'wasi' | 'async' | 'thread';
  direct?: boolean;
  queueDepth?: number;
  /**
   * Load only the FFN-on-flash machinery (no resident weights, no arithmetic): forwardAsync then
   * replays a token's flash traffic — window, evictions, planned reads, cache inserts — exactly
   * as a real run issues it. For measuring I/O where the resident part exceeds wasm32's 4 GiB
   * (an f16 7B model; bench:table2). Flash modes only; the wanted neurons come from predict().
   */
  ioOnly?: boolean;
}

/** Memory the engine holds, by part (bytes). */
export interface MemoryReport {
  total: number; resident: number; resident_dtype: 'stored' | 'q8_0'; predictor: number; predictor_rank: number; neuron_cache: number; kv_cache: number; buffers: number;
  cache_rows: number[];
}

const READ_CHUNK = 16 << 20;
/** A round in flight on the read thread (forwardAsync waits on the thread, not a promise). */
const THREAD_ROUND = Symbol('thread round');
const SCRATCH = 64 << 10;
const ERRNO_NAMES: Record<number, string> = { 8: 'EBADF', 28: 'EINVAL', 29: 'EIO', 44: 'ENOENT', 52: 'ENOSYS', 76: 'ENOTCAPABLE' };

const GLOBAL_ROLES: Record<string, string> = {
  tok_embed: 'G_TOK_EMBED', pos_embed: 'G_POS_EMBED', norm_w: 'G_NORM_W', norm_b: 'G_NORM_B', lm_head: 'G_LM_HEAD',
};
const LAYER_ROLES: Record<string, string> = {
  ln1_w: 'L_LN1_W', ln1_b: 'L_LN1_B', q: 'L_Q', k: 'L_K', v: 'L_V', o: 'L_O', q_b: 'L_QB', k_b: 'L_KB', v_b: 'L_VB',
  o_b: 'L_OB', ln2_w: 'L_LN2_W', ln2_b: 'L_LN2_B', down_b: 'L_DOWN_B',
};

export class Engine {
  readonly config: ModelConfig;
  readonly contextLength: number;
  readonly mode: FfnMode;
  /** Bytes of wasm memory the engine holds (fixed after loading: nothing grows per token). */
  readonly memoryBytes: number;
  readonly memory: MemoryReport;
  /** Bytes of all FFN sections in the image. */
  readonly ffnBytes: number;
  private logitsView: Float32Array;
  private fd: number;

  private constructor(
    readonly header: ImageHeader,
    readonly source: FlashSource,
    readonly wasm: EngineExports,
    readonly simd: boolean,
    readonly tokenizerJson: string,
    /** The WASI provider (node:wasi object or shim), kept reachable for the instance's lifetime. */
    private wasi: NodeWasi | WasiShim,
    fd: number,
    contextLength: number,
    mode: FfnMode,
    memory: MemoryReport,
    /** Reads on a worker thread (io 'thread'). */
    private readonly thread?: ThreadReader,
  ) {
    this.config = header.config;
    this.fd = fd;
    this.contextLength = contextLength;
    this.mode = mode;
    this.memory = memory;
    this.memoryBytes = wasm.memory.buffer.byteLength + (thread?.bytes ?? 0);
    this.ffnBytes = header.ffn.bundle_bytes * header.config.ffn * header.config.nLayers;
    this.logitsView = this.view(wasm.logits_ptr(), this.config.vocab);
    this.cpu = new WasmBackend(wasm, simd ? 'wasm simd' : 'wasm');
    this.backend = this.cpu;
  }

  private readonly cpu: WasmBackend;
  /** What runs the forward pass's arithmetic (setDevice). */
  backend: Backend;

  /**
   * Moves the arithmetic to a WebGPU adapter. 'gpu' insists (a software adapter will do) and
   * throws where there is none; 'auto' takes a hardware adapter when the runtime offers one and
   * otherwise stays on the wasm, never failing. Returns the device now in use.
   */
  async setDevice(device: Device, opts: { shaderF16?: boolean; maxBindingBytes?: number } = {}): Promise<'cpu' | 'gpu'> {
    if (!['cpu', 'gpu', 'auto'].includes(device)) throw new Error(`unknown device ${device} (cpu, gpu or auto)`);
    if (this.backend instanceof IoReplayBackend) throw new Error('an I/O replay (ioOnly) runs no arithmetic: there is no device to choose');
    if (this.backend !== this.cpu) { this.backend.close(); this.backend = this.cpu; this.wasm.set_host_compute(0); }
    if (device === 'cpu') return 'cpu';
    let gpu;
    try {
      gpu = await openGpu({ allowFallback: device === 'gpu', shaderF16: opts.shaderF16 });
    } catch (e) {
      if (device === 'gpu') throw new Error(`WebGPU device request failed: ${(e as Error).message}`);
      return 'cpu';
    }
    if (!gpu) {
      if (device === 'gpu') throw new Error('no WebGPU adapter here (navigator.gpu is missing or offers none); use --device cpu or auto');
      return 'cpu';
    }
    try {
      this.backend = await WebGpuBackend.create(gpu, {
        wasm: this.wasm, config: this.config, ffn: this.ffnInMemory, flash: this.flash,
        ffnLayerBytes: this.flash ? undefined : section(this.header, 'ffn.0').length,
        readInput: this.memory.predictor_rank > 0, contextLength: this.contextLength, maxBindingBytes: opts.maxBindingBytes,
      });
    } catch (e) {
      gpu.device.destroy();
      if (device === 'gpu') throw e;
      return 'cpu';
    }
    if (this.flash) this.wasm.set_host_compute(1);
    return 'gpu';
  }

  /** Opens an image file (path) or any FlashSource and loads the model into a fresh wasm instance. */
  static open(image: string | FlashSource, opts: EngineOptions = {}): Engine {
    const src = typeof image === 'string' ? new FileSource(image, { direct: opts.direct, queueDepth: opts.queueDepth ?? 32 }) : image;
    try {
      return Engine.load(src, typeof image === 'string' ? image : undefined, opts);
    } catch (e) {
      src.close();
      throw e;
    }
  }

  private static load(src: FlashSource, path: string | undefined, opts: EngineOptions): Engine {
    const header = readImageHeader(src);
    const cfg = header.config, f = header.ffn;
    const mode: FfnMode = opts.mode ?? 'dense';
    if (!['dense', 'naive', 'hybrid', 'sparse'].includes(mode)) throw new Error(`unknown mode ${mode} (dense, naive, hybrid or sparse)`);
    const flash = mode !== 'dense';
    const ioOnly = opts.ioOnly ?? false;
    if (ioOnly && !flash) throw new Error('an I/O replay (ioOnly) needs a flash mode: naive, hybrid or sparse');
    if (ioOnly && opts.predictor) throw new Error('an I/O replay (ioOnly) takes the wanted neurons from predict(), not a predictor');
    if (f.layout === 'split' && !flash) throw new Error(`${src.name} has the unbundled (split) FFN layout of the ablation; it runs in the flash modes (naive, hybrid, sparse), not dense`);
    // Deno's and Bun's node:wasi fail reads into memory past 2 GiB (EFAULT): large images there use the shim.
    const rt = globalThis as { Deno?: unknown; process?: { versions?: { bun?: string } } };
    const nodeLike = !rt.Deno && !rt.process?.versions?.bun;
    const useNode = path !== undefined && (opts.wasi ?? (nodeLike || src.size < 2 ** 30 ? 'node' : 'shim')) === 'node';
    const nodeWasi = useNode ? createNodeWasi(path) : undefined;
    const shim = useNode ? undefined : createWasiShim([src]);
    const { exports: e, simd, instance } = instantiateEngine({ simd: opts.simd, wasiImports: nodeWasi?.imports ?? shim!.imports });
    shim?.bind(e.memory);
    if (nodeWasi) nodeWasi.start(instance as any); else e._initialize();
    const g = (n: string) => (e[n] as WebAssembly.Global).value as number;

    // The tokenizer stays with the host; the wasm holds only what the forward pass needs.
    const tokenizerJson = readTokenizerJson(src, header);

    // Everything is allocated before the first WASI call: memory never grows while the WASI
    // host may hold a view of it, nor in the token loop.
    const budget = opts.memoryBytes;
    const ctx = Math.min(cfg.maxPositions, opts.contextLength ?? cfg.maxPositions);
    e.model_config(cfg.arch === 'opt' ? g('ARCH_OPT') : g('ARCH_LLAMA'), cfg.nLayers, cfg.hidden, cfg.ffn, cfg.nHeads,
      cfg.nKvHeads, cfg.headDim, cfg.vocab, ctx, cfg.normEps, cfg.act === 'relu' ? g('ACT_RELU') : g('ACT_SILU'),
      cfg.ropeTheta, cfg.posOffset, cfg.hasGate ? 1 : 0);
    const kvDtype = opts.kvDtype ?? 'f32';
    if (kvDtype !== 'f32' && kvDtype !== 'f16') throw new Error(`kvDtype must be f32 or f16 (got ${kvDtype})`);
    e.set_kv_dtype(DTYPE_CODE[kvDtype]);
    e.model_init();
    const kvBytes = 2 * cfg.nLayers * ctx * cfg.nKvHeads * cfg.headDim * (kvDtype === 'f16' ? 2 : 4);
    // Dense: in memory the FFN becomes matrices — up rows, gate rows, down columns as rows, then
    // the up biases — so the first product of every neuron is one contiguous matvec (the kernels
    // address part p of neuron i as base + i * stride + offset either way).
    const part = (f.gate >= 0 ? f.gate : f.down) - f.up;
    const matrix = !flash && (f.layout ?? 'bundled') === 'bundled';
    const nParts = f.gate >= 0 ? 3 : 2;
    const memFfn: FfnLayout = matrix
      ? { dtype: f.dtype, bundle_bytes: part, up: 0, gate: f.gate >= 0 ? cfg.ffn * part : -1, down: (nParts - 1) * cfg.ffn * part,
          bias: f.bias >= 0 ? nParts * cfg.ffn * part : -1, ...(f.bias >= 0 ? { bias_stride: 4 } : {}) }
      : f;
    e.ffn_layout(memFfn.bundle_bytes, memFfn.up, Math.max(memFfn.gate, 0), memFfn.down, memFfn.bias);
    if (memFfn.bias_stride) e.ffn_bias_stride(memFfn.bias_stride);
    const resSec = section(header, 'resident');
    // Token embeddings of untied models can stay on flash: a token needs one row (one read).
    const embT = header.tensors.find((t) => t.role === 'tok_embed')!;
    const embBytes = tensorBytes(embT.dtype, embT.shape);
    const embOnFlash = !ioOnly && (opts.embeddingsOnFlash ?? (budget !== undefined && !cfg.tieWordEmbeddings));
    if (embOnFlash && cfg.tieWordEmbeddings) throw new Error('token embeddings cannot stay on flash when the lm_head shares them (tied)');
    const embSkip = embOnFlash ? { from: embT.offset, to: embT.offset + embBytes } : undefined;
    // The file name goes low in memory: node:wasi refuses pointers past 2 GiB (they arrive signed).
    const name = new TextEncoder().encode(src.name);
    const namePtr = e.alloc(name.length, 16);
    new Uint8Array(e.memory.buffer, namePtr, name.length).set(name);
    // residentDtype 'q8_0': matrices of the resident part (attention, embeddings, lm_head) are
    // quantized as they load, each at its own offset in a packed layout; the rest stays as stored.
    // 'auto' (the default) does so in the modes with neuron caches (sparse, hybrid) when, with
    // the weights as stored, the budget would leave the predictor and the caches less room than
    // the FFN's bytes: Q8_0 costs ≈ 0.05% perplexity, and the room it frees saves reads.
    const rd = opts.residentDtype ?? 'auto';
    if (!['q8_0', 'stored', 'auto'].includes(rd)) throw new Error(`residentDtype must be q8_0, stored or auto (got ${opts.residentDtype})`);
    const quantizable = (t: TensorEntry) => t !== (embSkip ? embT : undefined) && t.shape.length === 2 &&
      t.shape[1] % 32 === 0 && ['f32', 'f16', 'bf16'].includes(t.dtype);
    const placed = new Map<TensorEntry, number>();
    const storedBytes = resSec.length - (embSkip ? embBytes : 0);
    let q8Bytes = 0;
    for (const t of [...header.tensors].sort((a, b) => a.offset - b.offset)) {
      if (embSkip && t === embT) continue;
      q8Bytes = Math.ceil(q8Bytes / 64) * 64;
      placed.set(t, q8Bytes);
      q8Bytes += quantizable(t) ? t.shape[0] * rowBytes('q8_0', t.shape[1]) : tensorBytes(t.dtype, t.shape);
    }
    const ffnTotal = f.bundle_bytes * cfg.ffn * cfg.nLayers;
    const quantRes = !ioOnly && q8Bytes < storedBytes && (rd === 'q8_0' ||
      (rd === 'auto' && (mode === 'sparse' || mode === 'hybrid') && budget !== undefined && budget - e.alloc(0, 16) - storedBytes < ffnTotal));
    const quantizes = (t: TensorEntry) => quantRes && quantizable(t);
    const resBytes = quantRes ? q8Bytes : storedBytes;
    const resident = ioOnly ? 0 : e.alloc(resBytes, 4096);
    const scratch = embSkip || quantRes ? e.alloc(SCRATCH, 4096) : 0;
    if (embSkip) e.embed_on_flash(BigInt(resSec.offset + embT.offset), rowBytes(embT.dtype, cfg.hidden));
    const denseFfn = flash ? [] : Array.from({ length: cfg.nLayers }, (_, l) => e.alloc(section(header, `ffn.${l}`).length, 4096));

    // Bytes the neuron caches may fill once memory up to `top` is taken: each layer's cache also
    // holds its neuron → row map and last-use clock, and page rounding, alloc slack and the file
    // name take a few pages.
    const perLayerFixed = cfg.ffn * 8 + 3 * 4096;
    const cacheRoom = (budget: number, top: number) => budget - top - cfg.nLayers * perLayerFixed - 3 * 65536;
    let predBytes = 0, rowsPerLayer: number[] = [];
    let batched = false;
    const io = opts.io ?? 'wasi';
    if (!['wasi', 'async', 'thread'].includes(io)) throw new Error(`unknown io ${io} (wasi, async or thread)`);
    // io 'thread': the worker's copy of the staging buffer and plan, held outside wasm memory.
    let hostBytes = 0, threadArgs: [number, number] | undefined;
    let chosen: EnginePredictor | undefined;
    let predPtrs: { w1: number; b1: number; w2: number; b2: number }[] = [];
    if (flash) {
      if (io === 'thread') {
        if (!path) throw new Error("io 'thread' reads the model file on a worker thread: it needs the model as a file path");
        if (opts.direct) throw new Error("io 'thread' reads through the page cache; direct (O_DIRECT) reads take io 'async'");
      } else if (io === 'async' || opts.direct) {
        if (!src.readBatch) throw new Error(`${src.name}: this flash source has no parallel reads (readBatch); use io 'wasi'`);
        if (opts.direct && !path) throw new Error('direct (O_DIRECT) reads need the model as a file path');
      }
      batched = io !== 'wasi' || !!opts.direct;
      // Parallel reads want a staging buffer that holds many reads in flight; WASI reads one at a
      // time; the read thread wants a layer's misses in one round (a second cannot overlap compute).
      const staging = opts.stagingBytes ?? (mode === 'sparse' ? (io === 'thread' ? 256 << 10 : batched ? 512 << 10 : 128 << 10) : 1 << 20);
      const maxOps = opts.maxOps ?? Math.max(io === 'thread' ? 256 : 64, opts.queueDepth ?? 0);
      if (io === 'thread') { hostBytes = ThreadReader.bytesFor(staging, maxOps); threadArgs = [staging, maxOps]; }
      let pred = mode === 'sparse' ? opts.predictor : undefined;
      if (pred && typeof pred === 'function') {
        // A predictor of several ranks: the caller picks one for the room the resident part leaves.
        const top0 = e.alloc(0, 16) + staging + cfg.ffn * 48 + cfg.nLayers * cfg.ffn * 4 + hostBytes;
        const room = budget === undefined ? Infinity : cacheRoom(budget, top0);
        pred = pred(room, f.bundle_bytes + 4);
      }
      if (pred) checkPredictor(pred, cfg);
      const want = mode === 'sparse' ? (pred ? g('WANT_PREDICTOR') : g('WANT_HOST')) : g('WANT_ALL');
      const window = mode === 'hybrid' ? g('WINDOW_FOREVER') : mode === 'naive' ? 0 : (opts.window ?? 'lru') === 'lru' ? g('WINDOW_LRU') : opts.window as number;
      if (!(typeof window === 'number' && Number.isInteger(window) && window >= 0 && window < 1 << 24) && window !== g('WINDOW_LRU') && window !== g('WINDOW_FOREVER')) {
        throw new Error(`window must be a whole number of tokens ≥ 0 or 'lru' (got ${opts.window})`);
      }
      const align = batched && io !== 'thread' ? src.alignment ?? 1 : 1;
      e.flash_init(want, window, staging, maxOps, align);
      if (batched) e.set_max_op_bytes(opts.maxReadBytes ?? 256 << 10);
      chosen = pred;
      if (pred) {
        const before = e.alloc(0, 16);
        if (opts.predictorDtype !== undefined && !['q8_0', 'f16'].includes(opts.predictorDtype)) throw new Error(`predictorDtype must be q8_0 or f16 (got ${opts.predictorDtype})`);
        const q8 = (opts.predictorDtype ?? 'q8_0') === 'q8_0' && cfg.hidden % 32 === 0;
        // Q8_0 rows are whole blocks of 32: the rank is padded with zero components (relu(0) = 0).
        const r = q8 ? Math.ceil(pred.rank / 32) * 32 : pred.rank;
        e.predictor_init(r, q8 ? DTYPE_CODE.q8_0 : DTYPE_CODE.f16);
        predPtrs = pred.layers.map((L) => q8
          ? { w1: putQ8(e, padRows(L.w1, pred.rank, cfg.hidden, r, cfg.hidden), cfg.hidden), b1: putF32(e, padRows(L.b1, pred.rank, 1, r, 1)),
              w2: putQ8(e, padRows(L.w2, cfg.ffn, pred.rank, cfg.ffn, r), r), b2: putF32(e, L.b2) }
          : { w1: putF16(e, L.w1), b1: putF32(e, L.b1), w2: putF16(e, L.w2), b2: putF32(e, L.b2) });
        predBytes = e.alloc(0, 16) - before;
      }
      // Neuron caches: what the budget leaves, shared by layers in proportion to their wanted sets.
      const perRowOverhead = f.bundle_bytes + 4;
      const top = e.alloc(0, 16) + hostBytes;
      let totalRows: number;
      if (opts.cacheRows !== undefined) {
        rowsPerLayer = Array.isArray(opts.cacheRows) ? opts.cacheRows.slice() : new Array(cfg.nLayers).fill(opts.cacheRows);
        totalRows = rowsPerLayer.reduce((a, b) => a + b, 0);
      } else if (mode === 'naive') {
        rowsPerLayer = new Array(cfg.nLayers).fill(0);
        totalRows = 0;
      } else {
        const full = cfg.ffn * cfg.nLayers;
        if (budget === undefined) totalRows = mode === 'hybrid' ? Math.round(full * (opts.hybridShare ?? 0.5)) : full;
        else {
          const room = cacheRoom(budget, top);
          totalRows = Math.min(full, Math.floor(room / perRowOverhead));
          if (mode === 'hybrid' && opts.hybridShare !== undefined) totalRows = Math.min(totalRows, Math.round(full * opts.hybridShare));
        }
        const weights = opts.cacheWeights ?? (mode === 'sparse' && pred ? pred.layers.map((L) => Math.max(L.predicted_share ?? 1, 1e-3)) : new Array(cfg.nLayers).fill(1));
        if (weights.length !== cfg.nLayers || weights.some((w) => !(w > 0))) throw new Error(`cacheWeights needs ${cfg.nLayers} positive numbers`);
        rowsPerLayer = shareRows(Math.max(0, totalRows), weights, cfg.ffn, 16);
      }
      if (budget !== undefined) {
        const minimum = top + cfg.nLayers * (perLayerFixed + 16 * perRowOverhead) + 65536;
        if (mode !== 'naive' && rowsPerLayer.some((r) => r < 16)) {
          throw new Error(`memory budget ${fmtBytes(budget)} is too small for ${mode} mode: the resident part (weights, ` +
            `KV cache for ${ctx} tokens, predictor, buffers) needs ${fmtBytes(top)}; give at least ${fmtBytes(minimum)} ` +
            `(${(100 * minimum / src.size).toFixed(1)}% of the model)`);
        }
      }
      (f.layout === 'split' ? f.parts! : []).forEach((p, i) => e.flash_part(i, BigInt(p.base), p.len, p.row));
      for (let l = 0; l < cfg.nLayers; l++) {
        rowsPerLayer[l] = Math.max(0, Math.min(cfg.ffn, Math.floor(rowsPerLayer[l])));
        e.flash_layer(l, BigInt(section(header, `ffn.${l}`).offset), rowsPerLayer[l]);
      }
      if (opts.planner) {
        e.planner_costs(opts.planner.opUs, opts.planner.byteUs, Math.floor(opts.planner.gapBytes / f.bundle_bytes));
      }
    }
    const total = e.memory.buffer.byteLength + hostBytes;
    if (budget !== undefined && total > budget) {
      throw new Error(`memory budget ${fmtBytes(budget)} is too small: the resident part alone needs ${fmtBytes(total)} ` +
        `(${(100 * total / src.size).toFixed(1)}% of the model)`);
    }
    if (e.alloc(0, 16) === 0 || (resident === 0 && !ioOnly)) throw new Error(`model needs more than the 4 GiB of wasm memory wasm32 allows`);
    const cacheBytes = rowsPerLayer.reduce((a, r) => a + r * (f.bundle_bytes + 4) + cfg.ffn * 8, 0);
    const memory: MemoryReport = {
      total, resident_dtype: quantRes ? 'q8_0' : 'stored', resident: ioOnly ? 0 : resBytes + (flash ? 0 : denseFfn.length * section(header, 'ffn.0').length),
      predictor: predBytes, predictor_rank: chosen?.rank ?? 0, neuron_cache: cacheBytes, kv_cache: kvBytes, buffers: 0, cache_rows: rowsPerLayer,
    };
    memory.buffers = Math.max(0, total - memory.resident - predBytes - cacheBytes - kvBytes);

    // Pointers of the predictor weights, set after allocation.
    if (chosen) {
      const thr = opts.threshold;
      if (thr !== undefined && !(thr > 0 && thr < 1)) throw new Error(`threshold must be a probability between 0 and 1 (got ${thr})`);
      chosen.layers.forEach((L, l) => {
        const p = predPtrs[l];
        e.predictor_layer(l, p.w1, p.b1, p.w2, p.b2, thr === undefined ? L.threshold : Math.log(thr / (1 - thr)));
      });
    }

    const fd = e.flash_open(PREOPEN_FD, namePtr, name.length);
    if (fd < 0) throw new Error(`${src.name}: cannot open through WASI (${errnoName(-fd)})`);

    // What the loader reads, for the progress bar.
    const sections = [...(ioOnly ? [] : ['resident']), ...denseFfn.map((_, l) => `ffn.${l}`)];
    const totalBytes = sections.reduce((a, n) => a + section(header, n).length, 0);
    let done = 0;
    // Reads a section, verifying its checksum; bytes in `skip` (left on flash) pass through the
    // scratch buffer for the checksum only, and later bytes land that much lower.
    const readSection = (name: string, ptr: number, skip?: { from: number; to: number }): number => {
      const s = section(header, name);
      let crc = 0;
      const run = (from: number, to: number, dst: number | undefined, sink?: (off: number, bytes: Uint8Array) => void) => {
        const chunk = dst === undefined ? SCRATCH : READ_CHUNK;
        for (let off = from; off < to; off += chunk) {
          const n = Math.min(chunk, to - off), p = dst === undefined ? scratch : dst + (off - from);
          const got = Number(e.flash_read(fd, p, n, BigInt(s.offset + off)));
          if (got < 0) throw new Error(`${src.name}: read of section ${name} failed (${ioCause(-got, shim)})`);
          if (got !== n) throw new Error(`${src.name}: image is truncated in section ${name}`);
          crc = e.crc32(crc, p, n) >>> 0;
          sink?.(off, new Uint8Array(e.memory.buffer, p, n));
          done += n;
          opts.onProgress?.(done, totalBytes, 'load');
        }
      };
      if (quantRes && name === 'resident') run(0, s.length, undefined, quantSink());
      else if (!skip) run(0, s.length, ptr);
      else { run(0, skip.from, ptr); run(skip.from, skip.to, undefined); run(skip.to, s.length, ptr + skip.from); }
      if (crc !== s.crc32) throw new Error(`${src.name}: checksum mismatch in section ${name} (file is corrupted)`);
      return ptr;
    };

    // The resident section streamed through the scratch buffer: tensors kept as stored are copied
    // out, the others quantized row by row (no full-size copy is ever held).
    function quantSink(): (off: number, bytes: Uint8Array) => void {
      // placed holds the tensors in file order and chunks arrive in order: tensors that ended
      // before a chunk are passed for good.
      const order = [...placed.keys()];
      const rows = new Map<TensorEntry, { buf: Uint8Array; fill: number; row: number }>();
      let first = 0;
      return (off, bytes) => {
        const end = off + bytes.length;
        while (first < order.length && order[first].offset + tensorBytes(order[first].dtype, order[first].shape) <= off) first++;
        for (let k = first; k < order.length && order[k].offset < end; k++) {
          const t = order[k], tb = tensorBytes(t.dtype, t.shape);
          const from = Math.max(off, t.offset), to = Math.min(end, t.offset + tb);
          if (from >= to) continue;
          const part = bytes.subarray(from - off, to - off), dst = resident + placed.get(t)!;
          if (!quantizes(t)) { new Uint8Array(e.memory.buffer, dst + (from - t.offset), part.length).set(part); continue; }
          const cols = t.shape[1], rb = tensorBytes(t.dtype, [cols]), qb = rowBytes('q8_0', cols);
          let st = rows.get(t);
          if (!st) rows.set(t, st = { buf: new Uint8Array(rb), fill: 0, row: 0 });
          for (let i = 0; i < part.length;) {
            const n = Math.min(rb - st.fill, part.length - i);
            st.buf.set(part.subarray(i, i + n), st.fill);
            st.fill += n; i += n;
            if (st.fill === rb) {
              new Uint8Array(e.memory.buffer, dst + st.row * qb, qb).set(quantize('q8_0', widenToF32(st.buf, t.dtype), cols));
              st.fill = 0; st.row++;
            }
          }
        }
      };
    }

    if (!ioOnly) readSection('resident', resident, embSkip);
    for (const t of ioOnly ? [] : header.tensors) {
      if (embSkip && t === embT) { e.set_global(g('G_TOK_EMBED'), 0, DTYPE_CODE[t.dtype]); continue; }
      const ptr = quantRes ? resident + placed.get(t)! : resident + t.offset - (embSkip && t.offset >= embSkip.to ? embSkip.to - embSkip.from : 0);
      const dt = DTYPE_CODE[quantizes(t) ? 'q8_0' : t.dtype];
      if (t.layer < 0) e.set_global(g(GLOBAL_ROLES[t.role] ?? unknownRole(t.role)), ptr, dt);
      else e.set_layer(t.layer, g(LAYER_ROLES[t.role] ?? unknownRole(t.role)), ptr, dt);
      if (t.role === 'tok_embed' && cfg.tieWordEmbeddings) e.set_global(g('G_LM_HEAD'), ptr, dt);
    }
    for (let l = 0; l < cfg.nLayers; l++) {
      e.set_layer(l, g('L_FFN'), flash ? 0 : readSection(`ffn.${l}`, denseFfn[l]), DTYPE_CODE[f.dtype]);
      if (matrix) toMatrices(e.memory, denseFfn[l], f, memFfn, cfg.ffn);
    }
    e.flash_set_fd(fd);
    if (e.memory.buffer.byteLength + hostBytes !== total) throw new Error('internal error: wasm memory grew after allocation');

    const thread = threadArgs ? new ThreadReader(path!, ...threadArgs) : undefined;
    const engine = new Engine(header, src, e, simd, tokenizerJson, nodeWasi ?? shim!, fd, ctx, mode, memory, thread);
    engine.batched = batched;
    engine.ffnInMemory = memFfn;
    if (ioOnly) { engine.backend = new IoReplayBackend(e); e.set_host_compute(1); }
    return engine;
  }

  /** Whether FFN reads go through the source's readBatch (io 'async' or direct) rather than WASI. */
  batched = false;
  /** How each layer's FFN lies in wasm memory (dense: the matrix layout where it applies; flash: bundles). */
  ffnInMemory!: FfnLayout;
  private planView: Float64Array | undefined;

  /**
   * The forward pass, step by step through the backend (src/backend.ts). FFN reads are issued
   * by the host when batched (in parallel; while they are in flight the backend computes the
   * neurons already cached; io_ms counts only the wait) and through WASI otherwise. On the wasm
   * with WASI reads this is forward(), which runs the same steps inside the wasm.
   */
  async forwardAsync(token: number, pos: number, readLogits = true): Promise<void> {
    const src = this.source, b = this.backend, w = this.wasm;
    const thread = this.flash ? this.thread : undefined;
    const batched = this.batched && this.flash && (!!thread || !!src.readBatch);
    if (b === this.cpu && !batched) { this.forward(token, pos); return; }
    this.checkStep(token, pos);
    const plan = this.planView ??= new Float64Array(w.memory.buffer, w.plan_ptr(), w.plan_capacity() * 3);
    b.begin(token, pos);
    for (let l = 0; l < this.config.nLayers; l++) {
      b.attention(l, pos);
      if (!this.flash) b.ffnDense(l);
      else {
        await b.ffnInput(l);
        w.ffn_begin(l);
        // The first round's reads go out before the cached neurons are computed, so they overlap.
        let n = w.plan_round(l);
        let pending = batched && n > 0 ? this.issue(plan, n) : undefined;
        b.ffnCached(l);
        while (n > 0) {
          if (!pending) {
            if (!w.exec_plan_sync(n)) this.checkIo();
          } else {
            const t0 = performance.now();
            try {
              if (pending === THREAD_ROUND) thread!.wait(); else await pending;
            } catch (e) {
              w.flash_reset();
              throw new Error(`${(e as Error).message}; the neuron cache was reset`);
            }
            w.add_io(w.plan_bytes(), n, performance.now() - t0);
          }
          b.ffnLanded(l);
          n = w.plan_round(l);
          pending = batched && n > 0 ? this.issue(plan, n) : undefined;
        }
        this.checkIo();
      }
      b.ffnEnd(l);
    }
    await b.end(readLogits);
  }

  /** Starts a planned round of reads on the read thread or the source's parallel reader. */
  private issue(plan: Float64Array, n: number): Promise<void> | typeof THREAD_ROUND {
    if (this.thread) { this.thread.begin(this.wasm.memory, plan, n); return THREAD_ROUND; }
    return this.source.readBatch!(this.wasm.memory, plan, n);
  }

  /** Runs one token at `pos`; afterwards logits() holds the next-token scores. */
  forward(token: number, pos: number): void {
    if (this.backend !== this.cpu) throw new Error(`the ${this.backend.name} backend runs asynchronously: use forwardAsync()`);
    this.checkStep(token, pos);
    this.wasm.forward(token, pos);
    this.checkIo();
  }

  /** Whether the FFN is read from flash (naive, hybrid or sparse mode). */
  get flash(): boolean { return this.mode !== 'dense'; }

  /** Oracle/host predictions: the neurons of layer l wanted at the next token (ascending ids). */
  predict(l: number, ids: ArrayLike<number>): void {
    if (this.mode !== 'sparse') throw new Error('predict() needs sparse mode');
    new Int32Array(this.wasm.memory.buffer, this.wasm.predicted_ptr(l), ids.length).set(ids);
    this.wasm.set_predicted_count(l, ids.length);
  }

  /** The neurons of layer l the last token wanted (after forward; sparse mode). */
  predicted(l: number): Int32Array {
    return new Int32Array(this.wasm.memory.buffer, this.wasm.predicted_ptr(l), this.wasm.predicted_count(l));
  }

  /** Starts a new sequence: the neuron caches and the window are emptied. */
  reset(): void {
    if (this.flash) this.wasm.flash_reset();
  }

  /** Counters since the last resetStats(): flash traffic and where the time went (ms). */
  stats(): { bytes_read: number; reads: number; io_ms: number; mem_ms: number; compute_ms: number; predict_ms: number } {
    const w = this.wasm;
    return { bytes_read: w.stat_bytes_read(), reads: w.stat_reads(), io_ms: w.stat_io_ms(), mem_ms: w.stat_mem_ms(), compute_ms: w.stat_compute_ms(), predict_ms: w.stat_predict_ms() };
  }

  resetStats(): void { this.wasm.stats_reset(); }

  /** Neurons now cached per layer. */
  cacheRows(): number[] {
    return this.flash ? Array.from({ length: this.config.nLayers }, (_, l) => this.wasm.cache_rows(l)) : [];
  }

  private checkStep(token: number, pos: number): void {
    if (pos >= this.contextLength) throw new Error(`position ${pos} is past the context length ${this.contextLength}`);
    if (!(token >= 0 && token < this.config.vocab)) throw new Error(`token id ${token} is outside the vocabulary (${this.config.vocab})`);
  }

  private checkIo(): void {
    const err = this.flash ? this.wasm.io_error() : 0;
    if (err) {
      this.wasm.flash_reset();
      const cause = err === -1 ? 'short read: file truncated?' : err === -2 ? 'staging buffer too small' : ioCause(err, this.wasi as Partial<WasiShim>);
      throw new Error(`${this.source.name}: flash read failed (${cause}); the neuron cache was reset`);
    }
  }

  /** Logits of the last forward(), a view into wasm memory (valid until the next call). */
  logits(): Float32Array {
    if (this.logitsView.buffer !== this.wasm.memory.buffer) this.logitsView = this.view(this.wasm.logits_ptr(), this.config.vocab);
    return this.logitsView;
  }

  /** Copies the residual stream after layer `l` at the next forward() (debugging and tests). */
  captureLayer(l: number): () => Float32Array {
    this.wasm.set_capture_layer(l);
    return () => this.view(this.wasm.capture_ptr(), this.config.hidden).slice();
  }

  /** FFN activations of layer l for the last token (ffn values; 0 = neuron inactive). */
  activations(l: number): Float32Array {
    return this.view(this.wasm.activations_ptr() + l * this.config.ffn * 4, this.config.ffn);
  }

  /** FFN input of layer l for the last token (the normed residual the FFN and its predictor see). */
  ffnInput(l: number): Float32Array {
    return this.view(this.wasm.ffn_input_ptr() + l * this.config.hidden * 4, this.config.hidden);
  }

  close(): void {
    if (this.backend !== this.cpu) { this.backend.close(); this.backend = this.cpu; }
    if (this.fd >= 0) this.wasm.flash_close(this.fd);
    this.fd = -1;
    this.thread?.close();
    this.source.close();
  }

  private view(ptr: number, n: number): Float32Array {
    return new Float32Array(this.wasm.memory.buffer, ptr, n);
  }
}

/**
 * Rewrites one layer's bundles at `ptr` (layout f) as the matrix layout m: part p of neuron i
 * moves to m's offset of p + i * its stride (a part's bytes; the bias: bias_stride). The layer's
 * bytes are unchanged or fewer: bundles carry alignment padding.
 */
function toMatrices(memory: WebAssembly.Memory, ptr: number, f: FfnLayout, m: FfnLayout, n: number): void {
  const mem = new Uint8Array(memory.buffer), part = m.bundle_bytes;
  const bundles = mem.slice(ptr, ptr + n * f.bundle_bytes);
  // [from in the bundle, to in the layer, bytes, stride in the layer]
  const moves = ([[f.up, m.up, part, part], [f.gate, m.gate, part, part], [f.down, m.down, part, part], [f.bias, m.bias, 4, m.bias_stride ?? 4]] as const)
    .filter(([from]) => from >= 0);
  for (let i = 0; i < n; i++) {
    const b = i * f.bundle_bytes;
    for (const [from, to, len, stride] of moves) mem.set(bundles.subarray(b + from, b + from + len), ptr + to + i * stride);
  }
}

/** errno name plus, through the shim, the host error behind it. */
function ioCause(errno: number, shim: Partial<WasiShim> | undefined): string {
  return `${errnoName(errno)}${shim?.lastError ? `: ${shim.lastError.message}` : ''}`;
}

function errnoName(n: number): string {
  return ERRNO_NAMES[n] ? `${ERRNO_NAMES[n]}` : `errno ${n}`;
}

function fmtBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}

/** Splits `total` rows over layers in proportion to `weights`, none above `cap`. */
export function shareRows(total: number, weights: number[], cap: number, floor = 0): number[] {
  // Every layer gets `floor` rows first (when the total allows), the rest in proportion.
  const base = Math.min(floor, cap, Math.floor(total / weights.length));
  const rows = new Array(weights.length).fill(base);
  let left = total - base * weights.length, open = weights.map((_, i) => i).filter((i) => rows[i] < cap);
  while (left > 0 && open.length) {
    const sum = open.reduce((a, i) => a + weights[i], 0);
    let given = 0;
    for (const i of open) {
      const add = Math.min(cap - rows[i], Math.max(1, Math.floor(left * weights[i] / sum)));
      rows[i] += add; given += add;
      if (given >= left) break;
    }
    left -= given;
    open = open.filter((i) => rows[i] < cap);
    if (given === 0) break;
  }
  return rows;
}

function checkPredictor(p: EnginePredictor, cfg: ModelConfig): void {
  if (p.layers.length !== cfg.nLayers) throw new Error(`predictor has ${p.layers.length} layers, the model ${cfg.nLayers}`);
  p.layers.forEach((L, l) => {
    if (L.w1.length !== p.rank * cfg.hidden || L.b1.length !== p.rank || L.w2.length !== cfg.ffn * p.rank || L.b2.length !== cfg.ffn) {
      throw new Error(`predictor layer ${l} does not fit this model (rank ${p.rank}, d ${cfg.hidden}, ffn ${cfg.ffn})`);
    }
  });
}

/** Copies values into wasm memory as IEEE half floats (round to nearest even). */
function putF16(e: EngineExports, v: Float32Array): number {
  const p = e.alloc(v.length * 2, 64);
  const out = new Uint16Array(e.memory.buffer, p, v.length);
  for (let i = 0; i < v.length; i++) out[i] = f32ToF16(v[i]);
  return p;
}

/** Copies rows of n values into wasm memory as Q8_0 blocks. */
function putQ8(e: EngineExports, v: Float32Array, n: number): number {
  const bytes = quantize('q8_0', v, n);
  const p = e.alloc(bytes.length, 64);
  new Uint8Array(e.memory.buffer, p, bytes.length).set(bytes);
  return p;
}

/** A (rows, cols) row-major matrix widened to (rows2, cols2) with zeros. */
function padRows(v: Float32Array, rows: number, cols: number, rows2: number, cols2: number): Float32Array {
  if (rows === rows2 && cols === cols2) return v;
  const out = new Float32Array(rows2 * cols2);
  for (let i = 0; i < rows; i++) out.set(v.subarray(i * cols, i * cols + cols), i * cols2);
  return out;
}

function putF32(e: EngineExports, v: Float32Array): number {
  const p = e.alloc(v.length * 4, 64);
  new Float32Array(e.memory.buffer, p, v.length).set(v);
  return p;
}

function unknownRole(role: string): never {
  throw new Error(`invalid image: unknown tensor role ${role}`);
}
