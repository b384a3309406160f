// The engine: one wasm instance holding one model. It reads the image's sections through WASI
// fd_pread into its own memory, verifies their checksums, hands the weight pointers to the
// forward pass (assembly/model.ts) and exposes forward() and the logits.
import type { ModelConfig } from './config.js';
import { DTYPE_CODE } from './config.js';
import { FileSource, FlashSource } from './flash.js';
import { ImageHeader, Progress, readImageHeader, section } from './image.js';
import { instantiateEngine, EngineExports } from './wasm.js';
import { createNodeWasi, NodeWasi } from '../wasi/node.js';
import { createWasiShim, PREOPEN_FD, WasiShim } from '../wasi/shim.js';

export interface EngineOptions {
  /** Use the SIMD build when the runtime supports it (default true). */
  simd?: boolean;
  /** KV cache length; defaults to the model's max positions. */
  contextLength?: number;
  onProgress?: Progress;
  /** How the wasm reaches the file: the runtime's node:wasi (default for files) or the built-in shim. */
  wasi?: 'node' | 'shim';
  /** 'dense': every FFN in memory (default). 'sparse': FFN left on flash, neurons read as predicted. */
  ffn?: 'dense' | 'sparse';
  /** Sparse: tokens a neuron stays cached after it was last used (default 5). */
  window?: number;
  /** Sparse: neuron-cache rows per layer (default: the whole FFN). */
  cacheRows?: number;
}

