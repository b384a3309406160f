// Element types of stored tensors and their conversions: f32, f16, bf16, and block
// quantization as GGUF's Q8_0 and Q4_0 (the wasm kernels: assembly/dtype.ts, assembly/kernels/quant.ts).
// Rows of n elements (n a multiple of 32) become n/32 blocks:
//   Q8_0  f16 scale d = max|x| / 127, then 32 int8 q = round(x / d)             (34 bytes)
//   Q4_0  f16 scale d = x_m / -8 (x_m: the element of largest magnitude, signed), then 16
//         bytes: element j in the low nibble of byte j, element j+16 in the high nibble,
//         nibble = min(15, trunc(x / d + 8.5))                                  (18 bytes)
// as llama.cpp's reference quantizers do, so files exchanged with GGUF tools agree bit for bit.

export type DType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0';

/** Numeric codes used in the image and by assembly/dtype.ts. */
export const DTYPE_CODE: Record<DType, number> = { f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_0: 4 };
/** Bytes per element (quantized types: per element on average; their rows come in 32-element blocks). */
export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, bf16: 2, q8_0: 34 / 32, q4_0: 18 / 32 };
/** Block-quantized types (GGUF Q8_0 / Q4_0 layout, below): rows of a multiple of 32 elements. */
export const QUANTIZED: ReadonlySet<DType> = new Set(['q8_0', 'q4_0']);

/** Bytes of a row of n elements. */
export function rowBytes(dt: DType, n: number): number {
  if (QUANTIZED.has(dt)) {
    if (n % 32) throw new Error(`a ${dt} row needs a multiple of 32 elements (got ${n})`);
    return (n / 32) * (dt === 'q8_0' ? 34 : 18);
  }
  return n * DTYPE_BYTES[dt];
}

/** Bytes of a tensor stored row by row (the last dimension is the row). */
export function tensorBytes(dt: DType, shape: readonly number[]): number {
  const n = shape.length ? shape[shape.length - 1] : 1;
  return shape.slice(0, -1).reduce((a, b) => a * b, 1) * rowBytes(dt, n);
}


// ---- f16 / bf16 ----

const cvt = new Float32Array(1);
const cvtU = new Uint32Array(cvt.buffer);

/** IEEE binary16 bits of v (round to nearest even; overflow to ±Inf). */
export function f32ToF16(v: number): number {
  cvt[0] = v;
  const x = cvtU[0];
  const sign = (x >>> 16) & 0x8000;
  const e = (x >>> 23) & 0xff;
  let m = x & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  const he = e - 127 + 15;
  if (he >= 31) return sign | 0x7c00;
  if (he <= 0) {
    if (he < -10) return sign;
    m |= 0x800000;
    const shift = 14 - he;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (he << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // carries into the exponent correctly
  return sign | h;
}

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Raw little-endian tensor bytes of dtype `dt` as f32 values. */
export function widenToF32(raw: Uint8Array, dt: DType): Float32Array {
  if (dt === 'f32') return new Float32Array(raw.slice().buffer);
  if (QUANTIZED.has(dt)) return dequantize(dt, raw, (raw.length / (dt === 'q8_0' ? 34 : 18)) * 32);
  const n = raw.length >> 1, out = new Float32Array(n);
  const u16 = new Uint16Array(raw.slice().buffer);
  if (dt === 'bf16') new Uint32Array(out.buffer).set(Array.from(u16, (h) => h << 16));
  else for (let i = 0; i < n; i++) out[i] = f16ToF32(u16[i]);
  return out;
}

/** Raw tensor bytes of dtype `from` as dtype `to` (rows of `n` elements, for quantized types). */
export function convertDtype(raw: Uint8Array, from: DType, to: DType, n: number): Uint8Array {
  if (from === to) return raw;
  const f = widenToF32(raw, from);
  if (to === 'f32') return new Uint8Array(f.buffer);
  if (to === 'q8_0' || to === 'q4_0') return quantize(to, f, n);
  const out = new Uint16Array(f.length), bits = new Uint32Array(f.buffer);
  if (to === 'f16') for (let i = 0; i < f.length; i++) out[i] = f32ToF16(f[i]);
  else for (let i = 0; i < f.length; i++) { const b = bits[i]; out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16; }  // bf16, nearest even
  return new Uint8Array(out.buffer);
}

// ---- Q8_0 / Q4_0 ----

/** Quantizes `x` (rows of `n` elements, row after row) into `out` (or a new array). */
export function quantize(dt: 'q8_0' | 'q4_0', x: Float32Array, n: number, out?: Uint8Array): Uint8Array {
  if (n % 32 || x.length % n) throw new Error(`${dt}: rows of a multiple of 32 elements (got ${n})`);
  const bs = dt === 'q8_0' ? 34 : 18, blocks = x.length / 32;
  const o = out ?? new Uint8Array(blocks * bs);
  const dv = new DataView(o.buffer, o.byteOffset, o.byteLength);
  for (let b = 0; b < blocks; b++) {
    const at = b * bs, xs = b * 32;
    if (dt === 'q8_0') {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[xs + j]));
      const d = Math.fround(amax / 127), id = d ? Math.fround(1 / d) : 0;
      dv.setUint16(at, f32ToF16(d), true);
      for (let j = 0; j < 32; j++) dv.setInt8(at + 2 + j, roundAway(Math.fround(x[xs + j] * id)));
    } else {
      let amax = 0, m = 0;
      for (let j = 0; j < 32; j++) { const v = x[xs + j]; if (Math.abs(v) > amax) { amax = Math.abs(v); m = v; } }
      const d = Math.fround(m / -8), id = d ? Math.fround(1 / d) : 0;
      dv.setUint16(at, f32ToF16(d), true);
      for (let j = 0; j < 16; j++) {
        const lo = Math.min(15, Math.trunc(Math.fround(Math.fround(x[xs + j] * id) + 8.5)));
        const hi = Math.min(15, Math.trunc(Math.fround(Math.fround(x[xs + j + 16] * id) + 8.5)));
        o[at + 2 + j] = lo | (hi << 4);
      }
    }
  }
  return o;
}

/** Widens quantized rows back to f32 (`count` elements). */
export function dequantize(dt: DType, raw: Uint8Array, count: number): Float32Array {
  const bs = dt === 'q8_0' ? 34 : 18, out = new Float32Array(count);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let b = 0; b < count / 32; b++) {
    const at = b * bs, d = f16ToF32(dv.getUint16(at, true));
    for (let j = 0; j < 32; j++) {
      out[b * 32 + j] = dt === 'q8_0' ? d * dv.getInt8(at + 2 + j) : d * (((raw[at + 2 + (j & 15)] >> (j < 16 ? 0 : 4)) & 15) - 8);
    }
  }
  return out;
}

/** C's roundf: halves away from zero. */
function roundAway(v: number): number {
  return Math.sign(v) * Math.round(Math.abs(v));
}
