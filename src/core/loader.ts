// Loading the weights the plan (plan.ts) keeps in memory: every buffer is allocated first (the
// wasm's memory never grows while a WASI host holds a view of it), then each section is read
// through WASI fd_pread straight into place, its CRC-32 verified with the wasm's kernel.
// Resident matrices the plan quantizes stream through a small scratch buffer row by row (no
// full-size copy is held); token embeddings left on flash pass through it for the checksum only.
import { DTYPE_CODE, f32ToF16, quantize, rowBytes, tensorBytes, widenToF32 } from '../format/dtype.js';
import { crc32 } from '../format/crc32.js';
import { section, type FfnLayout, type ImageHeader, type Progress, type TensorEntry } from '../format/image.js';
import { normOf, RELU_FAMILY, type Activation, type ModelConfig } from '../format/config.js';
import type { FlashSource } from '../io/source.js';
import type { WasiProvider } from '../io/wasi-shim.js';
import { ABI, type GlobalSlot, type LayerSlot } from './abi.js';
import type { EngineExports } from './wasm.js';
import { SCRATCH, type EngineLayout, type MemoryPlan } from './plan.js';

const READ_CHUNK = 16 << 20;
const ERRNO_NAMES: Record<number, string> = { 8: 'EBADF', 28: 'EINVAL', 29: 'EIO', 44: 'ENOENT', 52: 'ENOSYS', 76: 'ENOTCAPABLE' };

/** The image's tensor roles and the wasm's weight slots (assembly/forward.ts). */
const GLOBAL_SLOTS: Record<string, GlobalSlot> = {
  tok_embed: 'G_TOK_EMBED', pos_embed: 'G_POS_EMBED', norm_w: 'G_NORM_W', norm_b: 'G_NORM_B', lm_head: 'G_LM_HEAD',
  lm_head_b: 'G_LM_HEAD_B',
};
const LAYER_SLOTS: Record<string, LayerSlot> = {
  ln1_w: 'L_LN1_W', ln1_b: 'L_LN1_B', q: 'L_Q', k: 'L_K', v: 'L_V', o: 'L_O', q_b: 'L_QB', k_b: 'L_KB', v_b: 'L_VB',
  o_b: 'L_OB', ln2_w: 'L_LN2_W', ln2_b: 'L_LN2_B', down_b: 'L_DOWN_B',
};
const ACT_CODE: Record<Activation, number> = {
  relu: ABI.ACT_RELU, silu: ABI.ACT_SILU, fatrelu: ABI.ACT_FATRELU, drelu: ABI.ACT_DRELU, gelu_tanh: ABI.ACT_GELU_TANH,
};

/**
 * Tells the wasm the model's blueprint (model_config, then the features that set the families
 * apart), before model_init. Sparse mode skips the neurons a predictor leaves out, exact only
 * where an inactive neuron is exactly zero: other activations are refused there.
 */
export function configureModel(e: EngineExports, cfg: ModelConfig, contextLength: number, mode: string, silu = false): void {
  if (!Object.hasOwn(ACT_CODE, cfg.act)) throw new Error(`invalid image: unknown activation ${JSON.stringify(cfg.act)}`);
  // SiLU-gated models run sparse by calibrated magnitude cuts instead (approximate by design: silu.ts).
  if (mode === 'sparse' && !RELU_FAMILY.has(cfg.act) && !silu) {
    throw new Error(`sparse mode needs a ReLU-family activation (relu, fatrelu, drelu); ${cfg.architecture} uses ${cfg.act}: use mode dense, naive or hybrid`);
  }
  e.model_config(cfg.arch === 'opt' ? ABI.ARCH_OPT : ABI.ARCH_LLAMA, cfg.nLayers, cfg.hidden, cfg.ffn, cfg.nHeads,
    cfg.nKvHeads, cfg.headDim, cfg.vocab, contextLength, cfg.normEps, ACT_CODE[cfg.act], cfg.ropeTheta, cfg.posOffset, cfg.hasGate ? 1 : 0);
  e.model_features(normOf(cfg) === 'layer' ? ABI.NORM_LAYER : ABI.NORM_RMS, cfg.parallelAttn ? 1 : 0, cfg.rotaryDim ?? cfg.headDim,
    cfg.slidingWindow ?? 0, cfg.actParam ?? 0);
  const r = cfg.ropeScaling;
  if (r) e.model_rope_llama3(r.factor, r.lowFreqFactor, r.highFreqFactor, r.originalMaxPositions);
}

