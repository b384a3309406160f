// Weight kernels: a row of stored weights (f32/f16/bf16) against an f32 activation vector.
//
// The SIMD kernels may keep activations in a "prepared" layout (reordered and scaled so that
// half-precision rows widen with a few integer ops). Callers treat prepared buffers as opaque:
//   prep_x(dt, x, xp, n)          xp <- x in the layout dot() reads           (xp: prep_len(n) f32)
//   dot(dt, w, xp, n)       -> f32  sum_i w[i] * x[i]
//   prep_zero(dt, yp, n)          yp <- 0 in the layout axpy() accumulates    (yp: prep_len(n) f32)
//   axpy(dt, a, w, yp, n)         y += a * w
//   unprep_y(dt, yp, y, n)        y[i] += value of yp at i (natural order, f32)
//   matvec(dt, w, stride, x, xp, out, rows, cols)   out[r] = W[r,:] . x, rows `stride` bytes apart
// Each has a scalar *_ref beside it working on natural-order f32 vectors. Q8_0 / Q4_0 rows
// (dt >= DT_Q8_0) go to kernels/quant.ts, with their own prepared x; their y stays natural.
//
// Prepared layout (SIMD build; the scalar build uses plain natural order for every dtype):
//
//   f32:  natural order, zero padded to prep_len(n).
//   f16 / bf16: full blocks of 8 elements are split into even and odd lanes, the tail
//   (n % 8 elements) stays in natural order, then zero padding:
//
//     f32 slot   | 0  1  2  3 | 4  5  6  7 | 8  9 10 11 | 12 13 14 15 | ... | 8B .. n-1 | pad
//     element    | 0  2  4  6 | 1  3  5  7 | 8 10 12 14 |  9 11 13 15 | ... | 8B .. n-1 | 0
//     (B = n >> 3 full blocks)
//
//   A v128 of 8 halves holds element 2k in the low and 2k+1 in the high 16 bits of i32 lane k,
//   so each half widens in place (no shuffles):
//     bf16 even: lane << 16               bf16 odd: lane & 0xFFFF0000
//     f16  even: dot_i16x8_s(lane, [2^13, 0]) & 0x8FFFE000   (= sext(lo16) << 13, sign fixed)
//     f16  odd:  dot_i16x8_s(lane, [0, 2^13]) & 0x8FFFE000
//   (one pmaddwd both drops the neighbouring half and shifts: 2 ops instead of shl+sar+and).
//   The f16 bit trick puts sign/exponent/mantissa in place but reads as value * 2^-112
//   (subnormals included, exactly). The 2^112 is split: prep_x stores x * 2^56, dot/matvec
//   multiply the sum by 2^56, so products stay normal. axpy accumulates a*w*2^-56 in yp
//   and unprep_y multiplies by 2^56. Fast path caveats: f16 Inf/NaN weights (exponent 31)
//   are read as finite values 2^16 * (1 + m/1024); x or a beyond ~2^72 would overflow;
//   subnormal f16 weights become f32 denormals, which Zen 4 multiplies slowly (at the ~0.25%
//   subnormals of N(0, 0.02) weights the in-cache f16 matvec loses about a quarter).
import { vdot } from "./vec";
import { hsum, madd, madd2, K, F16_SCALE, f16_fast, bf16_even, bf16_odd, f16_even, f16_odd } from "./lanes";
import { DT_F32, DT_F16, DT_BF16, DT_Q8_0, dtypeSize, rowBytes, loadElem, f16_to_f32, bf16_to_f32 } from "../dtype";
import { q_prep_x, q_dot, q_dot4, q_matvec, q_axpy, q_dot_scalar, q_axpy_scalar } from "./quant";
import { cut } from "./parts";

/** f32 slots a prepared vector of n elements needs. */
export function prep_len(n: i32): i32 {
  return (n + 15) & ~15;
}



export function prep_x(dt: i32, x: usize, xp: usize, n: i32): void {
  const pad = <usize>prep_len(n) << 2;
  if (ASC_FEATURE_SIMD && dt >= DT_Q8_0) {
    q_prep_x(dt, x, xp, n);
    return;
  }
  if (ASC_FEATURE_SIMD && dt != DT_F32) {
    const s: f32 = dt == DT_F16 ? F16_SCALE : 1;
    const sv = f32x4.splat(s);
    const n8 = <usize>(n & ~7) << 2;
    for (let i: usize = 0; i < n8; i += 32) {
      const lo = v128.load(x + i), hi = v128.load(x + i, 16);
      v128.store(xp + i, f32x4.mul(v128.shuffle<f32>(lo, hi, 0, 2, 4, 6), sv));
      v128.store(xp + i, f32x4.mul(v128.shuffle<f32>(lo, hi, 1, 3, 5, 7), sv), 16);
    }
    for (let i = n8; i < <usize>n << 2; i += 4) store<f32>(xp + i, load<f32>(x + i) * s);
  } else {
    memory.copy(xp, x, <usize>n << 2);
  }
  memory.fill(xp + (<usize>n << 2), 0, pad - (<usize>n << 2));
}

