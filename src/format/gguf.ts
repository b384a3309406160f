// GGUF (llama.cpp's model file, version 3), read and written with every length and offset
// checked against the file:
//
//   u32 magic "GGUF" · u32 version (2 or 3) · u64 tensor count · u64 metadata count
//   metadata: { string key · u32 type · value }            (string = u64 length + UTF-8 bytes;
//                                                            array = u32 type · u64 count · values)
//   tensor infos: { string name · u32 n_dims · u64 ne[n_dims] · u32 ggml type · u64 offset }
//   padding to general.alignment (default 32) · tensor data (offsets relative to its start)
//
// ne[0] is the fastest-varying dimension: a Hugging Face (rows, cols) matrix has ne = [cols, rows].
import type { ModelConfig } from './config.js';
import type { HFCheckpoint } from './hf.js';
import { modelTensors, requiredTensors, type ModelTensors } from './hf.js';
import { LIMITS, int } from './check.js';
import { DType, QUANTIZED, dequantize, quantize, tensorBytes, widenToF32 } from './dtype.js';
import type { RandomAccess } from '../io/source.js';
import type { Predictor } from '../predictor/types.js';
import { shippedPredictor } from '../predictor/shipped.js';
import { ggufSentencePieceTokenizer } from './tokenizer-files.js';

export const GGUF_MAGIC = 0x46554747;   // "GGUF" little-endian
const T = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 } as const;
/** ggml tensor types this engine stores, by our dtype. */
export const GGML_TYPE: Record<DType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 8, bf16: 30 };
const DTYPE_OF = new Map(Object.entries(GGML_TYPE).map(([k, v]) => [v, k as DType]));

export type GGUFValue = number | bigint | boolean | string | GGUFValue[];
export interface GGUFTensor { name: string; dims: number[]; dtype: DType; offset: number; bytes: number }
export interface GGUFFile {
  version: number;
  metadata: Map<string, GGUFValue>;
  /** Each metadata value's GGUF type: "u32", "f32", "string", "array[string]" … */
  types: Map<string, string>;
  tensors: Map<string, GGUFTensor>;
  /** Absolute file offset of the data region. */
  dataStart: number;
  alignment: number;
}

const TYPE_NAMES = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'];
/** The fewest bytes a value of each type takes (a string: its length; an array: type + count). */
const MIN_BYTES = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];
/**
 * Header limits (llama.cpp's where it has them): tensor names as GGML_MAX_NAME, 4 dimensions;
 * keys, strings and arrays far beyond any model's (a vocabulary of 256k tokens, a chat template of
 * a few kB), so that no length field drives an allocation the file does not back.
 */
const MAX = { name: 63, key: 1 << 16, string: 1 << 24, array: 1 << 24, count: 1 << 20 };