/** Where the loader puts what it reads. */
export interface WeightBuffers {
  /** The resident block (0 in an I/O replay). */
  resident: number;
  scratch: number;
  /** Per layer, dense mode: the FFN. */
  denseFfn: number[];
  denseFfnBytes: number;
  predictorBytes: number;
  /** SiLU mode: per layer the resident [gate; up] matrix. */
  siluGateUp: number[];
}

/** Allocates the weights' buffers, sets the wasm's weight pointers, and places the predictor. */
export function allocateWeights(e: EngineExports, header: ImageHeader, layout: EngineLayout, plan: MemoryPlan, threshold: number | undefined, thresholds?: number[]): WeightBuffers {
  const cfg = header.config, f = header.ffn, emb = plan.embedOnFlash;
  const resident = layout.ioOnly ? 0 : e.alloc(plan.residentBytes, 4096);
  const scratch = plan.scratch ? e.alloc(SCRATCH, 4096) : 0;
  if (emb) e.embed_on_flash(BigInt(section(header, 'resident').offset + emb.offset), rowBytes(emb.dtype, cfg.hidden));
  const ffnLen = section(header, 'ffn.0').length;
  const denseFfn = layout.flash ? [] : Array.from({ length: cfg.nLayers }, () => e.alloc(ffnLen, 4096));

  // Weight pointers: each tensor where the plan puts it in the resident block.
  const embSkip = emb ? tensorBytes(emb.dtype, emb.shape) : 0;
  for (const t of layout.ioOnly ? [] : header.tensors) {
    if (t === emb) { e.set_global(ABI.G_TOK_EMBED, 0, DTYPE_CODE[t.dtype]); continue; }
    const ptr = plan.residentDtype === 'q8_0' ? resident + plan.placed.get(t)! : resident + t.offset - (emb && t.offset >= emb.offset + embSkip ? embSkip : 0);
    const dt = DTYPE_CODE[plan.quantized.has(t) ? 'q8_0' : t.dtype];
    if (t.layer < 0) e.set_global(ABI[GLOBAL_SLOTS[t.role] ?? unknownRole(t.role)], ptr, dt);
    else e.set_layer(t.layer, ABI[LAYER_SLOTS[t.role] ?? unknownRole(t.role)], ptr, dt);
    if (t.role === 'tok_embed' && cfg.tieWordEmbeddings) e.set_global(ABI.G_LM_HEAD, ptr, dt);
  }
  for (let l = 0; l < cfg.nLayers; l++) e.set_layer(l, ABI.L_FFN, layout.flash ? 0 : denseFfn[l], DTYPE_CODE[f.dtype]);

  let predictorBytes = 0;
  if (plan.predictor) {
    const { p, rank: r, dtype } = plan.predictor, q8 = dtype === 'q8_0';
    if (threshold !== undefined && !(threshold > 0 && threshold < 1)) throw new Error(`threshold must be a probability between 0 and 1 (got ${threshold})`);
    const before = e.alloc(0, 16);
    e.predictor_init(r, DTYPE_CODE[dtype]);
    p.layers.forEach((L, l) => {
      const w1 = q8 ? putQ8(e, padRows(L.w1, p.rank, cfg.hidden, r, cfg.hidden), cfg.hidden) : putF16(e, L.w1);
      const b1 = putF32(e, q8 ? padRows(L.b1, p.rank, 1, r, 1) : L.b1);
      const w2 = q8 ? putQ8(e, padRows(L.w2, cfg.ffn, p.rank, cfg.ffn, r), r) : putF16(e, L.w2);
      const b2 = putF32(e, L.b2);
      e.predictor_layer(l, w1, b1, w2, b2, threshold === undefined ? L.threshold : Math.log(threshold / (1 - threshold)));
    });
    predictorBytes = e.alloc(0, 16) - before;
  }
  const siluGateUp: number[] = [];
  if (plan.silu) {
    for (let l = 0; l < cfg.nLayers; l++) {
      siluGateUp.push(e.alloc(plan.silu.layerBytes, 64));
      e.silu_layer(l, siluGateUp[l], DTYPE_CODE[plan.silu.dtype], layout.silu ? thresholds![l] : 0);
    }
  }
  return { resident, scratch, denseFfn, denseFfnBytes: denseFfn.length * ffnLen, predictorBytes, siluGateUp };
}