export function prep_zero(dt: i32, yp: usize, n: i32): void {
  memory.fill(yp, 0, <usize>prep_len(n) << 2);
}

export function unprep_y(dt: i32, yp: usize, y: usize, n: i32): void {
  let i: usize = 0;
  const nb = <usize>n << 2;
  if (ASC_FEATURE_SIMD) {
    if (dt == DT_F32 || dt >= DT_Q8_0) {
      for (; i + 16 <= nb; i += 16) v128.store(y + i, f32x4.add(v128.load(y + i), v128.load(yp + i)));
    } else {
      const s: f32 = dt == DT_F16 ? F16_SCALE : 1;
      const sv = f32x4.splat(s);
      const n8 = <usize>(n & ~7) << 2;
      for (; i < n8; i += 32) {
        const e = v128.load(yp + i), o = v128.load(yp + i, 16);
        v128.store(y + i, madd(v128.shuffle<f32>(e, o, 0, 4, 1, 5), sv, v128.load(y + i)));
        v128.store(y + i, madd(v128.shuffle<f32>(e, o, 2, 6, 3, 7), sv, v128.load(y + i, 16)), 16);
      }
      for (; i < nb; i += 4) store<f32>(y + i, load<f32>(y + i) + load<f32>(yp + i) * s);
      return;
    }
  }
  for (; i < nb; i += 4) store<f32>(y + i, load<f32>(y + i) + load<f32>(yp + i));
}

// ---- dot ----

export function dot(dt: i32, w: usize, xp: usize, n: i32): f32 {
  if (!ASC_FEATURE_SIMD) return dot_scalar(dt, w, xp, n);
  if (dt == DT_F32) return vdot(w, xp, n);
  if (dt >= DT_Q8_0) return q_dot(dt, w, xp, n);
  if (dt == DT_BF16) return dot_bf16(w, xp, n);
  return dot_f16(w, xp, n) * F16_SCALE;
}

/** Tail of a half row in natural order: elements [n8, n) against xp slots [n8, n). */
@inline function tail_bf16(w: usize, x: usize, n8: i32, n: i32): f32 {
  let s: f32 = 0;
  for (let i = n8; i < n; i++) s += bf16_to_f32(<u32>load<u16>(w + (<usize>i << 1))) * load<f32>(x + (<usize>i << 2));
  return s;
}
@inline function tail_f16(w: usize, x: usize, n8: i32, n: i32): f32 {
  let s: f32 = 0;
  for (let i = n8; i < n; i++) s += f16_fast(<u32>load<u16>(w + (<usize>i << 1))) * load<f32>(x + (<usize>i << 2));
  return s;
}

function dot_bf16(w: usize, x: usize, n: i32): f32 {
  const m = v128.load(K, 16);
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  const n8 = n & ~7;
  const end = w + (<usize>n8 << 1);
  let p = w, q = x;
  for (; p + 32 <= end; p += 32, q += 64) {
    const v = v128.load(p), u = v128.load(p, 16);
    a0 = madd(bf16_even(v), v128.load(q), a0);
    a1 = madd(bf16_odd(v, m), v128.load(q, 16), a1);
    a2 = madd(bf16_even(u), v128.load(q, 32), a2);
    a3 = madd(bf16_odd(u, m), v128.load(q, 48), a3);
  }
  if (p < end) {
    const v = v128.load(p);
    a0 = madd(bf16_even(v), v128.load(q), a0);
    a1 = madd(bf16_odd(v, m), v128.load(q, 16), a1);
  }
  return hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3))) + tail_bf16(w, x, n8, n);
}