/** Reads the GGUF header of a file through `read(position, length)`; the file is `size` bytes. */
export function readGGUF(read: (pos: number, len: number) => Uint8Array, size: number, name = 'GGUF file'): GGUFFile {
  const bad = (why: string): never => { throw new Error(`${name}: not a valid GGUF file (${why})`); };
  // The header is parsed from a growing window of the file's start.
  let buf = read(0, Math.min(size, 1 << 20)), dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength), pos = 0;
  const need = (n: number) => {
    if (pos + n > size) bad(`header runs past the end of the file at byte ${pos}`);
    if (pos + n > buf.length) {
      buf = read(0, Math.min(size, Math.max(pos + n, buf.length * 2)));
      dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    }
  };
  const u32 = () => { need(4); const v = dv.getUint32(pos, true); pos += 4; return v; };
  const u64 = (what: string) => {
    need(8); const v = dv.getBigUint64(pos, true); pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) bad(`${what} of ${v} is too large`);
    return Number(v);
  };
  const str = (what: string, max: number) => {
    const at = pos, n = u64(`${what} length`);
    if (n > max) bad(`${what} at byte ${at} of ${n} bytes (at most ${max})`);
    need(n);
    let s = '';
    try { s = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(pos, pos + n)); } catch { bad(`${what} at byte ${pos} is not UTF-8`); }
    pos += n;
    return s;
  };
  const value = (type: number, key: string): GGUFValue => {
    switch (type) {
      case T.U8: need(1); return dv.getUint8(pos++);
      case T.I8: need(1); return dv.getInt8(pos++);
      case T.U16: { need(2); const v = dv.getUint16(pos, true); pos += 2; return v; }
      case T.I16: { need(2); const v = dv.getInt16(pos, true); pos += 2; return v; }
      case T.U32: return u32();
      case T.I32: { need(4); const v = dv.getInt32(pos, true); pos += 4; return v; }
      case T.F32: { need(4); const v = dv.getFloat32(pos, true); pos += 4; return v; }
      case T.BOOL: { need(1); const v = dv.getUint8(pos++); if (v > 1) bad(`${key}: bool value ${v}`); return v === 1; }
      case T.STRING: return str(`${key}: string`, MAX.string);
      case T.U64: { need(8); const v = dv.getBigUint64(pos, true); pos += 8; return v; }
      case T.I64: { need(8); const v = dv.getBigInt64(pos, true); pos += 8; return v; }
      case T.F64: { need(8); const v = dv.getFloat64(pos, true); pos += 8; return v; }
      default: return bad(`${key}: metadata value type ${type}`);
    }
  };

  if (u32() !== GGUF_MAGIC) bad('magic');
  const version = u32();
  if (version !== 2 && version !== 3) bad(`version ${version} (2 or 3 supported)`);
  const nTensors = u64('tensor count'), nKv = u64('metadata count');
  // Each entry takes bytes of the file: a count the file cannot hold is corrupt, whatever its size.
  if (nTensors > MAX.count || nKv > MAX.count) bad(`${nTensors} tensors and ${nKv} metadata entries (at most ${MAX.count} each)`);
  if (nKv * 13 + nTensors * 32 > size - pos) bad(`header runs past the end of the file: ${nTensors} tensors and ${nKv} metadata entries do not fit its ${size} bytes`);
  const metadata = new Map<string, GGUFValue>(), types = new Map<string, string>();
  for (let i = 0; i < nKv; i++) {
    const key = str('key', MAX.key);
    if (metadata.has(key)) bad(`metadata key ${key} twice`);
    const type = u32();
    if (type === T.ARRAY) {
      const et = u32(), at = pos, n = u64(`${key}: array length`);
      if (!(et < TYPE_NAMES.length) || et === T.ARRAY) bad(`${key}: arrays of type ${TYPE_NAMES[et] ?? et} are not supported`);
      if (n > MAX.array || n * MIN_BYTES[et] > size - pos) bad(`${key}: array of ${n} elements at byte ${at} does not fit the file (at most ${MAX.array})`);
      const out: GGUFValue[] = new Array(n);
      for (let j = 0; j < n; j++) out[j] = value(et, key);
      metadata.set(key, out);
      types.set(key, `array[${TYPE_NAMES[et]}]`);
    } else {
      metadata.set(key, value(type, key));
      types.set(key, TYPE_NAMES[type]);
    }
  }
  const al = metadata.get('general.alignment') ?? 32;
  if (types.has('general.alignment') && types.get('general.alignment') !== 'u32') bad(`general.alignment is ${types.get('general.alignment')} (expected u32)`);
  const alignment = Number(al);
  if (alignment < 1 || alignment > 1 << 16 || (alignment & (alignment - 1))) bad(`alignment ${alignment} (a power of two up to 65536)`);
  const infos: { name: string; dims: number[]; type: number; offset: number }[] = [];
  for (let i = 0; i < nTensors; i++) {
    const tname = str('tensor name', MAX.name);
    const nd = u32();
    if (nd < 1 || nd > 4) bad(`tensor ${tname} has ${nd} dimensions (1 to 4)`);
    const dims = Array.from({ length: nd }, () => u64(`tensor ${tname}: dimension`));
    infos.push({ name: tname, dims, type: u32(), offset: u64(`tensor ${tname}: offset`) });
  }
  const dataStart = Math.ceil(pos / alignment) * alignment;
  const tensors = new Map<string, GGUFTensor>();
  const spans: [number, number, string][] = [];
  for (const t of infos) {
    if (tensors.has(t.name)) bad(`tensor ${t.name} twice`);
    const dtype = DTYPE_OF.get(t.type);
    if (!dtype) bad(`tensor ${t.name} has ggml type ${t.type} (F32, F16, BF16, Q8_0 and Q4_0 are supported)`);
    if (t.dims.some((d) => d < 1)) bad(`tensor ${t.name} has an empty dimension`);
    // No tensor stores more than two elements per byte (Q4_0: 32 in 18): bound ne before multiplying.
    let numel = 1;
    for (const d of t.dims) { numel *= d; if (numel > 2 * size) bad(`tensor ${t.name} of ne [${t.dims}] is larger than the file`); }
    if (QUANTIZED.has(dtype!) && t.dims[0] % 32) bad(`tensor ${t.name} is ${dtype} with rows of ${t.dims[0]} elements`);
    if (t.offset % alignment) bad(`tensor ${t.name} is not aligned`);
    const bytes = tensorBytes(dtype!, [...t.dims].reverse());
    if (dataStart + t.offset + bytes > size) bad(`tensor ${t.name} lies past the end of the file`);
    tensors.set(t.name, { name: t.name, dims: t.dims, dtype: dtype!, offset: dataStart + t.offset, bytes });
    spans.push([t.offset, t.offset + bytes, t.name]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) if (spans[i][0] < spans[i - 1][1]) bad(`tensors ${spans[i - 1][2]} and ${spans[i][2]} overlap`);
  return { version, metadata, types, tensors, dataStart, alignment };
}