/** Reads the resident section and (dense) every FFN section into the buffers, verifying checksums. */
export function readWeights(e: EngineExports, src: FlashSource, header: ImageHeader, layout: EngineLayout, plan: MemoryPlan, b: WeightBuffers, fd: number,
  wasi: WasiProvider, onProgress?: Progress, crcTable = 0): void {
  const f = header.ffn, emb = plan.embedOnFlash;
  const sections = [...(layout.ioOnly ? [] : ['resident']), ...[...b.denseFfn, ...b.siluGateUp].map((_, l) => `ffn.${l}`)];
  const totalBytes = sections.reduce((a, n) => a + section(header, n).length, 0);
  let done = 0;
  // Reads a section, verifying its checksum; bytes in `skip` (left on flash) pass through the
  // scratch buffer for the checksum only, and later bytes land that much lower.
  const readSection = (name: string, ptr: number, skip?: { from: number; to: number }, sink?: (off: number, bytes: Uint8Array) => void): void => {
    const s = section(header, name);
    let crc = 0;
    const run = (from: number, to: number, dst: number | undefined, sink?: (off: number, bytes: Uint8Array) => void) => {
      const chunk = dst === undefined ? SCRATCH : READ_CHUNK;
      for (let off = from; off < to; off += chunk) {
        const n = Math.min(chunk, to - off), p = dst === undefined ? b.scratch : dst + (off - from);
        const got = Number(e.flash_read(fd, p, n, BigInt(s.offset + off)));
        if (got < 0) throw new Error(`${src.name}: read of section ${name} failed (${ioCause(-got, wasi)})`);
        if (got !== n) throw new Error(`${src.name}: image is truncated in section ${name}`);
        crc = e.crc32(crc, p, n) >>> 0;
        sink?.(off, new Uint8Array(e.memory.buffer, p, n));
        done += n;
        onProgress?.(done, totalBytes, 'load');
      }
    };
    if (sink) run(0, s.length, undefined, sink);
    else if (!skip) run(0, s.length, ptr);
    else { run(0, skip.from, ptr); run(skip.from, skip.to, undefined); run(skip.to, s.length, ptr + skip.from); }
    if (crc !== s.crc32) throw new Error(`${src.name}: checksum mismatch in section ${name} (file is corrupted)`);
  };

  if (!layout.ioOnly) {
    const skip = emb ? { from: emb.offset, to: emb.offset + tensorBytes(emb.dtype, emb.shape) } : undefined;
    readSection('resident', b.resident, skip, plan.residentDtype === 'q8_0' ? quantSink(e, b.resident, plan) : undefined);
  }
  b.denseFfn.forEach((ptr, l) => {
    readSection(`ffn.${l}`, ptr);
    if (layout.matrix) toMatrices(e.memory, ptr, f, layout.ffnInMemory, header.config.ffn);
  });
  b.siluGateUp.forEach((ptr, l) => readSection(`ffn.${l}`, 0, undefined, siluSink(e, header, layout, plan, ptr, crcTable ? crcTable + 4 * l * header.config.ffn : 0)));
}

/**
 * SiLU mode: one FFN section streamed through the scratch buffer, each bundle's gate and up rows
 * copied (or quantized) into the layer's [gate; up] matrix, and, where `crcs` is given, the
 * CRC-32 of each down column — what the neuron caches hold and the reads are checked against —
 * taken from the bytes the section's own checksum verifies.
 */