/** Sum scaled by 2^-56 (the caller multiplies by F16_SCALE). */
function dot_f16(w: usize, x: usize, n: i32): f32 {
  const m = v128.load(K), ce = v128.load(K, 32), co = v128.load(K, 48);
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  const n8 = n & ~7;
  const end = w + (<usize>n8 << 1);
  let p = w, q = x;
  for (; p + 32 <= end; p += 32, q += 64) {
    const v = v128.load(p), u = v128.load(p, 16);
    a0 = madd(f16_even(v, m, ce), v128.load(q), a0);
    a1 = madd(f16_odd(v, m, co), v128.load(q, 16), a1);
    a2 = madd(f16_even(u, m, ce), v128.load(q, 32), a2);
    a3 = madd(f16_odd(u, m, co), v128.load(q, 48), a3);
  }
  if (p < end) {
    const v = v128.load(p);
    a0 = madd(f16_even(v, m, ce), v128.load(q), a0);
    a1 = madd(f16_odd(v, m, co), v128.load(q, 16), a1);
  }
  return hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3))) + tail_f16(w, x, n8, n);
}

// ---- axpy ----

export function axpy(dt: i32, a: f32, w: usize, yp: usize, n: i32): void {
  if (!ASC_FEATURE_SIMD) { axpy_scalar(dt, a, w, yp, n); return; }
  if (dt >= DT_Q8_0) { q_axpy(dt, a, w, yp, n); return; }
  const nb = <usize>n << 2;
  if (dt == DT_F32) {
    const av = f32x4.splat(a);
    let i: usize = 0;
    for (; i + 32 <= nb; i += 32) {
      v128.store(yp + i, madd(v128.load(w + i), av, v128.load(yp + i)));
      v128.store(yp + i, madd(v128.load(w + i, 16), av, v128.load(yp + i, 16)), 16);
    }
    for (; i + 16 <= nb; i += 16) v128.store(yp + i, madd(v128.load(w + i), av, v128.load(yp + i)));
    for (; i < nb; i += 4) store<f32>(yp + i, load<f32>(yp + i) + a * load<f32>(w + i));
    return;
  }
  const n8 = n & ~7;
  const end = w + (<usize>n8 << 1);
  let p = w, q = yp;
  if (dt == DT_BF16) {
    const m = v128.load(K, 16), av = f32x4.splat(a);
    for (; p < end; p += 16, q += 32) {
      const v = v128.load(p);
      v128.store(q, madd(bf16_even(v), av, v128.load(q)));
      v128.store(q, madd(bf16_odd(v, m), av, v128.load(q, 16)), 16);
    }
    for (let i = n8; i < n; i++) {
      const o = yp + (<usize>i << 2);
      store<f32>(o, load<f32>(o) + a * bf16_to_f32(<u32>load<u16>(w + (<usize>i << 1))));
    }
  } else {
    // yp holds y * 2^-56: a * 2^56 times (w * 2^-112).
    const as = a * F16_SCALE;
    const m = v128.load(K), ce = v128.load(K, 32), co = v128.load(K, 48), av = f32x4.splat(as);
    for (; p < end; p += 16, q += 32) {
      const v = v128.load(p);
      v128.store(q, madd(f16_even(v, m, ce), av, v128.load(q)));
      v128.store(q, madd(f16_odd(v, m, co), av, v128.load(q, 16)), 16);
    }
    for (let i = n8; i < n; i++) {
      const o = yp + (<usize>i << 2);
      store<f32>(o, load<f32>(o) + as * f16_fast(<u32>load<u16>(w + (<usize>i << 1))));
    }
  }
}

/**
 * out[k] = (row at address ptrs[k]) . x for k < count, rows of n elements of type dt, x prepared
 * (prep_x): the dots of a list of scattered rows (the active neurons' bundles). Four rows per
 * pass share each x load and keep four independent accumulators.
 */