/** A metadata value for writeGGUF: plain numbers need their GGUF type. */
export type GGUFEntry = { type: 'u32' | 'i32' | 'f32' | 'bool' | 'string'; value: number | boolean | string } | { type: 'array'; of: 'string' | 'i32'; value: (string | number)[] };

/**
 * Writes a GGUF v3 file through `write(bytes, position)`: `tensors` in order, each with its
 * dims (ne order) and a function producing its bytes (called once, in order).
 */
export function writeGGUF(write: (bytes: Uint8Array, pos: number) => void, metadata: [string, GGUFEntry][],
  tensors: { name: string; dims: number[]; dtype: DType; data: () => Uint8Array }[], alignment = 32): void {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const u32 = (v: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v, true); parts.push(b); };
  const i32 = (v: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setInt32(0, v, true); parts.push(b); };
  const u64 = (v: number) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(v), true); parts.push(b); };
  const str = (s: string) => { const b = enc.encode(s); u64(b.length); parts.push(b); };
  u32(GGUF_MAGIC); u32(3); u64(tensors.length); u64(metadata.length + 1);
  str('general.alignment'); u32(T.U32); u32(alignment);
  for (const [key, e] of metadata) {
    str(key);
    if (e.type === 'array') {
      u32(T.ARRAY); u32(e.of === 'string' ? T.STRING : T.I32); u64(e.value.length);
      for (const v of e.value) e.of === 'string' ? str(v as string) : i32(v as number);
      continue;
    }
    const code = { u32: T.U32, i32: T.I32, f32: T.F32, bool: T.BOOL, string: T.STRING }[e.type];
    u32(code);
    if (e.type === 'u32') u32(e.value as number);
    else if (e.type === 'i32') i32(e.value as number);
    else if (e.type === 'f32') { const b = new Uint8Array(4); new DataView(b.buffer).setFloat32(0, e.value as number, true); parts.push(b); }
    else if (e.type === 'bool') parts.push(Uint8Array.of(e.value ? 1 : 0));
    else str(e.value as string);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    str(t.name); u32(t.dims.length);
    for (const d of t.dims) u64(d);
    u32(GGML_TYPE[t.dtype]);
    offsets.push(offset); u64(offset);
    offset = Math.ceil((offset + tensorBytes(t.dtype, [...t.dims].reverse())) / alignment) * alignment;
  }
  let pos = 0;
  for (const p of parts) { write(p, pos); pos += p.length; }
  const dataStart = Math.ceil(pos / alignment) * alignment;
  if (dataStart > pos) write(new Uint8Array(dataStart - pos), pos);
  tensors.forEach((t, i) => {
    const bytes = t.data();
    const want = tensorBytes(t.dtype, [...t.dims].reverse());
    if (bytes.length !== want) throw new Error(`GGUF tensor ${t.name}: ${bytes.length} bytes, expected ${want}`);
    write(bytes, dataStart + offsets[i]);
    const end = dataStart + offsets[i] + bytes.length, next = i + 1 < tensors.length ? dataStart + offsets[i + 1] : end;
    if (next > end) write(new Uint8Array(next - end), end);
  });
}

/**
 * Reorders the rows of a q or k projection between the two rotary layouts: Hugging Face rotates
 * pairs (j, j + hd/2) of each head, llama.cpp pairs (2j, 2j + 1). Rows move whole (any dtype).
 */
