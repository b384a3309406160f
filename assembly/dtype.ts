// Storage types of weight matrices. Values match the image format (src/format/dtype.ts DType).
export const DT_F32: i32 = 0;
export const DT_F16: i32 = 1;
export const DT_BF16: i32 = 2;
export const DT_Q8_0: i32 = 3;  // GGUF Q8_0 blocks (kernels/quant.ts)
export const DT_Q4_0: i32 = 4;  // GGUF Q4_0 blocks

/** Bytes per element of an unquantized storage type (f32, f16, bf16). */
@inline export function dtypeSize(dt: i32): i32 {
  return dt == DT_F32 ? 4 : 2;
}

/** Bytes of a row of n elements of any storage type (quantized: n a multiple of 32). */
@inline export function rowBytes(dt: i32, n: i32): usize {
  if (dt >= DT_Q8_0) return <usize>(n >> 5) * (dt == DT_Q8_0 ? 34 : 18);
  return <usize>n * <usize>dtypeSize(dt);
}

/** IEEE half -> float, exact for every finite value, inf and NaN. */
@inline export function f16_to_f32(h: u32): f32 {
  const sign = (h & 0x8000) << 16;
  const em = h & 0x7fff;
  if (em >= 0x7c00) return reinterpret<f32>(sign | 0x7f800000 | ((em & 0x3ff) << 13));
  // (em << 13) reads as a float 2^112 too small; scaling fixes normals and subnormals alike.
  const mag = reinterpret<f32>(em << 13) * reinterpret<f32>(0x77800000);
  return reinterpret<f32>(reinterpret<u32>(mag) | sign);
}

/** bfloat16 -> float: the top half of the float's bits. */
@inline export function bf16_to_f32(h: u32): f32 {
  return reinterpret<f32>(h << 16);
}

/** Element i of a row of type dt starting at p, widened to f32. */
@inline export function loadElem(dt: i32, p: usize, i: i32): f32 {
  if (dt == DT_F32) return load<f32>(p + (<usize>i << 2));
  if (dt >= DT_Q8_0) {
    const b = p + <usize>(i >> 5) * (dt == DT_Q8_0 ? 34 : 18), j = i & 31;
    const d = f16_to_f32(<u32>load<u16>(b));
    if (dt == DT_Q8_0) return d * <f32>load<i8>(b + 2 + <usize>j);
    const byte = <i32>load<u8>(b + 2 + <usize>(j & 15));
    return d * <f32>((j < 16 ? byte & 15 : byte >> 4) - 8);
  }
  const h = <u32>load<u16>(p + (<usize>i << 1));
  return dt == DT_F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

/** float -> IEEE half, round to nearest even (overflow to inf; NaN stays NaN). */
@inline export function f32_to_f16(f: f32): u16 {
  const b = reinterpret<u32>(f);
  const sign = (b >>> 16) & 0x8000;
  const exp = <i32>((b >>> 23) & 0xff), man = b & 0x7fffff;
  if (exp == 0xff) return <u16>(sign | 0x7c00 | (man ? 0x200 : 0));
  const e = exp - 112;
  if (e >= 0x1f) return <u16>(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return <u16>sign;
    const m = man | 0x800000, shift = <u32>(14 - e);
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1), half = <u32>1 << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return <u16>(sign | h);
  }
  let h = (<u32>e << 10) | (man >>> 13);
  const rem = man & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return <u16>(sign | h);
}