export function dot_list(dt: i32, ptrs: usize, count: i32, xp: usize, n: i32, out: usize): void {
  let k = 0;
  if (ASC_FEATURE_SIMD && dt >= DT_Q8_0) {
    for (; k + 4 <= count; k += 4) {
      const pk = ptrs + (<usize>k << 2);
      q_dot4(dt, <usize>load<u32>(pk), <usize>load<u32>(pk, 4), <usize>load<u32>(pk, 8), <usize>load<u32>(pk, 12), xp, n, out + (<usize>k << 2));
    }
  }
  if (ASC_FEATURE_SIMD && dt < DT_Q8_0) {
    const n8 = n & ~7;
    for (; k + 4 <= count; k += 4) {
      const pk = ptrs + (<usize>k << 2), ok = out + (<usize>k << 2);
      const r0 = <usize>load<u32>(pk), r1 = <usize>load<u32>(pk, 4), r2 = <usize>load<u32>(pk, 8), r3 = <usize>load<u32>(pk, 12);
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
      if (dt == DT_F32) {
        const nb = <usize>(n & ~3) << 2;
        for (let i: usize = 0; i < nb; i += 16) {
          const xv = v128.load(xp + i);
          a0 = madd(v128.load(r0 + i), xv, a0);
          a1 = madd(v128.load(r1 + i), xv, a1);
          a2 = madd(v128.load(r2 + i), xv, a2);
          a3 = madd(v128.load(r3 + i), xv, a3);
        }
        let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
        for (let i = nb; i < <usize>n << 2; i += 4) {
          const xv = load<f32>(xp + i);
          s0 += load<f32>(r0 + i) * xv; s1 += load<f32>(r1 + i) * xv; s2 += load<f32>(r2 + i) * xv; s3 += load<f32>(r3 + i) * xv;
        }
        store<f32>(ok, s0); store<f32>(ok, s1, 4); store<f32>(ok, s2, 8); store<f32>(ok, s3, 12);
        continue;
      }
      const end = <usize>n8 << 1;
      if (dt == DT_BF16) {
        const m = v128.load(K, 16);
        for (let i: usize = 0, j: usize = 0; i < end; i += 16, j += 32) {
          const xe = v128.load(xp + j), xo = v128.load(xp + j, 16);
          a0 = bf16_dot8(a0, v128.load(r0 + i), xe, xo, m);
          a1 = bf16_dot8(a1, v128.load(r1 + i), xe, xo, m);
          a2 = bf16_dot8(a2, v128.load(r2 + i), xe, xo, m);
          a3 = bf16_dot8(a3, v128.load(r3 + i), xe, xo, m);
        }
        store<f32>(ok, hsum(a0) + tail_bf16(r0, xp, n8, n)); store<f32>(ok, hsum(a1) + tail_bf16(r1, xp, n8, n), 4);
        store<f32>(ok, hsum(a2) + tail_bf16(r2, xp, n8, n), 8); store<f32>(ok, hsum(a3) + tail_bf16(r3, xp, n8, n), 12);
      } else {
        const m = v128.load(K), ce = v128.load(K, 32), co = v128.load(K, 48);
        for (let i: usize = 0, j: usize = 0; i < end; i += 16, j += 32) {
          const xe = v128.load(xp + j), xo = v128.load(xp + j, 16);
          a0 = f16_dot8(a0, v128.load(r0 + i), xe, xo, m, ce, co);
          a1 = f16_dot8(a1, v128.load(r1 + i), xe, xo, m, ce, co);
          a2 = f16_dot8(a2, v128.load(r2 + i), xe, xo, m, ce, co);
          a3 = f16_dot8(a3, v128.load(r3 + i), xe, xo, m, ce, co);
        }
        store<f32>(ok, (hsum(a0) + tail_f16(r0, xp, n8, n)) * F16_SCALE); store<f32>(ok, (hsum(a1) + tail_f16(r1, xp, n8, n)) * F16_SCALE, 4);
        store<f32>(ok, (hsum(a2) + tail_f16(r2, xp, n8, n)) * F16_SCALE, 8); store<f32>(ok, (hsum(a3) + tail_f16(r3, xp, n8, n)) * F16_SCALE, 12);
      }
    }
  }
  for (; k < count; k++) store<f32>(out + (<usize>k << 2), dot(dt, <usize>load<u32>(ptrs + (<usize>k << 2)), xp, n));
}

/** Reference of dot_list: the scalar dot of each listed row against the plain x. */
/** The dots of dot_list that part `part` of `parts` computes, each as dot_list does (runs of 4 split whole). */
export function dot_list_part(dt: i32, ptrs: usize, count: i32, xp: usize, n: i32, out: usize, part: i32, parts: i32): void {
  const a = cut(count >> 2, part, parts) << 2, b = part == parts - 1 ? count : cut(count >> 2, part + 1, parts) << 2;
  if (b > a) dot_list(dt, ptrs + (<usize>a << 2), b - a, xp, n, out + (<usize>a << 2));
}

export function dot_list_ref(dt: i32, ptrs: usize, count: i32, x: usize, n: i32, out: usize): void {
  for (let k = 0; k < count; k++) store<f32>(out + (<usize>k << 2), dot_ref(dt, <usize>load<u32>(ptrs + (<usize>k << 2)), x, n));
}