export function rotaryRows(raw: Uint8Array, heads: number, hd: number, to: 'gguf' | 'hf'): Uint8Array {
  const rb = raw.length / (heads * hd), out = new Uint8Array(raw.length);
  for (let h = 0; h < heads; h++) for (let half = 0; half < 2; half++) for (let j = 0; j < hd / 2; j++) {
    const hf = h * hd + half * (hd / 2) + j, gg = h * hd + 2 * j + half;
    const [from, at] = to === 'gguf' ? [hf, gg] : [gg, hf];
    out.set(raw.subarray(from * rb, (from + 1) * rb), at * rb);
  }
  return out;
}

/** The GGUF header of an opened file. */
export function readGGUFSource(src: RandomAccess, name: string): GGUFFile {
  return readGGUF((p, l) => { const b = new Uint8Array(Math.min(l, src.size - p)); src.pread(b, p); return b; }, src.size, name);
}

/** Typed access to GGUF metadata: each getter checks the value's GGUF type and range. */
function typedMetadata(g: GGUFFile, bad: (why: string) => never) {
  const m = g.metadata, ty = (k: string) => g.types.get(k) ?? 'missing';
  const isInt = (t: string) => /^[ui](8|16|32|64)$/.test(t);
  const key = (k: string) => `GGUF metadata ${k}`;
  return {
    has: (k: string) => m.has(k),
    int(k: string, min: number, max: number, dflt?: number): number {
      if (!m.has(k)) return dflt ?? bad(`${key(k)} is missing`);
      if (!isInt(ty(k))) bad(`${key(k)} is ${ty(k)} (expected an integer)`);
      return int(m.get(k), key(k), min, max, bad);
    },
    float(k: string, dflt: number | undefined, ok: (x: number) => boolean, expected: string): number {
      if (!m.has(k)) return dflt ?? bad(`${key(k)} is missing`);
      if (ty(k) !== 'f32' && ty(k) !== 'f64') bad(`${key(k)} is ${ty(k)} (expected f32)`);
      const x = m.get(k) as number;
      if (!Number.isFinite(x) || !ok(x)) bad(`${key(k)} is ${x} (expected ${expected})`);
      return x;
    },
    str(k: string): string | undefined {
      if (m.has(k) && ty(k) !== 'string') bad(`${key(k)} is ${ty(k)} (expected a string)`);
      return m.get(k) as string | undefined;
    },
    bool(k: string): boolean | undefined {
      if (m.has(k) && ty(k) !== 'bool') bad(`${key(k)} is ${ty(k)} (expected a bool)`);
      return m.get(k) as boolean | undefined;
    },
    /** An array of strings, of integers, or of numbers (integers or floats); of `length` elements when given. */
    array(k: string, of: 'string' | 'int' | 'number', length?: number): GGUFValue[] | undefined {
      if (!m.has(k)) return undefined;
      const et = /^array\[(\w+)\]$/.exec(ty(k))?.[1] ?? '';
      if (!(of === 'string' ? et === 'string' : isInt(et) || (of === 'number' && (et === 'f32' || et === 'f64')))) {
        bad(`${key(k)} is ${ty(k)} (expected an array of ${of === 'string' ? 'strings' : of === 'int' ? 'integers' : 'numbers'})`);
      }
      const a = m.get(k) as GGUFValue[];
      if (length !== undefined && a.length !== length) bad(`${key(k)} has ${a.length} elements (expected one per token: ${length})`);
      return a;
    },
  };
}

/**
 * The shape of a llama GGUF's model from its metadata: every number of the right GGUF type,
 * within LIMITS, and consistent (heads divide the width, KV heads the heads, rotary over the
 * whole head), before any loop or allocation uses it. What the engine does not compute (partial
 * rotary, rope scaling, experts) is refused by name.
 */