function siluSink(e: EngineExports, header: ImageHeader, layout: EngineLayout, plan: MemoryPlan, dst: number, crcs: number): (off: number, bytes: Uint8Array) => void {
  const f = header.ffn, d = header.config.hidden, n = header.config.ffn, dt = plan.silu!.dtype;
  const part = rowBytes(f.dtype, d), out = rowBytes(dt, d), q = dt === 'q8_0' && f.dtype !== 'q8_0';
  const bundle = new Uint8Array(f.bundle_bytes);
  let fill = 0, i = 0;
  const put = (row: Uint8Array, r: number) => new Uint8Array(e.memory.buffer, dst + r * out, out).set(q ? quantize('q8_0', widenToF32(row, f.dtype), d) : row);
  return (_off, bytes) => {
    for (let k = 0; k < bytes.length && i < n;) {
      const m = Math.min(f.bundle_bytes - fill, bytes.length - k);
      bundle.set(bytes.subarray(k, k + m), fill);
      fill += m; k += m;
      if (fill < f.bundle_bytes) break;
      put(bundle.subarray(f.gate, f.gate + part), i);
      const down = bundle.subarray(f.down, f.down + part), up = bundle.subarray(f.up, f.up + part);
      if (!layout.siluGate) put(up, n + i);
      // The CRC of a cache row as the reads fill it: the down column (CATS: the up row, then it).
      if (crcs) new Uint32Array(e.memory.buffer, crcs + 4 * i, 1)[0] = layout.siluGate ? crc32(down, crc32(up)) : crc32(down);
      fill = 0; i++;
    }
  };
}

/**
 * The resident section streamed through the scratch buffer: tensors kept as stored are copied
 * out, the others quantized row by row (no full-size copy is ever held).
 */
function quantSink(e: EngineExports, resident: number, plan: MemoryPlan): (off: number, bytes: Uint8Array) => void {
  // placed holds the tensors in file order and chunks arrive in order: tensors that ended
  // before a chunk are passed for good.
  const order = [...plan.placed.keys()];
  const rows = new Map<TensorEntry, { buf: Uint8Array; fill: number; row: number }>();
  let first = 0;
  return (off, bytes) => {
    const end = off + bytes.length;
    while (first < order.length && order[first].offset + tensorBytes(order[first].dtype, order[first].shape) <= off) first++;
    for (let k = first; k < order.length && order[k].offset < end; k++) {
      const t = order[k], tb = tensorBytes(t.dtype, t.shape);
      const from = Math.max(off, t.offset), to = Math.min(end, t.offset + tb);
      if (from >= to) continue;
      const part = bytes.subarray(from - off, to - off), dst = resident + plan.placed.get(t)!;
      if (!plan.quantized.has(t)) { new Uint8Array(e.memory.buffer, dst + (from - t.offset), part.length).set(part); continue; }
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
export function ioCause(errno: number, wasi: { lastError?: Error } | undefined): string {
  return `${errnoName(errno)}${wasi?.lastError ? `: ${wasi.lastError.message}` : ''}`;
}

export function errnoName(n: number): string {
  return ERRNO_NAMES[n] ? `${ERRNO_NAMES[n]}` : `errno ${n}`;
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

function putF32(e: EngineExports, v: Float32Array): number {
  const p = e.alloc(v.length * 4, 64);
  new Float32Array(e.memory.buffer, p, v.length).set(v);
  return p;
}

/** A (rows, cols) row-major matrix widened to (rows2, cols2) with zeros. */
function padRows(v: Float32Array, rows: number, cols: number, rows2: number, cols2: number): Float32Array {
  if (rows === rows2 && cols === cols2) return v;
  const out = new Float32Array(rows2 * cols2);
  for (let i = 0; i < rows; i++) out.set(v.subarray(i * cols, i * cols + cols), i * cols2);
  return out;
}

function unknownRole(role: string): never {
  throw new Error(`invalid image: unknown tensor role ${role}`);
}