// ---- matvec ----
//
// Several rows per pass share every x load, and those rows are far apart (r, r+q, r+2q, ...
// with q = rows / group): measured on Zen 4, streaming neighbouring rows side by side halves
// the DRAM bandwidth, while far-apart streams read as fast as one sequential stream.

export function matvec(dt: i32, w: usize, stride: usize, x: usize, xp: usize, out: usize, rows: i32, cols: i32): void {
  prep_x(dt, x, xp, cols);
  matvec_part(dt, w, stride, xp, out, rows, cols, 0, 1);
}

/**
 * The rows of matvec (x already prepared in xp) that part `part` of `parts` computes, each
 * exactly as matvec computes it: the parts split the kernels' row groups (f32/f16/bf16: passes
 * over rows r, r+q, …; Q8_0 / Q4_0: runs of 4 rows) and the last part takes the rows left over, so
 * any number of threads gives every row the same bits.
 */
export function matvec_part(dt: i32, w: usize, stride: usize, xp: usize, out: usize, rows: i32, cols: i32, part: i32, parts: i32): void {
  if (!ASC_FEATURE_SIMD) {
    const a = cut(rows >> 2, part, parts) << 2, b = part == parts - 1 ? rows : cut(rows >> 2, part + 1, parts) << 2;
    mv_scalar(dt, w + <usize>a * stride, stride, xp, out + (<usize>a << 2), b - a, cols);
    return;
  }
  if (dt >= DT_Q8_0) {
    const a = cut(rows >> 2, part, parts) << 2, b = part == parts - 1 ? rows : cut(rows >> 2, part + 1, parts) << 2;
    q_matvec(dt, w + <usize>a * stride, stride, xp, out + (<usize>a << 2), b - a, cols);
    return;
  }
  // f32 takes 4 rows per pass, the half types 8: their x is twice the weight bytes, and
  // sharing each x load among 8 rows pays more than it costs in register pressure.
  const g = dt == DT_F32 ? 4 : 8;
  const q = rows / g;
  const r0 = cut(q, part, parts), r1 = cut(q, part + 1, parts);
  if (r1 > r0) {
    if (dt == DT_F32) mv4_f32(w, stride, xp, out, q, cols, r0, r1);
    else if (dt == DT_BF16) mv8_bf16(w, stride, xp, out, q, cols, r0, r1);
    else mv8_f16(w, stride, xp, out, q, cols, r0, r1);
  }
  if (part == parts - 1) for (let r = q * g; r < rows; r++) store<f32>(out + (<usize>r << 2), dot(dt, w + <usize>r * stride, xp, cols));
}

/** Rows r, r+q, r+2q, r+3q for r0 <= r < r1 (r1 <= q); f32 weights. */
function mv4_f32(w: usize, stride: usize, x: usize, out: usize, q: i32, cols: i32, r0: i32, r1: i32): void {
  const qs = <usize>q * stride, qo = <usize>q << 2;
  const nb = <usize>cols << 2;
  const b8 = nb & ~31, b4 = nb & ~15;
  for (let r = r0; r < r1; r++) {
    let p0 = w + <usize>r * stride, p1 = p0 + qs, p2 = p1 + qs, p3 = p2 + qs;
    const row = p0, end8 = p0 + b8;
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    let xq = x;
    while (p0 < end8) {
      const x0 = v128.load(xq), x1 = v128.load(xq, 16);
      a0 = madd2(v128.load(p0), x0, v128.load(p0, 16), x1, a0);
      a1 = madd2(v128.load(p1), x0, v128.load(p1, 16), x1, a1);
      a2 = madd2(v128.load(p2), x0, v128.load(p2, 16), x1, a2);
      a3 = madd2(v128.load(p3), x0, v128.load(p3, 16), x1, a3);
      p0 += 32; p1 += 32; p2 += 32; p3 += 32; xq += 32;
    }
    if (b4 > b8) {
      const x0 = v128.load(xq);
      a0 = madd(v128.load(p0), x0, a0);
      a1 = madd(v128.load(p1), x0, a1);
      a2 = madd(v128.load(p2), x0, a2);
      a3 = madd(v128.load(p3), x0, a3);
    }
    let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (let i = b4; i < nb; i += 4) {
      const xv = load<f32>(x + i), o = row + i;
      s0 += load<f32>(o) * xv;
      s1 += load<f32>(o + qs) * xv;
      s2 += load<f32>(o + 2 * qs) * xv;
      s3 += load<f32>(o + 3 * qs) * xv;
    }
    const o = out + (<usize>r << 2);
    store<f32>(o, s0); store<f32>(o + qo, s1); store<f32>(o + 2 * qo, s2); store<f32>(o + 3 * qo, s3);
  }
}