function ggufShape(g: GGUFFile, bad: (why: string) => never) {
  const k = typedMetadata(g, bad);
  const arch = k.str('general.architecture');
  if (arch !== 'llama') bad(`GGUF architecture "${String(arch)}" is not supported (llama only)`);
  return {
    k,
    get() {
      const d = k.int('llama.embedding_length', 1, LIMITS.dim), nLayers = k.int('llama.block_count', 1, LIMITS.layers);
      const nHeads = k.int('llama.attention.head_count', 1, Math.min(LIMITS.heads, d));
      if (!k.has('llama.attention.key_length') && d % nHeads) bad(`GGUF metadata llama.embedding_length ${d} is not divisible by llama.attention.head_count ${nHeads}`);
      const nKvHeads = k.int('llama.attention.head_count_kv', 1, nHeads, nHeads);
      if (nHeads % nKvHeads) bad(`GGUF metadata llama.attention.head_count ${nHeads} is not a multiple of llama.attention.head_count_kv ${nKvHeads}`);
      const headDim = k.int('llama.attention.key_length', 2, Math.floor(LIMITS.dim / nHeads), d / nHeads);
      if (headDim % 2) bad(`the head dimension ${headDim} is odd (rotary embeddings rotate pairs)`);
      const vDim = k.int('llama.attention.value_length', 1, LIMITS.dim, headDim);
      if (vDim !== headDim) bad(`GGUF metadata llama.attention.value_length ${vDim} differs from the key length ${headDim} (one head dimension is supported)`);
      const rope = k.int('llama.rope.dimension_count', 1, LIMITS.dim, headDim);
      if (rope > headDim) bad(`GGUF metadata llama.rope.dimension_count ${rope} exceeds the head dimension ${headDim}`);
      if (rope < headDim) bad(`GGUF metadata llama.rope.dimension_count ${rope} is less than the head dimension ${headDim} (partial rotary embeddings are not supported)`);
      const scaling = k.str('llama.rope.scaling.type') ?? 'none';
      const factor = k.float('llama.rope.scaling.factor', 0, (x) => x >= 0, 'a non-negative number');
      if (scaling !== 'none' || (factor !== 0 && factor !== 1)) bad(`rope scaling (llama.rope.scaling.type "${scaling}", factor ${factor}) is not supported`);
      const experts = k.int('llama.expert_count', 0, LIMITS.dim, 0);
      if (experts > 0) bad(`GGUF metadata llama.expert_count is ${experts}: mixture-of-experts models are not supported`);
      return {
        d, nLayers, nHeads, nKvHeads, headDim, ffn: k.int('llama.feed_forward_length', 1, LIMITS.dim),
        maxPositions: k.int('llama.context_length', 1, LIMITS.context),
        normEps: k.float('llama.attention.layer_norm_rms_epsilon', undefined, (x) => x > 0 && x < 1, 'a number between 0 and 1'),
        ropeTheta: k.float('llama.rope.freq_base', 10000, (x) => x > 0, 'a positive number'),
      };
    },
  };
}

/**
 * The predictor a PowerInfer-style GGUF carries (see above), for the model with `fingerprint`
 * (the image converted from the file); undefined when it has none. Every layer must have one, of
 * one rank, shaped for the model; F32, F16, BF16, Q8_0 and Q4_0 tensors are read.
 */
export function readGGUFPredictor(src: RandomAccess, path: string, fingerprint: string): Predictor | undefined {
  {
    const g = readGGUFSource(src, path);
    if (!g.tensors.has('blk.0.fc1.weight')) return undefined;
    const bad = (why: string): never => { throw new Error(`${path}: predictor tensors: ${why}`); };
    const shape = ggufShape(g, (why) => { throw new Error(`${path}: ${why}`); });
    const { d, ffn, nLayers } = shape.get();
    const thr = shape.k.float('powerinfer.sparse_threshold', 0, () => true, 'a finite number');
    const values = (t: GGUFTensor): Float32Array => {
      const raw = new Uint8Array(t.bytes);
      if (src.pread(raw, t.offset) !== t.bytes) bad(`${t.name} is truncated`);
      return QUANTIZED.has(t.dtype) ? dequantize(t.dtype, raw, t.dims.reduce((a, b) => a * b, 1)) : widenToF32(raw, t.dtype);
    };
    const get = (name: string, dims: number[] | undefined, optional = false) => {
      const t = g.tensors.get(name);
      if (!t) return optional ? undefined : bad(`${name} is missing (a predictor needs fc1 and fc2 in every layer)`);
      if (dims && (t.dims.length !== dims.length || t.dims.some((v, i) => v !== dims[i]))) bad(`${name} has ne [${t.dims}], expected [${dims}]`);
      return values(t);
    };
    const rank = g.tensors.get('blk.0.fc1.weight')!.dims[1];
    if (g.tensors.get('blk.0.fc1.weight')!.dims.length !== 2 || !(rank > 0 && rank <= LIMITS.dim)) bad('blk.0.fc1.weight is not a matrix');
    const layers = Array.from({ length: nLayers }, (_, l) => ({
      w1: get(`blk.${l}.fc1.weight`, [d, rank])!, w2: get(`blk.${l}.fc2.weight`, [rank, ffn])!,
      b1: get(`blk.${l}.fc1.bias`, [rank], true), b2: get(`blk.${l}.fc2.bias`, [ffn], true),
    }));
    if (g.tensors.has(`blk.${nLayers}.fc1.weight`)) bad(`there are more predictor layers than the model's ${nLayers}`);
    return shippedPredictor(layers, { rank, hidden: d, ffn }, thr, fingerprint, path);
  }
}

