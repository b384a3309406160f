// The engine: one wasm instance holding one model. Loading follows a plan made before any byte
// of weights is read (plan.ts): the wasm's run and flash state are set up, the plan sizes the
// rest from what the wasm reports, the loader (loader.ts) allocates and reads the sections
// through WASI into wasm memory, verifying their checksums. Then forward() / forwardAsync() run
// the forward pass (assembly/forward.ts) through a Backend (backend.ts).
import type { ModelConfig } from '../format/config.js';
import { DTYPE_CODE } from '../format/dtype.js';
import { readImageHeader, readTokenizerJson, section, type FfnLayout, type ImageHeader, type Progress } from '../format/image.js';
import { ActivationModel } from '../format/synth.js';
import { readExact, type FlashSource } from '../io/source.js';
import { BatchReader, type PlanReader } from '../io/plan-reader.js';
import { createWasiShim, PREOPEN_FD, type WasiProvider } from '../io/wasi-shim.js';
import type { EnginePredictor } from '../predictor/types.js';
import { instantiateEngine, threadsSupported, type EngineExports } from './wasm.js';
import { ABI } from './abi.js';
import { IoReplayBackend, WasmBackend, type Backend } from './backend.js';
import { openGpu, WebGpuBackend, type Gpu } from '../gpu/webgpu.js';
import { fmtBytes, planLayout, planMemory, type WasmSizes } from './plan.js';
import { allocateWeights, configureModel, errnoName, ioCause, readWeights } from './loader.js';
import type { Device, EngineOptions, FfnMode, MemoryReport } from './options.js';

export type { FfnMode, Device, EngineOptions, MemoryReport } from './options.js';
export type { EnginePredictor } from '../predictor/types.js';

/**
 * What a host brings to the engine (src/node registers Node's): opening an image by path, the
 * runtime's own WASI for it, reads on a worker thread. Each is optional; without it the engine
 * uses the built-in WASI shim over a FlashSource and the wasm's own reads.
 */
export interface EngineHost {
  openFile?(path: string, opts: { direct?: boolean; queueDepth?: number }): FlashSource;
  wasi?(path: string, src: FlashSource, opts: EngineOptions): WasiProvider | undefined;
  /** A reader thread for io 'thread' and the bytes it holds outside wasm memory. */
  threadReader?: { bytesFor(staging: number, maxOps: number): number; open(path: string, staging: number, maxOps: number): PlanReader };
  /**
   * Starts `n` compute workers, each running instantiateWorker(module, memory).run(block)
   * on a thread of its own (they join the engine's jobs as they come up); close() ends them.
   * With `readPath` each opens that file and reads its share of the FFN's rounds (fd_pread).
   */
  computeThreads?(module: WebAssembly.Module, memory: WebAssembly.Memory, block: number, n: number, readPath?: string): { close(): void };
  /** Cores to compute on (Node: os.availableParallelism()). */
  cores?(): number;
}