/** a + products of 8 bf16 weights with their x lanes, summed pairwise into 4 lanes. */
@inline function bf16_dot8(a: v128, v: v128, xe: v128, xo: v128, m: v128): v128 {
  return madd2(bf16_even(v), xe, bf16_odd(v, m), xo, a);
}
/** Same for f16 (products scaled by 2^-56 with x prepared at 2^56). */
@inline function f16_dot8(a: v128, v: v128, xe: v128, xo: v128, m: v128, ce: v128, co: v128): v128 {
  return madd2(f16_even(v, m, ce), xe, f16_odd(v, m, co), xo, a);
}

/** Rows r + k*q (k < 8) for r0 <= r < r1 (r1 <= q); bf16 weights, x in the even/odd layout. */
function mv8_bf16(w: usize, stride: usize, x: usize, out: usize, q: i32, cols: i32, r0: i32, r1: i32): void {
  const m = v128.load(K, 16);
  const qs = <usize>q * stride, qo = <usize>q << 2;
  const n8 = cols & ~7;
  for (let r = r0; r < r1; r++) {
    const row = w + <usize>r * stride;
    let p0 = row, p1 = p0 + qs, p2 = p1 + qs, p3 = p2 + qs, p4 = p3 + qs, p5 = p4 + qs, p6 = p5 + qs, p7 = p6 + qs;
    const end = row + (<usize>n8 << 1);
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    let xq = x;
    while (p0 < end) {
      const xe = v128.load(xq), xo = v128.load(xq, 16);
      a0 = bf16_dot8(a0, v128.load(p0), xe, xo, m);
      a1 = bf16_dot8(a1, v128.load(p1), xe, xo, m);
      a2 = bf16_dot8(a2, v128.load(p2), xe, xo, m);
      a3 = bf16_dot8(a3, v128.load(p3), xe, xo, m);
      a4 = bf16_dot8(a4, v128.load(p4), xe, xo, m);
      a5 = bf16_dot8(a5, v128.load(p5), xe, xo, m);
      a6 = bf16_dot8(a6, v128.load(p6), xe, xo, m);
      a7 = bf16_dot8(a7, v128.load(p7), xe, xo, m);
      p0 += 16; p1 += 16; p2 += 16; p3 += 16; p4 += 16; p5 += 16; p6 += 16; p7 += 16; xq += 32;
    }
    let o = out + (<usize>r << 2), pr = row;
    store<f32>(o, hsum(a0) + tail_bf16(pr, x, n8, cols)); o += qo; pr += qs;
    store<f32>(o, hsum(a1) + tail_bf16(pr, x, n8, cols)); o += qo; pr += qs;
    store<f32>(o, hsum(a2) + tail_bf16(pr, x, n8, cols)); o += qo; pr += qs;
    store<f32>(o, hsum(a3) + tail_bf16(pr, x, n8, cols)); o += qo; pr += qs;
    store<f32>(o, hsum(a4) + tail_bf16(pr, x, n8, cols)); o += qo; pr += qs;
    store<f32>(o, hsum(a5) + tail_bf16(pr, x, n8, cols)); o += qo; pr += qs;
    store<f32>(o, hsum(a6) + tail_bf16(pr, x, n8, cols)); o += qo; pr += qs;
    store<f32>(o, hsum(a7) + tail_bf16(pr, x, n8, cols));
  }
}

