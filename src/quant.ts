// Block quantization as GGUF's Q8_0 and Q4_0 (the wasm kernels: assembly/kernels/quant.ts).
// Rows of n elements (n a multiple of 32) become n/32 blocks:
//   Q8_0  f16 scale d = max|x| / 127, then 32 int8 q = round(x / d)             (34 bytes)
//   Q4_0  f16 scale d = x_m / -8 (x_m: the element of largest magnitude, signed), then 16
//         bytes: element j in the low nibble of byte j, element j+16 in the high nibble,
//         nibble = min(15, trunc(x / d + 8.5))                                  (18 bytes)
// as llama.cpp's reference quantizers do, so files exchanged with GGUF tools agree bit for bit.
import type { DType } from './config.js';
import { f16ToF32, f32ToF16 } from './image.js';

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