let host: EngineHost = {};
/** Cores the host offers: its own count, else the browser's navigator.hardwareConcurrency, else 1. */
export function hostCores(): number {
  return host.cores?.() ?? (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
}

/** Sets what the runtime offers the engine (src/node does so on import). */
export function setEngineHost(h: EngineHost): void { host = { ...host, ...h }; }

export class Engine {
  readonly config: ModelConfig;
  /** Bytes of all FFN sections in the image. */
  readonly ffnBytes: number;
  /** Bytes of wasm memory the engine holds, read as it is now (fixed after loading: nothing grows per token). */
  get memoryBytes(): number { return this.wasm.memory.buffer.byteLength + (this.reader?.hostBytes ?? 0); }
  private logitsView: Float32Array;
  private readonly cpu: WasmBackend;
  /** What runs the forward pass's arithmetic (setDevice). */
  backend: Backend;
  private planView: Float64Array | undefined;
  /** The tokens whose keys and values the KV cache holds, by position (checkStep keeps it). */
  private readonly kvIds: Int32Array;
  private kvLength = 0;

  private constructor(
    readonly header: ImageHeader,
    readonly source: FlashSource,
    readonly wasm: EngineExports,
    readonly simd: boolean,
    readonly tokenizerJson: string,
    /** The WASI provider, kept reachable for the instance's lifetime (the GC must not take its fd table). */
    private readonly wasi: WasiProvider,
    private fd: number,
    readonly contextLength: number,
    readonly mode: FfnMode,
    readonly memory: MemoryReport,
    /** How each layer's FFN lies in wasm memory (dense: the matrix layout where it applies; flash: bundles). */
    readonly ffnInMemory: FfnLayout,
    /** Who carries out planned rounds of FFN reads (else the wasm, through WASI). */
    private readonly reader: PlanReader | undefined,
    /** The compute workers (threads build), if any. */
    private readonly pool?: { close(): void },
  ) {
    this.config = header.config;
    this.ffnBytes = header.ffn.bundle_bytes * header.config.ffn * header.config.nLayers;
    this.logitsView = this.view(wasm.logits_ptr(), this.config.vocab);
    this.cpu = new WasmBackend(wasm, (['wasm', 'wasm simd', 'wasm relaxed simd'] as const)[wasm.simd_level()] ?? 'wasm');
    this.backend = this.cpu;
    this.kvIds = new Int32Array(contextLength);
  }

  /** Opens an image file (path, through the host) or any FlashSource and loads the model into a fresh wasm instance. */
  static open(image: string | FlashSource, opts: EngineOptions = {}): Engine {
    const path = typeof image === 'string' ? image : undefined;
    if (path !== undefined && !host.openFile) throw new Error(`opening ${path} needs a host with files (import flashneuron's Node entry), or pass a FlashSource`);
    const src = path !== undefined ? host.openFile!(path, { direct: opts.direct, queueDepth: opts.queueDepth ?? 32 }) : image as FlashSource;
    try {
      return Engine.load(src, path, opts);
    } catch (e) {
      src.close();
      throw e;
    }
  }

  private static load(src: FlashSource, path: string | undefined, opts: EngineOptions): Engine {
    const header = readImageHeader(src);
    const cfg = header.config;
    // Who reads the FFN's planned rounds: the wasm through WASI, the source's parallel reads, or a thread.
    const io = opts.io ?? 'wasi';
    if (!['wasi', 'async', 'thread'].includes(io)) throw new Error(`unknown io ${io} (wasi, async or thread)`);
    const flash = (opts.mode ?? 'dense') !== 'dense';
    if (flash && io === 'thread') {
      if (!path || !host.threadReader) throw new Error("io 'thread' reads the model file on a worker thread: it needs the model as a file path");
      if (opts.direct) throw new Error("io 'thread' reads through the page cache; direct (O_DIRECT) reads take io 'async'");
    } else if (flash && (io === 'async' || opts.direct)) {
      if (!src.readBatch) throw new Error(`${src.name}: this flash source has no parallel reads (readBatch); use io 'wasi'`);
      if (opts.direct && !path) throw new Error('direct (O_DIRECT) reads need the model as a file path');
    }
    const batched = flash && (io !== 'wasi' || !!opts.direct);
    const layout = planLayout(header, opts, batched, batched && io !== 'thread' ? src.alignment ?? 1 : 1);
    const hostBytes = batched && io === 'thread' ? host.threadReader!.bytesFor(layout.staging, layout.maxOps) : 0;

    const hostWasi = path !== undefined ? host.wasi?.(path, src, opts) : undefined;
    const wasi = hostWasi ?? createWasiShim([src]);
    // Compute threads: the threads build on shared memory, where the host can start workers.
    const threads = opts.threads ?? 1;
    if (!(Number.isInteger(threads) && threads >= 1 && threads <= 256)) throw new Error(`threads must be an integer from 1 to 256 (got ${opts.threads})`);
    const threaded = threads > 1 && (opts.simd ?? true) && !!host.computeThreads && threadsSupported();
    const { exports: e, simd, instance, shared } = instantiateEngine({ simd: opts.simd, threads: threaded, wasiImports: wasi.imports });
    wasi.start(instance);
    const block = e.threads_init(shared ? threads - 1 : 0);
    // The wasm's own reads of the FFN (io 'wasi' through the runtime's WASI, the file itself) are
    // page-cache syscalls: the workers open the file too and take their share of each round.
    const readPath = shared && flash && !batched && hostWasi ? path : undefined;
    const pool = shared ? host.computeThreads!(shared.module, shared.memory, block, threads - 1, readPath) : undefined;
    if (readPath) e.threads_read(1);
    const tokenizerJson = readTokenizerJson(src, header);

    // The wasm's state first: config, run state and KV cache, flash machinery. Everything is
    // allocated before the first WASI read: memory never grows while the WASI host may hold a
    // view of it, nor in the token loop.
    configureModel(e, cfg, layout.contextLength, layout.mode, layout.silu);
    e.set_kv_dtype(DTYPE_CODE[layout.kvDtype]);
    // The KV cache and the rotary tables grow with the context: refused here, not as a wasm trap.
    const kvNeeds = 2 * cfg.nLayers * layout.contextLength * cfg.nKvHeads * cfg.headDim * (layout.kvDtype === 'f16' ? 2 : 4) + 4 * layout.contextLength * cfg.headDim;
    if (kvNeeds > 2 ** 32 - e.memory.buffer.byteLength - (64 << 20)) {
      throw new Error(`a context of ${layout.contextLength} tokens needs a ${fmtBytes(kvNeeds)} KV cache, more than wasm32's 4 GiB of memory holds: give a shorter context (--context N)`);
    }
    e.model_init();
    const m = layout.ffnInMemory;
    e.ffn_layout(m.bundle_bytes, m.up, Math.max(m.gate, 0), m.down, m.bias);
    if (m.bias_stride) e.ffn_bias_stride(m.bias_stride);
    // The file name goes low in memory: node:wasi refuses pointers past 2 GiB (they arrive signed).
    const name = new TextEncoder().encode(src.name);
    const namePtr = e.alloc(name.length, 16);
    new Uint8Array(e.memory.buffer, namePtr, name.length).set(name);
    if (opts.check) e.set_check_layers(1);
    let flashState = layout.flash ? e.flash_init(layout.want, layout.window, layout.staging, layout.maxOps, layout.align) : 0;
    const f = header.ffn;
    if (layout.silu) {
      // Reads and cache rows take each neuron's down column alone, out of its bundle.
      const part = layout.siluGate ? layout.rowBytes / 2 : layout.rowBytes;
      flashState += e.silu_init(layout.siluGate ? 1 : 0, part);
      // CATS: each row holds the up row, then the down column.
      const parts = layout.siluGate ? [f.up, f.down] : [f.down];
      parts.forEach((at, p) => { e.flash_part(p, BigInt(at), part, p * part); e.flash_part_stride(p, f.bundle_bytes); });
      e.flash_row_bytes(layout.rowBytes);
    }
    // TEAL (optional): per layer the cuts on the inputs of q/k/v, o and gate/up (assembly/teal.ts).
    if (opts.tealThresholds || opts.tealRecord) {
      const t = opts.tealThresholds, qDim = cfg.nHeads * cfg.headDim;
      if (t && !(t.length === cfg.nLayers && t.every((c) => c.length === 3 && c.every((v) => Number.isFinite(v) && v >= 0)))) throw new Error(`tealThresholds must be ${cfg.nLayers} rows of 3 cuts ≥ 0 (q/k/v, o, gate/up inputs)`);
      e.teal_init(Math.max(cfg.hidden, cfg.ffn, qDim), qDim, opts.tealRecord ? 1 : 0);
      t?.forEach((c, l) => e.teal_layer(l, c[0], c[1], c[2]));
    }
    // Per-neuron checksums of the FFN on flash (older images have none: unverified).
    const verify = opts.verify ?? 'first';
    if (!['first', 'always', 'off'].includes(verify)) throw new Error(`verify must be first, always or off (got ${opts.verify})`);
    // SiLU mode checks down columns alone: their CRCs are taken while loading gate and up (loader.ts).
    const crcSec = layout.flash && verify !== 'off' && !layout.silu ? header.sections.find((x) => x.name === 'ffn.crc') : undefined;
    const crcPtr = crcSec || (layout.silu && verify !== 'off') ? e.flash_verify_init(verify === 'always' ? ABI.VERIFY_ALWAYS : ABI.VERIFY_FIRST) : 0;
    if (batched) e.set_max_op_bytes(opts.maxReadBytes ?? 256 << 10);

    const sizes: WasmSizes = {
      state: e.alloc(0, 16), flashState,
      alloc: (size, align) => e.alloc_bytes(size, align),
      cache: (rows) => e.cache_bytes(rows, layout.rowBytes, cfg.ffn),
      predictorState: (rank) => e.predictor_state_bytes(rank),
    };
    const plan = planMemory(header, opts, layout, sizes, hostBytes, src.size);
    const weights = allocateWeights(e, header, layout, plan, opts.threshold, opts.ffnThresholds);
    if (layout.flash) {
      (f.layout === 'split' ? f.parts! : []).forEach((p, i) => e.flash_part(i, BigInt(p.base), p.len, p.row));
      plan.cacheRows.forEach((rows, l) => e.flash_layer(l, BigInt(section(header, `ffn.${l}`).offset), rows));
      if (opts.planner) e.planner_costs(opts.planner.opUs, opts.planner.byteUs, Math.floor(opts.planner.gapBytes / f.bundle_bytes));
    }
    // (A probe of the allocator may itself grow memory: before the total is taken.)
    if (e.alloc(0, 16) === 0 || (weights.resident === 0 && !layout.ioOnly)) throw new Error(`model needs more than the 4 GiB of wasm memory wasm32 allows`);
    const total = e.memory.buffer.byteLength + hostBytes;
    const budget = opts.memoryBytes;
    if (budget !== undefined && total > budget) {
      throw new Error(`memory budget ${fmtBytes(budget)} is too small: the resident part alone needs ${fmtBytes(total)} ` +
        `(${(100 * total / src.size).toFixed(1)}% of the model)`);
    }
    const kvBytes = 2 * cfg.nLayers * layout.contextLength * cfg.nKvHeads * cfg.headDim * (layout.kvDtype === 'f16' ? 2 : 4);
    const cacheBytes = plan.cacheRows.reduce((a, r) => a + r * (layout.rowBytes + 4) + cfg.ffn * 8, 0);
    const residentTotal = layout.ioOnly ? 0 : plan.residentBytes + weights.denseFfnBytes + (plan.silu ? cfg.nLayers * plan.silu.layerBytes : 0);
    const memory: MemoryReport = {
      total, resident_dtype: plan.residentDtype, resident: residentTotal, predictor: weights.predictorBytes, predictor_rank: plan.predictor?.p.rank ?? 0,
      neuron_cache: cacheBytes, kv_cache: kvBytes, buffers: Math.max(0, total - residentTotal - weights.predictorBytes - cacheBytes - kvBytes), cache_rows: plan.cacheRows,
    };

    const fd = e.flash_open(PREOPEN_FD, namePtr, name.length);
    if (fd < 0) throw new Error(`${src.name}: cannot open through WASI (${errnoName(-fd)})`);
    e.flash_set_fd(fd);
    try {
      readWeights(e, src, header, layout, plan, weights, fd, wasi, opts.onProgress, layout.silu ? crcPtr : 0);
    } catch (err) {
      e.flash_close(fd);
      throw err;
    }
    if (crcSec) {
      readExact(src, new Uint8Array(e.memory.buffer, crcPtr, crcSec.length), crcSec.offset, 'section ffn.crc');
      if (e.crc32(0, crcPtr, crcSec.length) !== crcSec.crc32) throw new Error(`${src.name}: checksum mismatch in section ffn.crc (file is corrupted)`);
    }
    if (e.memory.buffer.byteLength + hostBytes !== total) throw new Error('internal error: wasm memory grew after allocation');

    const reader = !batched ? undefined : io === 'thread' ? host.threadReader!.open(path!, layout.staging, layout.maxOps) : new BatchReader(src as FlashSource & Required<Pick<FlashSource, 'readBatch'>>);
    const engine = new Engine(header, src, e, simd, tokenizerJson, wasi, fd, layout.contextLength, layout.mode, memory, layout.ffnInMemory, reader, pool);
    if (layout.ioOnly) { engine.backend = new IoReplayBackend(e); e.set_host_compute(1); }
    engine.silu = layout.silu;
    if (opts.syntheticFiring) {
      if (layout.want !== ABI.WANT_HOST) throw new Error('syntheticFiring draws the firing sets of sparse mode without a predictor');
      engine.firing = new ActivationModel(cfg.nLayers, cfg.ffn, { seed: opts.syntheticFiring.seed, active: opts.syntheticFiring.activeShare });
    }
    return engine;
  }

  /**
   * Moves the arithmetic to a WebGPU adapter. 'gpu' insists (a software adapter will do) and
   * throws where there is none; 'auto' takes a hardware adapter when the runtime offers one and
   * otherwise stays on the wasm, never failing. An adapter the caller already opened (`gpu`) is
   * used as it is. Returns the device now in use.
   */
  async setDevice(device: Device, opts: { shaderF16?: boolean; maxBindingBytes?: number; gpu?: Gpu } = {}): Promise<'cpu' | 'gpu'> {
    if (!['cpu', 'gpu', 'auto'].includes(device)) throw new Error(`unknown device ${device} (cpu, gpu or auto)`);
    if (this.backend instanceof IoReplayBackend) throw new Error('an I/O replay (ioOnly) runs no arithmetic: there is no device to choose');
    if (this.siluSparse && device !== 'cpu') {
      if (device === 'gpu') throw new Error('sparse mode on a SiLU model (calibrated thresholds) runs on the wasm: use device cpu or auto');
      return 'cpu';
    }
    if (this.backend !== this.cpu) { this.backend.close(); this.backend = this.cpu; this.wasm.set_host_compute(0); this.wasm.set_cache_moves(1); }
    // Another backend's KV cache has nothing in it; a GPU mirror starts empty and the wasm's
    // rows went stale while the GPU moved its own, so the neuron caches start over too.
    this.kvLength = 0;
    if (this.flash) this.wasm.flash_reset();
    if (device === 'cpu') { opts.gpu?.device.destroy(); return 'cpu'; }
    let gpu: Gpu | null | undefined = opts.gpu;
    try {
      gpu ??= await openGpu({ allowFallback: device === 'gpu', shaderF16: opts.shaderF16 });
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
    if (this.flash) { this.wasm.set_host_compute(1); this.wasm.set_cache_moves(0); }
    return 'gpu';
  }

  /**
   * The forward pass, step by step through the backend (backend.ts). FFN reads are carried out
   * by the PlanReader when there is one (in parallel; while they are in flight the backend
   * computes the neurons already cached; io_ms counts only the wait) and through WASI otherwise.
   * On the wasm with WASI reads this is forward(), which runs the same steps inside the wasm.
   */
  async forwardAsync(token: number, pos: number, readLogits = true): Promise<void> {
    const b = this.backend, w = this.wasm;
    const reader = this.flash ? this.reader : undefined;
    if (this.runsSync) { this.forward(token, pos); return; }
    this.checkStep(token, pos);
    if (this.firing) this.fire();
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
        if (reader && n > 0) reader.begin(w.memory, plan, n);
        b.ffnCached(l);
        while (n > 0) {
          if (!reader) {
            if (!w.exec_plan_sync(n)) this.checkIo();
          } else {
            const t0 = performance.now();
            try {
              const done = reader.wait();
              if (done) await done;
            } catch (e) {
              this.reset();
              throw new Error(`${(e as Error).message}; the neuron cache was reset`);
            }
            w.add_io(w.plan_bytes(), n, performance.now() - t0);
          }
          b.ffnLanded(l);
          if (w.io_error()) break;   // a bundle failed its checksum
          n = w.plan_round(l);
          if (reader && n > 0) reader.begin(w.memory, plan, n);
        }
        this.checkIo();
      }
      b.ffnEnd(l);
    }
    await b.end(readLogits);
    this.checkFinite(pos, b === this.cpu || readLogits);
    this.passDone(pos);
  }

  /** Whether forward() can run a pass: the wasm computes it and no reader's rounds are awaited. */
  get runsSync(): boolean { return this.backend === this.cpu && !(this.flash && this.reader); }

  /** Runs one token at `pos`; afterwards logits() holds the next-token scores. */
  forward(token: number, pos: number): void {
    if (this.backend !== this.cpu) throw new Error(`the ${this.backend.name} backend runs asynchronously: use forwardAsync()`);
    this.checkStep(token, pos);
    if (this.firing) this.fire();
    this.wasm.forward(token, pos);
    this.checkIo();
    this.checkFinite(pos, true);
    this.passDone(pos);
  }

  /** Sparse by calibrated |silu(gate)·up| cuts: the wasm computes gate and up (no GPU backend). */
  get siluSparse(): boolean { return this.silu; }
  private silu = false;

  /** Whether the FFN is read from flash (naive, hybrid or sparse mode). */
  get flash(): boolean { return this.mode !== 'dense'; }


  /** syntheticFiring: the sets each pass wants, drawn into the wasm's predicted lists (and the time it took). */
  private firing: ActivationModel | undefined;
  private firingMs = 0;
  private heap32: Int32Array | undefined;
  private fire(): void {
    const w = this.wasm, t0 = performance.now();
    if (this.heap32?.buffer !== w.memory.buffer) this.heap32 = new Int32Array(w.memory.buffer);
    for (let l = 0; l < this.config.nLayers; l++) w.set_predicted_count(l, this.firing!.fill(l, this.heap32, w.predicted_ptr(l) >>> 2));
    this.firingMs += performance.now() - t0;
  }

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

  /**
   * Starts a new sequence: the neuron caches and the window are emptied. With the FFN on flash
   * the KV cache's positions are forgotten too: what ran after them shaped the neuron caches.
   */
  reset(): void {
    if (!this.flash) return;
    this.wasm.flash_reset();
    this.kvLength = 0;
    this.firing?.reset();
  }

  /**
   * Where a request over `ids` starts: positions the KV cache holds with the same tokens keep
   * their keys and values, and only the rest runs (the last id always does, for its logits).
   * With the FFN on flash a neuron's contribution is summed in an order that depends on the
   * neuron caches' history, so reuse is exact only when everything run since the last reset is
   * a prefix of `ids`: the caches then hold what a fresh run would hold at that position, and
   * continuing is that fresh run. Otherwise the sequence restarts from position 0.
   */
  startAt(ids: ArrayLike<number>): number {
    const k = Math.min(this.cachedPrefix(ids), ids.length - 1);
    if (!this.flash) return k;
    if (k > 0 && k === this.kvLength) return k;
    this.reset();
    return 0;
  }

  /** Counters since the last resetStats(): flash traffic and where the time went (ms). */
  stats(): { bytes_read: number; reads: number; io_ms: number; mem_ms: number; compute_ms: number; predict_ms: number } {
    const w = this.wasm;
    return { bytes_read: w.stat_bytes_read(), reads: w.stat_reads(), io_ms: w.stat_io_ms(), mem_ms: w.stat_mem_ms(), compute_ms: w.stat_compute_ms(), predict_ms: w.stat_predict_ms() + this.firingMs };
  }

  resetStats(): void { this.wasm.stats_reset(); this.firingMs = 0; this.wasm.teal_reset(); }

  /** Neurons now cached per layer. */
  cacheRows(): number[] {
    return this.flash ? Array.from({ length: this.config.nLayers }, (_, l) => this.wasm.cache_rows(l)) : [];
  }

  private checkStep(token: number, pos: number): void {
    if (this.fd < 0) throw new Error(`${this.source.name}: the model is closed`);
    if (pos >= this.contextLength) throw new Error(`position ${pos} is past the context length ${this.contextLength}`);
    if (!(token >= 0 && token < this.config.vocab)) throw new Error(`token id ${token} is outside the vocabulary (${this.config.vocab})`);
    // Position pos is being rewritten: it and later positions are stale until the pass completes (passDone).
    this.kvIds[pos] = token;
    this.kvLength = pos;
  }

  /** A pass at `pos` completed: the KV cache holds positions 0..pos. */
  private passDone(pos: number): void {
    this.kvLength = pos + 1;
  }

  /**
   * How many leading tokens of `ids` the KV cache already holds (the same tokens at the same
   * positions, run by an earlier request): a new request need only run the rest.
   */
  cachedPrefix(ids: ArrayLike<number>): number {
    const n = Math.min(ids.length, this.kvLength);
    let i = 0;
    while (i < n && this.kvIds[i] === ids[i]) i++;
    return i;
  }

  /**
   * A pass whose hidden state or logits hold NaN or ±Inf is an error, never a token: the wasm
   * checks its logits every pass (and each layer's output with `check`); logits another backend
   * produced are checked here when they were read back.
   */
  private checkFinite(pos: number, logitsRead: boolean): void {
    let at = this.wasm.non_finite();
    if (at < 0 && this.backend !== this.cpu && logitsRead) {
      const v = this.logits();
      let acc = 0;
      for (let i = 0; i < v.length; i++) acc += v[i] * 0;
      if (acc !== acc) at = this.config.nLayers;
    }
    if (at < 0) return;
    if (at < this.config.nLayers) throw new Error(`${this.source.name}: non-finite values (NaN or Inf) after layer ${at} at position ${pos}: the weights hold NaN/Inf or overflow`);
    throw new Error(`${this.source.name}: non-finite values (NaN or Inf) in the logits at position ${pos}: the weights hold NaN/Inf or overflow (the check option finds the first layer)`);
  }

  private checkIo(): void {
    const err = this.flash ? this.wasm.io_error() : 0;
    if (err) {
      if (err === ABI.IO_BAD_BUNDLE) {
        const k = this.wasm.bad_bundle(), n = this.config.ffn;
        this.reset();
        throw new Error(`${this.source.name}: FFN bundle of layer ${Math.floor(k / n)}, neuron ${k % n} read from flash fails its checksum (file is corrupted or the read was); the neuron cache was reset`);
      }
      const w = this.wasm, off = w.io_fail_offset(), len = w.io_fail_len(), got = w.io_fail_got();
      this.reset();
      // The shim's host error names the read itself; the runtime's WASI gives an errno only.
      const what = err === -1 ? `short read of ${len} bytes at offset ${off}: got ${got} (file truncated?)`
        : err === -2 ? 'staging buffer too small'
          : this.wasi.lastError ? ioCause(err, this.wasi) : `read of ${len} bytes at offset ${off} failed (${errnoName(err)})`;
      throw new Error(`${this.source.name}: flash read failed: ${what}; the neuron cache was reset`);
    }
  }

  /** Logits of the last forward(), a view into wasm memory (valid until the next call). */
  logits(): Float32Array {
    if (this.logitsView.buffer !== this.wasm.memory.buffer) this.logitsView = this.view(this.wasm.logits_ptr(), this.config.vocab);
    return this.logitsView;
  }

  /** The greedy choice over logits(): the first index of the largest (in the wasm, four lanes at a time). */
  argmax(): number {
    return this.wasm.vargmax(this.wasm.logits_ptr(), this.config.vocab);
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

  /**
   * TEAL: per layer and input (0 q/k/v, 1 o, 2 gate/up) the entries cut and seen since
   * resetStats (all zero without tealThresholds).
   */
  tealCounts(): { cut: number; seen: number }[][] {
    const p = this.wasm.teal_counts_ptr();
    if (!p) return [];
    const c = new Float64Array(this.wasm.memory.buffer, p, this.config.nLayers * 6);
    return Array.from({ length: this.config.nLayers }, (_, l) => [0, 1, 2].map((g) => ({ cut: c[6 * l + 2 * g], seen: c[6 * l + 2 * g + 1] })));
  }

  /** TEAL calibration (tealRecord): layer l's attention norm output (q/k/v input) and attention output (o input) for the last token. */
  tealInputs(l: number): { qkv: Float32Array; o: Float32Array } {
    const p = this.wasm.teal_record_ptr(), d = this.config.hidden, q = this.config.nHeads * this.config.headDim;
    if (!p) throw new Error('tealInputs needs the engine opened with tealRecord');
    const at = p + 4 * l * (d + q);
    return { qkv: this.view(at, d), o: this.view(at + 4 * d, q) };
  }

  /** FFN input of layer l for the last token (the normed residual the FFN and its predictor see). */
  ffnInput(l: number): Float32Array {
    return this.view(this.wasm.ffn_input_ptr() + l * this.config.hidden * 4, this.config.hidden);
  }

  /** Threads computing: this one and the compute workers that have started. */
  get threads(): number { return 1 + (this.pool ? this.wasm.threads_ready() : 0); }

  /** Whether compute workers were started (threads > 1 where the runtime has shared wasm memory). */
  get threaded(): boolean { return this.pool !== undefined; }

  close(): void {
    if (this.pool) { this.wasm.threads_stop(); this.pool.close(); }
    if (this.backend !== this.cpu) { this.backend.close(); this.backend = this.cpu; }
    if (this.fd >= 0) {
      this.wasm.flash_close(this.fd);
      // The preopened directory too: node:wasi keeps its descriptor until then (one per model
      // loaded, for the life of the process); the shim answers for it as for any fd.
      this.wasm.flash_close(PREOPEN_FD);
    }
    this.fd = -1;
    this.reader?.close();
    this.source.close();
  }

  private view(ptr: number, n: number): Float32Array {
    return new Float32Array(this.wasm.memory.buffer, ptr, n);
  }
}