/** Rows r + k*q (k < 8) for r0 <= r < r1 (r1 <= q); f16 weights, x in the even/odd layout scaled by 2^56. */
function mv8_f16(w: usize, stride: usize, x: usize, out: usize, q: i32, cols: i32, r0: i32, r1: i32): void {
  const m = v128.load(K), ce = v128.load(K, 32), co = v128.load(K, 48);
  const qs = <usize>q * stride, qo = <usize>q << 2;
  const n8 = cols & ~7;
  for (let r = r0; r < r1; r++) {
    const row = w + <usize>r * stride;
    let p0 = row, p1 = p0 + qs, p2 = p1 + qs, p3 = p2 + qs, p4 = p3 + qs, p5 = p4 + qs, p6 = p5 + qs, p7 = p6 + qs;
    const end = row + (<usize>n8 << 1);
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    let xq = x;
    while (p0 < end) {
      const xe = v128.load(xq), xo = v128.load(xq, 16);
      a0 = f16_dot8(a0, v128.load(p0), xe, xo, m, ce, co);
      a1 = f16_dot8(a1, v128.load(p1), xe, xo, m, ce, co);
      a2 = f16_dot8(a2, v128.load(p2), xe, xo, m, ce, co);
      a3 = f16_dot8(a3, v128.load(p3), xe, xo, m, ce, co);
      a4 = f16_dot8(a4, v128.load(p4), xe, xo, m, ce, co);
      a5 = f16_dot8(a5, v128.load(p5), xe, xo, m, ce, co);
      a6 = f16_dot8(a6, v128.load(p6), xe, xo, m, ce, co);
      a7 = f16_dot8(a7, v128.load(p7), xe, xo, m, ce, co);
      p0 += 16; p1 += 16; p2 += 16; p3 += 16; p4 += 16; p5 += 16; p6 += 16; p7 += 16; xq += 32;
    }
    let o = out + (<usize>r << 2), pr = row;
    store<f32>(o, (hsum(a0) + tail_f16(pr, x, n8, cols)) * F16_SCALE); o += qo; pr += qs;
    store<f32>(o, (hsum(a1) + tail_f16(pr, x, n8, cols)) * F16_SCALE); o += qo; pr += qs;
    store<f32>(o, (hsum(a2) + tail_f16(pr, x, n8, cols)) * F16_SCALE); o += qo; pr += qs;
    store<f32>(o, (hsum(a3) + tail_f16(pr, x, n8, cols)) * F16_SCALE); o += qo; pr += qs;
    store<f32>(o, (hsum(a4) + tail_f16(pr, x, n8, cols)) * F16_SCALE); o += qo; pr += qs;
    store<f32>(o, (hsum(a5) + tail_f16(pr, x, n8, cols)) * F16_SCALE); o += qo; pr += qs;
    store<f32>(o, (hsum(a6) + tail_f16(pr, x, n8, cols)) * F16_SCALE); o += qo; pr += qs;
    store<f32>(o, (hsum(a7) + tail_f16(pr, x, n8, cols)) * F16_SCALE);
  }
}

// ---- scalar build (no SIMD): natural layout, the dtype switch hoisted out of the loops ----

@inline function elF32(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
@inline function elF16(p: usize, i: i32): f32 { return f16_to_f32(<u32>load<u16>(p + (<usize>i << 1))); }
@inline function elBF16(p: usize, i: i32): f32 { return bf16_to_f32(<u32>load<u16>(p + (<usize>i << 1))); }

function dot_scalar(dt: i32, w: usize, x: usize, n: i32): f32 {
  if (dt >= DT_Q8_0) return q_dot_scalar(dt, w, x, n);
  let s0: f32 = 0, s1: f32 = 0;
  let i = 0;
  if (dt == DT_F32) {
    for (; i + 2 <= n; i += 2) { s0 += elF32(w, i) * elF32(x, i); s1 += elF32(w, i + 1) * elF32(x, i + 1); }
  } else if (dt == DT_BF16) {
    for (; i + 2 <= n; i += 2) { s0 += elBF16(w, i) * elF32(x, i); s1 += elBF16(w, i + 1) * elF32(x, i + 1); }
  } else {
    for (; i + 2 <= n; i += 2) { s0 += elF16(w, i) * elF32(x, i); s1 += elF16(w, i + 1) * elF32(x, i + 1); }
  }
  if (i < n) s0 += loadElem(dt, w, i) * elF32(x, i);
  return s0 + s1;
}

function axpy_scalar(dt: i32, a: f32, w: usize, y: usize, n: i32): void {
  if (dt >= DT_Q8_0) q_axpy_scalar(dt, a, w, y, n);
  else if (dt == DT_F32) for (let i = 0; i < n; i++) store<f32>(y + (<usize>i << 2), elF32(y, i) + a * elF32(w, i));
  else if (dt == DT_BF16) for (let i = 0; i < n; i++) store<f32>(y + (<usize>i << 2), elF32(y, i) + a * elBF16(w, i));
  else for (let i = 0; i < n; i++) store<f32>(y + (<usize>i << 2), elF32(y, i) + a * elF16(w, i));
}

/** Four neighbouring rows per pass share the x loads. */
function mv_scalar(dt: i32, w: usize, stride: usize, x: usize, out: usize, rows: i32, cols: i32): void {
  if (dt >= DT_Q8_0) {
    for (let r = 0; r < rows; r++) store<f32>(out + (<usize>r << 2), q_dot_scalar(dt, w + <usize>r * stride, x, cols));
    return;
  }
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const p0 = w + <usize>r * stride, p1 = p0 + stride, p2 = p1 + stride, p3 = p2 + stride;
    let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
    if (dt == DT_F32) {
      for (let i = 0; i < cols; i++) {
        const xv = elF32(x, i);
        s0 += elF32(p0, i) * xv; s1 += elF32(p1, i) * xv; s2 += elF32(p2, i) * xv; s3 += elF32(p3, i) * xv;
      }
    } else if (dt == DT_BF16) {
      for (let i = 0; i < cols; i++) {
        const xv = elF32(x, i);
        s0 += elBF16(p0, i) * xv; s1 += elBF16(p1, i) * xv; s2 += elBF16(p2, i) * xv; s3 += elBF16(p3, i) * xv;
      }
    } else {
      for (let i = 0; i < cols; i++) {
        const xv = elF32(x, i);
        s0 += elF16(p0, i) * xv; s1 += elF16(p1, i) * xv; s2 += elF16(p2, i) * xv; s3 += elF16(p3, i) * xv;
      }
    }
    const o = out + (<usize>r << 2);
    store<f32>(o, s0); store<f32>(o, s1, 4); store<f32>(o, s2, 8); store<f32>(o, s3, 12);
  }
  for (; r < rows; r++) store<f32>(out + (<usize>r << 2), dot_scalar(dt, w + <usize>r * stride, x, cols));
}

