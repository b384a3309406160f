// Storage types of weight matrices. Values match the image format (src/image.ts DType).
export const DT_F32: i32 = 0;
export const DT_F16: i32 = 1;
export const DT_BF16: i32 = 2;

/** Bytes per element of a storage type. */
@inline export function dtypeSize(dt: i32): i32 {
  return dt == DT_F32 ? 4 : 2;
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