const READ_CHUNK = 16 << 20;
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
  /** Bytes of wasm memory the model holds after loading (weights, KV cache, buffers). */
  readonly memoryBytes: number;
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
    private ffnMode: 'dense' | 'sparse',
  ) {
    this.config = header.config;
    this.fd = fd;
    this.contextLength = contextLength;
    this.memoryBytes = wasm.memory_bytes();
    this.logitsView = this.view(wasm.logits_ptr(), this.config.vocab);
  }

  /** Opens an image file (path) or any FlashSource and loads the model into a fresh wasm instance. */
  static open(image: string | FlashSource, opts: EngineOptions = {}): Engine {
    const src = typeof image === 'string' ? new FileSource(image) : image;
    try {
      return Engine.load(src, typeof image === 'string' ? image : undefined, opts);
    } catch (e) {
      src.close();
      throw e;
    }
  }

  private static load(src: FlashSource, path: string | undefined, opts: EngineOptions): Engine {
    const header = readImageHeader(src);
    const cfg = header.config;
    const useNode = path !== undefined && (opts.wasi ?? 'node') === 'node';
    const nodeWasi = useNode ? createNodeWasi(path) : undefined;
    const shim = useNode ? undefined : createWasiShim([src]);
    const { exports: e, simd, instance } = instantiateEngine({ simd: opts.simd, wasiImports: nodeWasi?.imports ?? shim!.imports });
    shim?.bind(e.memory);
    if (nodeWasi) nodeWasi.start(instance as any); else e._initialize();

    const ctx = Math.min(cfg.maxPositions, opts.contextLength ?? cfg.maxPositions);
    const g = (n: string) => (e[n] as WebAssembly.Global).value as number;
    e.model_config(cfg.arch === 'opt' ? g('ARCH_OPT') : g('ARCH_LLAMA'), cfg.nLayers, cfg.hidden, cfg.ffn, cfg.nHeads,
      cfg.nKvHeads, cfg.headDim, cfg.vocab, ctx, cfg.normEps, cfg.act === 'relu' ? g('ACT_RELU') : g('ACT_SILU'),
      cfg.ropeTheta, cfg.posOffset, cfg.hasGate ? 1 : 0);
    e.model_init();
    const f = header.ffn;
    e.ffn_layout(f.bundle_bytes, f.up, Math.max(f.gate, 0), f.down, f.bias);
    const sparse = opts.ffn === 'sparse';
    const cacheRows = Math.max(1, Math.min(cfg.ffn, opts.cacheRows ?? cfg.ffn));
    if (sparse) e.sparse_init(cacheRows, opts.window ?? 5);

    // Reserve all memory the sections need before the first WASI call: memory never grows while
    // the WASI host may hold a view of it, and a model that does not fit fails here, cleanly.
    const need = header.sections.reduce((a, s) => a + (sparse && s.name.startsWith('ffn.') ? 0 : s.length + 4096), 4096 + src.name.length);
    const top = e.alloc(0, 16);
    const missing = top + need - e.memory.buffer.byteLength;
    if (missing > 0) {
      const pages = Math.ceil(missing / 65536);
      if (e.memory.buffer.byteLength / 65536 + pages > 65536) {
        throw new Error(`model needs ${((top + need) / 2 ** 30).toFixed(2)} GiB of wasm memory; wasm32 allows 4 GiB`);
      }
      e.memory.grow(pages);
    }

    const name = new TextEncoder().encode(src.name);
    const namePtr = e.alloc(name.length, 16);
    new Uint8Array(e.memory.buffer, namePtr, name.length).set(name);
    const fd = e.flash_open(PREOPEN_FD, namePtr, name.length);
    if (fd < 0) throw new Error(`${src.name}: cannot open through WASI (${errnoName(-fd)})`);

    // What the loader reads, for the progress bar.
    const total = header.sections.reduce((a, s) => a + (sparse && s.name.startsWith('ffn.') ? 0 : s.length), 0);
    let done = 0;
    const readSection = (name: string): number => {
      const s = section(header, name);
      const ptr = e.alloc(Math.max(s.length, 1), 4096);
      if (!ptr || ptr + s.length > e.memory.buffer.byteLength) throw new Error(`out of wasm memory loading ${name} (${s.length} bytes)`);
      let crc = 0;
      for (let off = 0; off < s.length; off += READ_CHUNK) {
        const n = Math.min(READ_CHUNK, s.length - off);
        const got = Number(e.flash_read(fd, ptr + off, n, BigInt(s.offset + off)));
        if (got < 0) throw new Error(`${src.name}: read of section ${name} failed (${ioCause(-got, shim)})`);
        if (got !== n) throw new Error(`${src.name}: image is truncated in section ${name}`);
        crc = e.crc32(crc, ptr + off, n) >>> 0;
        done += n;
        opts.onProgress?.(done, total, 'load');
      }
      if (crc !== s.crc32) throw new Error(`${src.name}: checksum mismatch in section ${name} (file is corrupted)`);
      return ptr;
    };

    const tokPtr = readSection('tokenizer');
    const tokLen = section(header, 'tokenizer').length;
    const tokenizerJson = new TextDecoder().decode(new Uint8Array(e.memory.buffer, tokPtr, tokLen));

    const resident = readSection('resident');
    for (const t of header.tensors) {
      const ptr = resident + t.offset, dt = DTYPE_CODE[t.dtype];
      if (t.layer < 0) e.set_global(g(GLOBAL_ROLES[t.role] ?? unknownRole(t.role)), ptr, dt);
      else e.set_layer(t.layer, g(LAYER_ROLES[t.role] ?? unknownRole(t.role)), ptr, dt);
      if (t.role === 'tok_embed' && cfg.tieWordEmbeddings) e.set_global(g('G_LM_HEAD'), ptr, dt);
    }
    for (let l = 0; l < cfg.nLayers; l++) {
      if (!sparse) e.set_layer(l, g('L_FFN'), readSection(`ffn.${l}`), DTYPE_CODE[f.dtype]);
      else {
        e.set_layer(l, g('L_FFN'), 0, DTYPE_CODE[f.dtype]);
        e.set_ffn_flash(l, BigInt(section(header, `ffn.${l}`).offset));
      }
    }
    if (sparse) e.sparse_set_fd(fd);

    return new Engine(header, src, e, simd, tokenizerJson, nodeWasi ?? shim!, fd, ctx, sparse ? 'sparse' : 'dense');
  }

  /** Runs one token at `pos`; afterwards logits() holds the next-token scores. */
  forward(token: number, pos: number): void {
    if (pos >= this.contextLength) throw new Error(`position ${pos} is past the context length ${this.contextLength}`);
    if (!(token >= 0 && token < this.config.vocab)) throw new Error(`token id ${token} is outside the vocabulary (${this.config.vocab})`);
    if (this.sparse) this.wasm.sparse_next_token();
    this.wasm.forward(token, pos);
    const err = this.sparse ? this.wasm.io_error() : 0;
    if (err) {
      this.wasm.sparse_reset();
      const cause = err < 0 ? 'short read: file truncated?' : ioCause(err, this.wasi as Partial<WasiShim>);
      throw new Error(`${this.source.name}: flash read failed (${cause}); the neuron cache was reset`);
    }
  }

  /** Sparse FFN: whether the FFN is read from flash. */
  get sparse(): boolean { return this.header.ffn !== undefined && this.ffnMode === 'sparse'; }

  /** Sparse FFN: the neurons of layer l expected to fire for the next token (ascending ids). */
  predict(l: number, ids: ArrayLike<number>): void {
    new Int32Array(this.wasm.memory.buffer, this.wasm.predicted_ptr(l), ids.length).set(ids);
    this.wasm.set_predicted_count(l, ids.length);
  }

  /** Starts a new sequence: the neuron caches and the window are emptied. */
  reset(): void {
    if (this.sparse) this.wasm.sparse_reset();
  }

  /** Flash traffic so far (sparse FFN). */
  flashStats(): { bytes_read: number; reads: number; dropped_neurons: number } {
    return this.sparse ? { bytes_read: this.wasm.stat_bytes_read(), reads: this.wasm.stat_reads(), dropped_neurons: this.wasm.stat_dropped() } : { bytes_read: 0, reads: 0, dropped_neurons: 0 };
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

  close(): void {
    if (this.fd >= 0) this.wasm.flash_close(this.fd);
    this.fd = -1;
    this.source.close();
  }

  private view(ptr: number, n: number): Float32Array {
    return new Float32Array(this.wasm.memory.buffer, ptr, n);
  }
}

/** errno name plus, through the shim, the host error behind it. */
function ioCause(errno: number, shim: Partial<WasiShim> | undefined): string {
  return `${errnoName(errno)}${shim?.lastError ? `: ${shim.lastError.message}` : ''}`;
}

function errnoName(n: number): string {
  return ERRNO_NAMES[n] ? `${ERRNO_NAMES[n]}` : `errno ${n}`;
}

function unknownRole(role: string): never {
  throw new Error(`invalid image: unknown tensor role ${role}`);
}