// ---- import: a llama-family GGUF as a checkpoint the image writer converts ----

/** Hugging Face names of a llama layer's tensors and their GGUF names (blk.N.*). */
const LAYER_NAMES: [string, string][] = [['input_layernorm', 'attn_norm'], ['self_attn.q_proj', 'attn_q'], ['self_attn.k_proj', 'attn_k'],
  ['self_attn.v_proj', 'attn_v'], ['self_attn.o_proj', 'attn_output'], ['post_attention_layernorm', 'ffn_norm'],
  ['mlp.gate_proj', 'ffn_gate'], ['mlp.up_proj', 'ffn_up'], ['mlp.down_proj', 'ffn_down']];

/**
 * The GGUF tensor behind each Hugging Face tensor of `mt` (GGUF names in `names`), each with the
 * ne the metadata implies; the file may hold no other tensor (as llama.cpp requires) but a
 * PowerInfer predictor's. A missing, misshapen or unknown tensor is named.
 */
function ggufSources(g: GGUFFile, mt: ModelTensors, names: Map<string, string>, nLayers: number, bad: (why: string) => never) {
  const source = new Map<string, { t: GGUFTensor; transposed: boolean }>();
  for (const spec of requiredTensors(mt)) {
    const gg = names.get(spec.name) ?? bad(`internal error: no GGUF name for ${spec.name}`);
    let t = g.tensors.get(gg), want = [...spec.shape].reverse(), transposed = false;
    if (!t && gg.endsWith('.ffn_down.weight')) {
      t = g.tensors.get(gg.replace(/ffn_down\.weight$/, 'ffn_down_t.weight'));
      want = [...spec.shape];
      transposed = true;
    }
    if (!t) bad(`tensor ${gg} is missing`);
    if (t!.dims.length !== want.length || t!.dims.some((v, i) => v !== want[i])) bad(`tensor ${t!.name} has ne [${t!.dims}], expected [${want}] (from the metadata)`);
    source.set(spec.name, { t: t!, transposed });
  }
  const used = new Set([...source.values()].map((s) => s.t.name));
  for (const tn of g.tensors.keys()) {
    if (used.has(tn)) continue;
    const layer = /^blk\.(\d+)\./.exec(tn)?.[1];
    if (layer !== undefined && Number(layer) >= nLayers) bad(`tensor ${tn} belongs to no layer (llama.block_count is ${nLayers})`);
    if (/^blk\.\d+\.fc[12]\.(weight|bias)$/.test(tn)) continue;   // the predictor: readGGUFPredictor
    bad(`tensor ${tn} is not one the llama graph uses${tn === 'rope_freqs.weight' ? ' (rope frequency factors are not supported)' : ''}`);
  }
  return source;
}

/**
 * Opens a llama-architecture GGUF (F32, F16, BF16, Q8_0, Q4_0 tensors) as a checkpoint with
 * Hugging Face names and layout (attn_q/attn_k rows back in Hugging Face's rotary order), and
 * a tokenizer.json rebuilt from its GPT-2 byte-level vocabulary or its SentencePiece pieces
 * (tokenizer.ggml.model "llama", as a tokenizer.model: tokenizer-files.ts). ReLU models are recognised by
 * name (ReluLLaMA, ProSparse, TurboSparse; `flashneuron.activation` in files this tool writes);
 * other llama GGUFs run with SiLU, as llama.cpp runs them. Every tensor the model needs must be
 * there with the ne its metadata implies, and no other (as llama.cpp requires).
 */
