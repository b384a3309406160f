// Kernels (assembly/kernels/matvec.ts, vec.ts, quant.ts) against their scalar references, in every
// build: SIMD, scalar, and relaxed SIMD where the runtime validates it (Node 20: with
// --experimental-wasm-relaxed-simd, as test/relaxed.test.js runs this file).
// Widening f16/bf16 -> f32 is exact in every path, so SIMD and reference differ only by the
// order of f32 additions; tolerances are relative to sum |w_i * x_i| (the scale of that error).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { instantiateEngine } from '../dist/src/index.js';
import { dequantize, quantize } from '../dist/src/format/dtype.js';
import { rng } from '../dist/src/predictor/util.js';   // deterministic (mulberry32): failures reproduce

const LENGTHS = [1, 3, 7, 15, 16, 17, 31, 33, 384, 1536];
const DTYPES = [
  { name: 'f32', code: 0, size: 4 },
  { name: 'f16', code: 1, size: 2 },
  { name: 'bf16', code: 2, size: 2 },
];
/** Max |simd - ref| / sum |w x| per weight dtype (all accumulate in f32; n <= 1536 here). */
const TOL = { f32: 1e-5, f16: 1e-5, bf16: 1e-5 };


const F = new Float32Array(1);
const U = new Uint32Array(F.buffer);
const f32 = (v) => { F[0] = v; return F[0]; };
function f16ToNumber(h) {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (e ? 2 ** (e - 15) * (1 + m / 1024) : 2 ** -14 * (m / 1024));
}
function bf16ToNumber(h) { U[0] = h << 16; return F[0]; }

/**
 * Random weight bit patterns, negatives included. f16: every finite exponent, a quarter of them
 * subnormal (exponent 0); exponent 31 (Inf/NaN) is excluded because the fast path reads it as a
 * large finite number (documented in matvec.ts). bf16: exponents 2^-40..2^8 plus some f32-denormal
 * patterns and zeros. f32: wide exponent range.
 */
function randomWeights(dt, n, rand) {
  if (dt.name === 'f32') {
    const w = new Float32Array(n);
    for (let i = 0; i < n; i++) w[i] = (rand() * 2 - 1) * 2 ** Math.floor(rand() * 24 - 16);
    return { bytes: new Uint8Array(w.buffer), values: Array.from(w) };
  }
  const h = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const sign = rand() < 0.5 ? 0x8000 : 0;
    if (dt.name === 'f16') {
      const e = rand() < 0.25 ? 0 : 1 + Math.floor(rand() * 30);
      h[i] = sign | (e << 10) | Math.floor(rand() * 1024);
    } else {
      const r = rand();
      const e = r < 0.05 ? 0 : 87 + Math.floor(rand() * 48);
      h[i] = r < 0.08 && r >= 0.05 ? sign : sign | (e << 7) | Math.floor(rand() * 128);
    }
  }
  const dec = dt.name === 'f16' ? f16ToNumber : bf16ToNumber;
  return { bytes: new Uint8Array(h.buffer), values: Array.from(h, dec) };
}

function randomVec(n, rand, scale = 1) {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = (rand() * 2 - 1) * scale;
  return v;
}

/** One instance of a build with a scratch arena; pointers are reused test to test. */
function setup(build) {
  const { exports: e, simd: got, relaxed } = instantiateEngine(build === 'plain' ? { simd: false } : { build });
  assert.equal(relaxed, build === 'relaxed');
  e._initialize();
  const size = 8 << 20;
  const base = e.alloc(size, 64);
  let top = base;
  return {
    e, simd: got,
    reset() { top = base; },
    /** `bytes` of scratch at `offset` bytes past a 64-byte boundary. */
    alloc(bytes, offset = 0) {
      const p = ((top + 63) & ~63) + offset;
      top = p + bytes + 64;
      assert.ok(top <= base + size, 'scratch arena exhausted');
      return p;
    },
    f32(p, n) { return new Float32Array(e.memory.buffer, p, n); },
    u8(p, n) { return new Uint8Array(e.memory.buffer, p, n); },
  };
}

function assertClose(got, ref, tol, scale, what) {
  const err = Math.abs(got - ref);
  if (!(err <= tol * scale + 1e-30)) {
    assert.fail(`${what}: got ${got}, ref ${ref}, |diff| ${err} > ${tol} * ${scale}`);
  }
}