// ---- memory bandwidth reference ----

/** Sum of the i32 words in [p, p+bytes): the fastest plain read, the yardstick for matvec GB/s. */
export function read_sum(p: usize, bytes: usize): i32 {
  const end = p + bytes;
  let t: i32 = 0;
  if (ASC_FEATURE_SIMD) {
    let a0 = i32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    const e128 = p + (bytes & ~127);
    while (p < e128) {
      a0 = i32x4.add(a0, v128.load(p));
      a1 = i32x4.add(a1, v128.load(p, 16));
      a2 = i32x4.add(a2, v128.load(p, 32));
      a3 = i32x4.add(a3, v128.load(p, 48));
      a0 = i32x4.add(a0, v128.load(p, 64));
      a1 = i32x4.add(a1, v128.load(p, 80));
      a2 = i32x4.add(a2, v128.load(p, 96));
      a3 = i32x4.add(a3, v128.load(p, 112));
      p += 128;
    }
    const s = i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3));
    t = i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3);
  } else {
    let a: i32 = 0, b: i32 = 0, c: i32 = 0, d: i32 = 0;
    const e16 = p + (bytes & ~15);
    while (p < e16) { a += load<i32>(p); b += load<i32>(p, 4); c += load<i32>(p, 8); d += load<i32>(p, 12); p += 16; }
    t = (a + b) + (c + d);
  }
  while (p + 4 <= end) { t += load<i32>(p); p += 4; }
  while (p < end) { t += <i32>load<u8>(p); p++; }
  return t;
}

// ---- scalar references (natural order, f32 accumulation) ----

/** sum_i w[i] * x[i], w of type dt, x f32. */
export function dot_ref(dt: i32, w: usize, x: usize, n: i32): f32 {
  let s: f32 = 0;
  for (let i = 0; i < n; i++) s += loadElem(dt, w, i) * load<f32>(x + (<usize>i << 2));
  return s;
}

/** y[i] += a * w[i], w of type dt, y f32. */
export function axpy_ref(dt: i32, a: f32, w: usize, y: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const p = y + (<usize>i << 2);
    store<f32>(p, load<f32>(p) + a * loadElem(dt, w, i));
  }
}

/** out[r] = W[r,:] . x with rows `stride` bytes apart. */
export function matvec_ref(dt: i32, w: usize, stride: usize, x: usize, out: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) store<f32>(out + (<usize>r << 2), dot_ref(dt, w + <usize>r * stride, x, cols));
}

/** Bytes of a row of n elements of type dt (quantized: n a multiple of 32). */
export function row_bytes(dt: i32, n: i32): usize { return rowBytes(dt, n); }

// keep the import used in every build
export const F32_SIZE: i32 = dtypeSize(DT_F32);

/** Which kernels this build has: 0 scalar, 1 SIMD, 2 relaxed SIMD (for the host's reports). */
export function simd_level(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 2 : ASC_FEATURE_SIMD ? 1 : 0;
}