export function openGGUFCheckpoint(src: RandomAccess & { close(): void }, path: string, activation?: 'relu' | 'silu'): HFCheckpoint {
  try {
    const g = readGGUFSource(src, path);
    const m = g.metadata;
    const bad = (why: string): never => { throw new Error(`${path}: ${why}`); };
    const shape = ggufShape(g, bad), k = shape.k;
    // Tokenizer: "gpt2" is a byte-level BPE (tokens + merges), "llama" a SentencePiece BPE (tokens + scores + types).
    const tokModel = k.str('tokenizer.ggml.model'), tokens = k.array('tokenizer.ggml.tokens', 'string') as string[] | undefined;
    const merges = k.array('tokenizer.ggml.merges', 'string'), scores = k.array('tokenizer.ggml.scores', 'number');
    const spm = tokModel === 'llama' && tokens !== undefined && scores !== undefined;
    if (!spm && (tokModel !== 'gpt2' || tokens === undefined || merges === undefined)) {
      const what = tokModel === 'llama' ? 'tokenizer.ggml.model "llama" without tokens and scores'
        : tokModel === 'gpt2' ? 'tokenizer.ggml.model "gpt2" without tokens and merges' : `tokenizer.ggml.model ${JSON.stringify(tokModel ?? null)}`;
      bad(`${what}: supported are GPT-2 byte-level BPE ("gpt2" with tokens and merges) and SentencePiece BPE ("llama" with tokens and scores)`);
    }
    const { d, nLayers, nHeads, nKvHeads, headDim, ffn, maxPositions, normEps, ropeTheta } = shape.get();
    const vocab = tokens!.length;
    if (vocab < 1) bad('GGUF metadata tokenizer.ggml.tokens is empty');
    const nVocab = k.int('llama.vocab_size', 1, LIMITS.vocab, vocab);
    if (nVocab !== vocab) bad(`GGUF metadata llama.vocab_size ${nVocab} differs from the ${vocab} tokens of tokenizer.ggml.tokens`);
    k.array('tokenizer.ggml.token_type', 'int', vocab);
    const name = k.str('general.name') ?? '', act = k.str('flashneuron.activation');
    if (act !== undefined && act !== 'relu' && act !== 'silu') bad(`GGUF metadata flashneuron.activation is "${act}" (expected relu or silu)`);
    const relu = activation ? activation === 'relu' : act === 'relu' || /relu|prosparse|turbosparse/i.test(name);
    // Special ids index the vocabulary; a padding id outside it means none (llama.cpp ignores it too).
    const id = (key: string, dflt: number) => (k.has(key) ? k.int(key, 0, vocab - 1) : dflt);
    const pad = k.int('tokenizer.ggml.padding_token_id', 0, 2 ** 32 - 1, 0);
    if (k.has('tokenizer.ggml.unknown_token_id')) id('tokenizer.ggml.unknown_token_id', 0);
    k.bool('tokenizer.ggml.add_bos_token'); k.bool('tokenizer.ggml.add_eos_token'); k.bool('tokenizer.ggml.add_space_prefix');
    const config: ModelConfig = {
      architecture: 'LlamaForCausalLM', arch: 'llama', nLayers, hidden: d, ffn, nHeads, nKvHeads, headDim, vocab,
      maxPositions, normEps, act: relu ? 'relu' : 'silu', ropeTheta, posOffset: 0, tieWordEmbeddings: !g.tensors.has('output.weight'),
      attnBias: false, mlpBias: false, hasGate: true,
      bosId: id('tokenizer.ggml.bos_token_id', 1), eosIds: [id('tokenizer.ggml.eos_token_id', 2)], padId: pad < vocab ? pad : -1,
    };
    // Every tensor the engine reads, by Hugging Face name: its GGUF tensor, checked against the
    // ne the metadata implies. PowerInfer's files store ffn_down transposed (ffn_down_t, ne [d,
    // ffn]: a neuron's down column per row); it is read back into Hugging Face's (d, ffn) down_proj.
    const mt = modelTensors(config);
    const names = new Map<string, string>([[mt.globals.tokEmbed.name, 'token_embd.weight'], [mt.globals.normW.name, 'output_norm.weight']]);
    if (mt.globals.lmHead) names.set(mt.globals.lmHead.name, 'output.weight');
    for (let l = 0; l < nLayers; l++) for (const [hf, gg] of LAYER_NAMES) names.set(`model.layers.${l}.${hf}.weight`, `blk.${l}.${gg}.weight`);
    // Checked at the first tensor access (a conversion's first step), so that the tokenizer of a
    // file can be read on its own.
    let source: Map<string, { t: GGUFTensor; transposed: boolean }> | undefined;
    const verify = () => source ??= ggufSources(g, mt, names, nLayers, bad);
    const info = (hfName: string) => verify().get(hfName) ?? bad(`tensor ${hfName} is not one of the model's`);
    const hd = config.headDim;
    let tokenizerJson: string, tokenizerConfig: Record<string, unknown> | undefined;
    if (spm) {
      try {
        ({ tokenizerJson, tokenizerConfig } = ggufSentencePieceTokenizer((key) => (key === 'tokenizer.ggml.padding_token_id' && config.padId < 0 ? undefined : m.get(key))));
      } catch (e) {
        bad(`SentencePiece tokenizer: ${(e as Error).message}`);
      }
    } else {
      const specials = new Set<number>();
      const types = m.get('tokenizer.ggml.token_type');
      if (Array.isArray(types)) types.forEach((t, i) => { if (Number(t) === 3) specials.add(i); });
      const vocabMap: Record<string, number> = {};
      (tokens as string[]).forEach((s, i) => { if (!specials.has(i)) vocabMap[s] = i; });
      const added = [...specials].map((id) => ({ id, content: (tokens as string[])[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
      const bos = (tokens as string[])[config.bosId];
      const addBos = m.get('tokenizer.ggml.add_bos_token') !== false;
      tokenizerJson = JSON.stringify({
        version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
        pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
        post_processor: addBos ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { [bos]: { id: bos, ids: [config.bosId], tokens: [bos] } },
        } : null,
        decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
        model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: vocabMap, merges },
      });
    }
    // The chat template (tokenizer.chat_template; named ones as tokenizer.chat_template.NAME, listed
    // in tokenizer.chat_templates) goes where tokenizer_config.json has it: chat_template.
    const chat = k.str('tokenizer.chat_template'), chatNames = k.array('tokenizer.chat_templates', 'string') ?? [];
    const named = chatNames.map((n) => ({ name: String(n), template: k.str(`tokenizer.chat_template.${String(n)}`) }))
      .filter((t) => typeof t.template === 'string');
    if (named.length > 0) tokenizerConfig = { ...tokenizerConfig, chat_template: [...(typeof chat === 'string' ? [{ name: 'default', template: chat }] : []), ...named] };
    else if (typeof chat === 'string') tokenizerConfig = { ...tokenizerConfig, chat_template: chat };
    return {
      dir: path, origin: 'gguf', config, rawConfig: Object.fromEntries(m), tensors: mt,
      tokenizerJson: tokenizerJson!, tokenizerConfig,
      tensor(hfName) {
        const { t, transposed } = info(hfName);
        const shape = transposed ? [...t.dims] : [...t.dims].reverse();
        return { name: hfName, stDtype: t.dtype.toUpperCase(), dtype: t.dtype, shape, file: path, offset: t.offset, length: tensorBytes(t.dtype, shape) };
      },
      readTensor(hfName, dst) {
        const { t, transposed } = info(hfName);
        if (transposed) {
          const raw = new Uint8Array(t.bytes);
          if (src.pread(raw, t.offset) !== t.bytes) bad(`tensor ${t.name} is truncated`);
          return transposeRows(raw, t.dtype, config.ffn, d);
        }
        const out = dst && dst.length >= t.bytes ? dst.subarray(0, t.bytes) : new Uint8Array(t.bytes);
        if (src.pread(out, t.offset) !== t.bytes) bad(`tensor ${t.name} is truncated`);
        const role = /self_attn\.(q|k)_proj/.exec(hfName)?.[1];
        return role ? rotaryRows(out, role === 'q' ? config.nHeads : config.nKvHeads, hd, 'hf') : out;
      },
      close() { src.close(); },
    };
  } catch (e) {
    src.close();
    throw e;
  }
}

/**
 * A (rows, cols) matrix of dtype `dt` as (cols, rows). Float types move their bits; quantized
 * blocks run along rows, so those are dequantized, transposed and quantized along the new rows.
 */
export function transposeRows(raw: Uint8Array, dt: DType, rows: number, cols: number): Uint8Array {
  if (QUANTIZED.has(dt)) {
    const m = dequantize(dt, raw, rows * cols), o = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) o[c * rows + r] = m[r * cols + c];
    return quantize(dt as 'q8_0' | 'q4_0', o, rows);
  }
  const es = dt === 'f32' ? 4 : 2, out = new Uint8Array(raw.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const s = (r * cols + c) * es, t = (c * rows + r) * es;
      for (let k = 0; k < es; k++) out[t + k] = raw[s + k];
    }
  }
  return out;
}