const RELAXED = WebAssembly.validate(readFileSync(new URL('../build/flashneuron.relaxed.wasm', import.meta.url)));
for (const build of ['simd', 'plain', ...(RELAXED ? ['relaxed'] : [])]) {
  const simd = build !== 'plain';
  describe(`kernels (${build === 'plain' ? 'nosimd' : build} build)`, function () {
    let t;
    before(() => { t = setup(build); });
    beforeEach(() => t.reset());

    it('loaded the requested build', () => assert.equal(t.simd, simd));

    for (const dt of DTYPES) {
      it(`dot ${dt.name} vs dot_ref at every length, rows at 2-byte offsets`, () => {
        const rand = rng(1 + dt.code);
        const { e } = t;
        for (const n of LENGTHS) {
          for (const off of [0, 2, 6]) {
            t.reset();
            const w = randomWeights(dt, n, rand);
            const x = randomVec(n, rand);
            const wp = t.alloc(n * dt.size, off), xp = t.alloc(n * 4), pp = t.alloc(e.prep_len(n) * 4);
            t.u8(wp, w.bytes.length).set(w.bytes);
            t.f32(xp, n).set(x);
            e.prep_x(dt.code, xp, pp, n);
            const got = e.dot(dt.code, wp, pp, n);
            const ref = e.dot_ref(dt.code, wp, xp, n);
            let scale = 0, exact = 0;
            for (let i = 0; i < n; i++) { scale += Math.abs(w.values[i] * x[i]); exact += w.values[i] * x[i]; }
            assertClose(got, ref, TOL[dt.name], scale, `dot ${dt.name} n=${n} off=${off}`);
            assertClose(ref, exact, TOL[dt.name], scale, `dot_ref ${dt.name} n=${n} vs f64`);
          }
        }
      });

      it(`dot_list ${dt.name} vs dot_list_ref: scattered rows at 2-byte offsets, 1 to 9 rows, every length`, () => {
        const rand = rng(31 + dt.code);
        const { e } = t;
        for (const n of LENGTHS) {
          for (const count of [1, 3, 4, 5, 8, 9]) {
            t.reset();
            const rows = Array.from({ length: count }, () => randomWeights(dt, n, rand));
            const x = randomVec(n, rand);
            const wp = rows.map((_, j) => t.alloc(n * dt.size, [0, 2, 6][j % 3]));
            rows.forEach((w, j) => t.u8(wp[j], w.bytes.length).set(w.bytes));
            const ptrs = t.alloc(count * 4), xp = t.alloc(n * 4), pp = t.alloc(e.prep_len(n) * 4);
            const out = t.alloc(count * 4), outRef = t.alloc(count * 4);
            new Uint32Array(e.memory.buffer, ptrs, count).set(wp.reverse());   // any order
            rows.reverse();
            t.f32(xp, n).set(x);
            e.prep_x(dt.code, xp, pp, n);
            e.dot_list(dt.code, ptrs, count, pp, n, out);
            e.dot_list_ref(dt.code, ptrs, count, xp, n, outRef);
            const got = t.f32(out, count), ref = t.f32(outRef, count);
            for (let k = 0; k < count; k++) {
              let scale = 0;
              for (let i = 0; i < n; i++) scale += Math.abs(rows[k].values[i] * x[i]);
              assertClose(got[k], ref[k], TOL[dt.name], scale, `dot_list ${dt.name} n=${n} row ${k} of ${count}`);
            }
          }
        }
      });

      it(`axpy ${dt.name} into the prepared y, unprep_y adds into y`, () => {
        const rand = rng(11 + dt.code);
        const { e } = t;
        for (const n of LENGTHS) {
          t.reset();
          const k = 3; // a few rows accumulated, as the sparse FFN down-projection does
          const rows = Array.from({ length: k }, () => randomWeights(dt, n, rand));
          const a = Array.from({ length: k }, () => f32(rand() * 4 - 2));
          const y0 = randomVec(n, rand);
          const wp = rows.map(() => t.alloc(n * dt.size, 2));
          const yp = t.alloc(e.prep_len(n) * 4), y = t.alloc(n * 4), yr = t.alloc(n * 4);
          rows.forEach((w, j) => t.u8(wp[j], w.bytes.length).set(w.bytes));
          t.f32(y, n).set(y0);
          t.f32(yr, n).set(y0);
          e.prep_zero(dt.code, yp, n);
          for (let j = 0; j < k; j++) {
            e.axpy(dt.code, a[j], wp[j], yp, n);
            e.axpy_ref(dt.code, a[j], wp[j], yr, n);
          }
          e.unprep_y(dt.code, yp, y, n);
          const got = t.f32(y, n), ref = t.f32(yr, n);
          for (let i = 0; i < n; i++) {
            let scale = Math.abs(y0[i]);
            for (let j = 0; j < k; j++) scale += Math.abs(a[j] * rows[j].values[i]);
            assertClose(got[i], ref[i], TOL[dt.name], scale, `axpy ${dt.name} n=${n} i=${i}`);
          }
        }
      });

      it(`matvec ${dt.name} vs matvec_ref: padded stride, odd row starts, all lengths`, () => {
        const rand = rng(21 + dt.code);
        const { e } = t;
        for (const cols of LENGTHS) {
          for (const rows of [1, 3, 4, 9, 13, 35]) { // f32 groups 4 rows, f16/bf16 8; plus leftovers
            t.reset();
            // stride not a multiple of 4 or 16: rows start at every 2-byte alignment
            const stride = cols * dt.size + 6;
            const mats = Array.from({ length: rows }, () => randomWeights(dt, cols, rand));
            const x = randomVec(cols, rand);
            const wp = t.alloc(rows * stride, 2);
            const xp = t.alloc(cols * 4), pp = t.alloc(e.prep_len(cols) * 4);
            const out = t.alloc(rows * 4), outRef = t.alloc(rows * 4);
            mats.forEach((m, r) => t.u8(wp + r * stride, m.bytes.length).set(m.bytes));
            t.f32(xp, cols).set(x);
            e.matvec(dt.code, wp, stride, xp, pp, out, rows, cols);
            e.matvec_ref(dt.code, wp, stride, xp, outRef, rows, cols);
            const got = t.f32(out, rows), ref = t.f32(outRef, rows);
            for (let r = 0; r < rows; r++) {
              let scale = 0;
              for (let i = 0; i < cols; i++) scale += Math.abs(mats[r].values[i] * x[i]);
              assertClose(got[r], ref[r], TOL[dt.name], scale, `matvec ${dt.name} ${rows}x${cols} row ${r}`);
            }
          }
        }
      });
    }

    describe('block-quantized weights (GGUF Q8_0, Q4_0)', () => {
      const QLENGTHS = [32, 96, 224, 384, 544, 1536];   // 1, 3, 7, 12, 17, 48 blocks
      const QT = [{ name: 'q8_0', code: 3, block: 34 }, { name: 'q4_0', code: 4, block: 18 }];
      /** Random rows quantized by the host (src/quant.ts) and their dequantized values. */
      const qrow = (q, n, rand) => {
        const f = randomVec(n, rand, 0.05);
        for (let i = 0; i < n; i += 97) f[i] *= 8;   // a few outliers, as real weights have
        const bytes = quantize(q.name, f, n);
        return { bytes, values: Array.from(dequantize(q.name, bytes, n)) };
      };
      /** |error| the SIMD path may add by quantizing x to int8 per block: sum |w| * (max|x_b| / 127) / 2. */
      const xBound = (w, x) => {
        let b = 0;
        for (let i = 0; i < x.length; i += 32) {
          let m = 0;
          for (let j = i; j < i + 32; j++) m = Math.max(m, Math.abs(x[j]));
          for (let j = i; j < i + 32; j++) b += Math.abs(w[j]) * m / 127 / 2;
        }
        return b;
      };

      it('known blocks: the layouts llama.cpp writes', () => {
        const x = Float32Array.from({ length: 32 }, (_, j) => j - 16);   // largest magnitude: -16
        const q4 = quantize('q4_0', x, 32);
        assert.equal(q4.length, 18);
        assert.equal(f16ToNumber(q4[0] | (q4[1] << 8)), 2);               // d = -16 / -8
        assert.equal(q4[2] & 15, 0); assert.equal(q4[2] >> 4, 8);         // x0 = -16 -> 0, x16 = 0 -> 8
        assert.deepEqual(Array.from(dequantize('q4_0', q4, 32)), Array.from(x, (v) => 2 * Math.min(7, Math.floor(v / 2 + 0.5))));
        const y = new Float32Array(32); y[0] = 63.5; y[1] = -63.5; y[2] = 0.25;
        const q8 = quantize('q8_0', y, 32);
        assert.equal(f16ToNumber(q8[0] | (q8[1] << 8)), 0.5);
        assert.deepEqual([q8[2], q8[3], q8[4]], [127, 256 - 127, 1]);    // 0.25 / 0.5 rounds away from 0
      });

      for (const q of QT) {
        it(`${q.name}: dot and matvec vs the scalar reference (rows at odd addresses), the host's dequantization`, () => {
          const rand = rng(31 + q.code);
          const { e } = t;
          for (const n of QLENGTHS) {
            for (const rows of [1, 3, 9]) {
              t.reset();
              const stride = n / 32 * q.block + 6;
              const mats = Array.from({ length: rows }, () => qrow(q, n, rand));
              const x = randomVec(n, rand);
              const wp = t.alloc(rows * stride, 3), xp = t.alloc(n * 4), pp = t.alloc(e.prep_len(n) * 4);
              const out = t.alloc(rows * 4), outRef = t.alloc(rows * 4);
              mats.forEach((m, r) => t.u8(wp + r * stride, m.bytes.length).set(m.bytes));
              t.f32(xp, n).set(x);
              assert.equal(e.row_bytes(q.code, n), n / 32 * q.block);
              e.matvec(q.code, wp, stride, xp, pp, out, rows, n);
              e.matvec_ref(q.code, wp, stride, xp, outRef, rows, n);
              for (let r = 0; r < rows; r++) {
                const w = mats[r].values;
                let scale = 0, exact = 0;
                for (let i = 0; i < n; i++) { scale += Math.abs(w[i] * x[i]); exact += w[i] * x[i]; }
                const ref = t.f32(outRef, rows)[r], got = t.f32(out, rows)[r];
                assertClose(ref, exact, 1e-5, scale, `${q.name} matvec_ref vs the host's values n=${n}`);
                const bound = (simd ? xBound(w, x) : 0) + 1e-5 * scale;
                assert.ok(Math.abs(got - ref) <= bound, `${q.name} matvec ${rows}x${n} row ${r}: |${got} - ${ref}| > ${bound}`);
                e.prep_x(q.code, xp, pp, n);
                const d = e.dot(q.code, wp + r * stride, pp, n);
                assert.ok(Math.abs(d - ref) <= bound, `${q.name} dot n=${n}: |${d} - ${ref}| > ${bound}`);
              }
            }
          }
        });

        if (build !== 'plain') it(`${q.name}: matvec rows are bitwise those of dot, whatever run of four they fall in; ${build === 'relaxed' ? 'and those of the SIMD build' : 'extreme blocks'}`, () => {
          // Integer block sums are exact in every SIMD build, and the float work is the same: relaxed = SIMD bit for bit.
          const rand = rng(53 + q.code), { e } = t;
          const other = build === 'relaxed' ? setup('simd') : undefined;
          for (const n of [32, 128, 160, 4096]) {
            const rows = 11, stride = n / 32 * q.block + 2;
            const bytes = new Uint8Array(rows * stride);
            for (let r = 0; r < rows; r++) {
              const f = randomVec(n, rand, 0.05);
              if (r === 3) f.fill(0, 0, 64);                            // all-zero blocks (scale 0)
              if (r === 5) for (let i = 0; i < n; i++) f[i] *= 1e-4;     // subnormal f16 scales
              bytes.set(quantize(q.name, f, n), r * stride);
            }
            if (q.name === 'q8_0') bytes[2 + 5] = 0x80;                 // -128, which GGUF writers never emit
            const x = randomVec(n, rand, 4);
            x.fill(0, 32, 64); x[100 % n] = 3000;                        // a zero block of x, an outlier
            const run = (u) => {
              u.reset();
              const wp = u.alloc(rows * stride, 1), xp = u.alloc(n * 4), pp = u.alloc(u.e.prep_len(n) * 4), out = u.alloc(rows * 4);
              u.u8(wp, bytes.length).set(bytes); u.f32(xp, n).set(x);
              u.e.matvec(q.code, wp, stride, xp, pp, out, rows, n);
              const mv = Array.from(u.f32(out, rows));
              // rows 8..10 again as rows 0..2 of a shorter matrix: each in another run of four, or alone
              u.e.matvec(q.code, wp + 8 * stride, stride, xp, pp, out, 3, n);
              const dots = Array.from({ length: rows }, (_, r) => u.e.dot(q.code, wp + r * stride, pp, n));
              return { mv, tail: Array.from(u.f32(out, 3)), dots };
            };
            const a = run(t);
            for (let r = 8; r < rows; r++) assert.ok(Object.is(a.tail[r - 8], a.dots[r]), `${q.name} n=${n} row ${r}: alone ${a.tail[r - 8]} vs dot ${a.dots[r]}`);
            for (const v of a.mv) assert.ok(Number.isFinite(v));
            if (other) {
              const b = run(other);
              assert.deepEqual(a.mv, b.mv, `${q.name} n=${n}: relaxed vs SIMD matvec`);
              assert.deepEqual(a.dots, b.dots, `${q.name} n=${n}: relaxed vs SIMD dot`);
            }
          }
        });

        it(`${q.name}: axpy accumulates dequantized rows exactly as the reference`, () => {
          const rand = rng(41 + q.code);
          const { e } = t;
          for (const n of QLENGTHS) {
            t.reset();
            const rows = [qrow(q, n, rand), qrow(q, n, rand)], a = [f32(0.75), f32(-1.5)];
            const y0 = randomVec(n, rand);
            const wp = rows.map(() => t.alloc(n / 32 * q.block, 1));
            const yp = t.alloc(e.prep_len(n) * 4), y = t.alloc(n * 4), yr = t.alloc(n * 4);
            rows.forEach((w, j) => t.u8(wp[j], w.bytes.length).set(w.bytes));
            t.f32(y, n).set(y0); t.f32(yr, n).set(y0);
            e.prep_zero(q.code, yp, n);
            for (let j = 0; j < 2; j++) { e.axpy(q.code, a[j], wp[j], yp, n); e.axpy_ref(q.code, a[j], wp[j], yr, n); }
            e.unprep_y(q.code, yp, y, n);
            const got = t.f32(y, n), ref = t.f32(yr, n);
            for (let i = 0; i < n; i++) {
              const scale = Math.abs(y0[i]) + Math.abs(a[0] * rows[0].values[i]) + Math.abs(a[1] * rows[1].values[i]);
              assertClose(got[i], ref[i], 1e-6, scale, `${q.name} axpy n=${n} i=${i}`);
            }
          }
        });

        // i16 steps of each group's largest coefficient (i8 in the relaxed build, whose dot takes bytes)
        const steps = build === 'relaxed' ? 127 : 32767;
        it(`${q.name}: a list of down columns sums eight at a time in integers, within half a step of 1/${steps} of each group's largest coefficient`, () => {
          const rand = rng(53 + q.code);
          const { e } = t;
          for (const n of [32, 384, 1536]) {
            for (const count of [1, 7, 8, 13, 37]) {
              t.reset();
              const rows = Array.from({ length: count }, () => qrow(q, n, rand));
              // some columns add nothing; a few coefficients much larger than the rest
              const coefs = Float32Array.from({ length: count }, (_, k) => (k % 5 === 3 ? 0 : (rand() * 2 - 1) * (k % 7 === 0 ? 20 : 1)));
              const wp = rows.map((w) => { const p = t.alloc(w.bytes.length, 2); t.u8(p, w.bytes.length).set(w.bytes); return p; });
              const ptrs = t.alloc(count * 4), cp = t.alloc(count * 4), yp = t.alloc(e.prep_len(n) * 4);
              new Uint32Array(e.memory.buffer, ptrs, count).set(wp);
              t.f32(cp, count).set(coefs);
              e.prep_zero(q.code, yp, n);
              e.axpy_list(q.code, ptrs, cp, count, yp, n);
              const got = t.f32(yp, n);
              for (let i = 0; i < n; i++) {
                const b = i >> 5;
                let want = 0, tol = 0, scale = 0;
                for (let g = 0; g < count; g += 8) {
                  // each coefficient times its block scale is rounded to a step of max / steps, times |q| <= 128
                  let top = 0;
                  for (let k = g; k < Math.min(g + 8, count); k++) {
                    const o = b * q.block, dq = f16ToNumber(rows[k].bytes[o] | (rows[k].bytes[o + 1] << 8));
                    top = Math.max(top, Math.abs(coefs[k] * dq));
                  }
                  tol += Math.min(8, count - g) * 128 * top / steps / 2;
                }
                for (let k = 0; k < count; k++) { want += coefs[k] * rows[k].values[i]; scale += Math.abs(coefs[k] * rows[k].values[i]); }
                assertClose(got[i], want, 1, tol + 1e-6 * scale, `${q.name} axpy_list n=${n} count=${count} i=${i}`);
              }
            }
          }
        });
      }
    });

    if (simd) {
      it('f16 fast path: Inf/NaN weights read as 2^16 * (1 + m/1024) (documented)', () => {
        const { e } = t;
        const n = 16;
        const h = new Uint16Array(n); h[3] = 0x7c00; h[12] = 0xfc01; // +Inf, a negative NaN
        const x = new Float32Array(n).fill(1);
        const wp = t.alloc(n * 2), xp = t.alloc(n * 4), pp = t.alloc(e.prep_len(n) * 4);
        t.u8(wp, 2 * n).set(new Uint8Array(h.buffer));
        t.f32(xp, n).set(x);
        e.prep_x(1, xp, pp, n);
        assert.equal(e.dot(1, wp, pp, n), 65536 - 65536 * (1 + 1 / 1024));
      });
    }

    it('read_sum equals the sum of the i32 words (byte tail included)', () => {
      const { e } = t;
      const rand = rng(5);
      for (const bytes of [0, 3, 4, 17, 127, 128, 129, 1000, 4096 + 12]) {
        t.reset();
        const p = t.alloc(bytes + 4);
        const b = t.u8(p, bytes);
        for (let i = 0; i < bytes; i++) b[i] = Math.floor(rand() * 256);
        let s = 0;
        const dv = new DataView(e.memory.buffer, p, bytes);
        let i = 0;
        for (; i + 4 <= bytes; i += 4) s = (s + dv.getInt32(i, true)) | 0;
        for (; i < bytes; i++) s = (s + b[i]) | 0;
        assert.equal(e.read_sum(p, bytes), s, `bytes=${bytes}`);
      }
    });

    describe('vector kernels', () => {
      const elementwise = (got, ref, atol, rtol, what) => {
        for (let i = 0; i < ref.length; i++) {
          if (!(Math.abs(got[i] - ref[i]) <= atol + rtol * Math.abs(ref[i]))) {
            assert.fail(`${what} i=${i}: got ${got[i]}, ref ${ref[i]}`);
          }
        }
      };

      it('vdot, vaxpy, vadd, vscale', () => {
        const { e } = t;
        const rand = rng(31);
        for (const n of LENGTHS) {
          t.reset();
          const a = randomVec(n, rand), b = randomVec(n, rand, 3);
          const pa = t.alloc(n * 4, 4), pb = t.alloc(n * 4, 8), py = t.alloc(n * 4), pr = t.alloc(n * 4);
          t.f32(pa, n).set(a); t.f32(pb, n).set(b);
          let scale = 0;
          for (let i = 0; i < n; i++) scale += Math.abs(a[i] * b[i]);
          assertClose(e.vdot(pa, pb, n), e.vdot_ref(pa, pb, n), 1e-5, scale, `vdot n=${n}`);

          const al = f32(rand() * 2 - 1);
          t.f32(py, n).set(b); t.f32(pr, n).set(b);
          e.vaxpy(al, pa, py, n); e.vaxpy_ref(al, pa, pr, n);
          if (build !== 'relaxed') elementwise(t.f32(py, n), t.f32(pr, n), 0, 0, `vaxpy n=${n}`); // same two roundings per lane
          else { // fused where the CPU has FMA: the product's rounding may go
            for (let i = 0; i < n; i++) assertClose(t.f32(py, n)[i], t.f32(pr, n)[i], 2 ** -23, Math.abs(b[i]) + Math.abs(al * a[i]), `vaxpy n=${n} i=${i}`);
            t.f32(py, n).set(t.f32(pr, n));
          }
          e.vadd(pa, py, n); e.vadd_ref(pa, pr, n);
          elementwise(t.f32(py, n), t.f32(pr, n), 0, 0, `vadd n=${n}`);
          e.vscale(py, al, n); e.vscale_ref(pr, al, n);
          elementwise(t.f32(py, n), t.f32(pr, n), 0, 0, `vscale n=${n}`);
        }
      });

      it('vargmax: the first index of the largest, as the reference (ties, -Infinity, NaN, tails)', () => {
        const { e } = t;
        const rand = rng(43);
        const first = (v) => { let m = -Infinity, k = 0; v.forEach((x, i) => { if (x > m) { m = x; k = i; } }); return k; };
        for (const n of [0, 1, 3, 4, 5, 8, 31, 100, 8192]) {
          for (const kind of ['random', 'ties', 'minus-inf', 'nan']) {
            t.reset();
            const v = randomVec(n, rand);
            if (kind === 'ties') for (let i = 0; i < n; i++) v[i] = Math.round(v[i] * 2);   // many equal largest
            if (kind === 'minus-inf') v.fill(-Infinity);
            if (kind === 'nan') for (let i = 0; i < n; i += 3) v[i] = NaN;
            const p = t.alloc(n * 4 + 4);
            t.f32(p, n).set(v);
            assert.equal(e.vargmax(p, n), first(v), `${kind} n=${n}`);
            assert.equal(e.vargmax_ref(p, n), first(v), `ref ${kind} n=${n}`);
          }
        }
      });

      it('vaxpy_rows: the bits of zeroing y and vaxpy row after row (attention over the values)', () => {
        const { e } = t;
        const rand = rng(37);
        for (const n of [...LENGTHS, 64, 80, 128]) {
          for (const count of [1, 3, 17]) {
            t.reset();
            const stride = n + 12;   // rows of a wider cache, as a KV group's slice
            const px = t.alloc(count * stride * 4), pa = t.alloc(count * 4), py = t.alloc(n * 4), pr = t.alloc(n * 4);
            t.f32(px, count * stride).set(randomVec(count * stride, rand));
            t.f32(pa, count).set(randomVec(count, rand));
            e.vaxpy_rows(pa, px, stride * 4, count, py, n);
            t.f32(pr, n).fill(0);
            for (let k = 0; k < count; k++) e.vaxpy(t.f32(pa, count)[k], px + k * stride * 4, pr, n);
            elementwise(t.f32(py, n), t.f32(pr, n), 0, 0, `vaxpy_rows n=${n} count=${count}`);
          }
        }
      });

      it('layernorm and rmsnorm', () => {
        const { e } = t;
        const rand = rng(41);
        for (const n of LENGTHS) {
          t.reset();
          const x = randomVec(n, rand, 4).map((v) => v + 3); // offset mean: checks the two-pass variance
          const w = randomVec(n, rand), b = randomVec(n, rand);
          const px = t.alloc(n * 4), pw = t.alloc(n * 4), pb = t.alloc(n * 4), po = t.alloc(n * 4), pr = t.alloc(n * 4);
          t.f32(px, n).set(x); t.f32(pw, n).set(w); t.f32(pb, n).set(b);
          e.layernorm(px, pw, pb, po, n, 1e-5); e.layernorm_ref(px, pw, pb, pr, n, 1e-5);
          elementwise(t.f32(po, n), t.f32(pr, n), 1e-4, 1e-4, `layernorm n=${n}`);
          e.rmsnorm(px, pw, po, n, 1e-6); e.rmsnorm_ref(px, pw, pr, n, 1e-6);
          elementwise(t.f32(po, n), t.f32(pr, n), 1e-6, 1e-5, `rmsnorm n=${n}`);
        }
      });

      it('softmax, including -Infinity (masked) entries and a wide range', () => {
        const { e } = t;
        const rand = rng(51);
        for (const n of LENGTHS) {
          t.reset();
          const x = randomVec(n, rand, 30);
          for (let i = 0; i < n; i += 5) if (i) x[i] = -Infinity;
          if (n > 2) x[1] = -100; // e^-130 relative: underflows in both
          const px = t.alloc(n * 4), pr = t.alloc(n * 4);
          t.f32(px, n).set(x); t.f32(pr, n).set(x);
          e.softmax(px, n); e.softmax_ref(pr, n);
          const got = t.f32(px, n), ref = t.f32(pr, n);
          elementwise(got, ref, 1e-7, 1e-5, `softmax n=${n}`);
          let s = 0;
          for (let i = 0; i < n; i++) s += got[i];
          assert.ok(Math.abs(s - 1) < 1e-5, `softmax n=${n} sums to ${s}`);
        }
      });
    });
  });
}
