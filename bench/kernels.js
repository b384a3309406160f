// Matvec throughput against the fastest plain read of the same bytes, SIMD build.
//   node bench/kernels.js            (npm run bench:kernels)
// Env: RUNS (timed runs per kernel, best kept; default 30); F16_SUBNORMALS=0 flushes the ~0.25%
// subnormal f16 weights to zero (ablation: Zen 4 multiplies denormal f32 inputs slowly).
// Writes bench/results/kernels.json and bench/results/kernels.svg.
import os from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { instantiateEngine } from '../dist/src/index.js';
import { dequantize, quantize } from '../dist/src/format/dtype.js';
import { barChart } from './plot.js';

const DTYPES = [
  { name: 'f32', code: 0, size: 4 },
  { name: 'f16', code: 1, size: 2 },
  { name: 'bf16', code: 2, size: 2 },
  // GGUF blocks of 32: bytes per element on average
  { name: 'q8_0', code: 3, size: 34 / 32, block: 34 },
  { name: 'q4_0', code: 4, size: 18 / 32, block: 18 },
];
const SHAPES = [[4096, 4096], [16384, 4096]];
const RUNS = Number(process.env.RUNS || 30);
const OUT_DIR = new URL('./results/', import.meta.url);

const { exports: e, simd } = instantiateEngine({ simd: true });
if (!simd) throw new Error('this runtime rejected the SIMD build');
e._initialize();

// ---- data: weights ~ N(0, 0.02) like trained LLM layers (f16: ~0.25% subnormal), x ~ N(0, 1) ----

let seed = 0x9e3779b9;
function rand() { // mulberry32
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());

const F = new Float32Array(1), U = new Uint32Array(F.buffer);
/** f32 -> f16 bits, round to nearest even. */
function toF16(v) {
  F[0] = v;
  const x = U[0], sign = (x >>> 16) & 0x8000;
  let e = ((x >>> 23) & 0xff) - 127 + 15, m = x & 0x7fffff;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    m |= 0x800000;
    const shift = 14 - e, half = 1 << (shift - 1);
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}
/** f32 -> bf16 bits, round to nearest even. */
function toBF16(v) { F[0] = v; const x = U[0]; return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16; }

/** 2^20 weights of the dtype as bytes; matrices tile it with a rotating start. */
function weightPool(dt) {
  const n = 1 << 20;
  if (dt.name === 'f32') return new Uint8Array(Float32Array.from({ length: n }, () => 0.02 * gauss()).buffer);
  if (dt.block) return quantize(dt.name, Float32Array.from({ length: n }, () => 0.02 * gauss()), 1024);
  const conv = dt.name === 'f16' ? toF16 : toBF16;
  const h = Uint16Array.from({ length: n }, () => conv(0.02 * gauss()));
  if (dt.name === 'f16' && process.env.F16_SUBNORMALS === '0') for (let i = 0; i < n; i++) if (!(h[i] & 0x7c00)) h[i] &= 0x8000;
  return new Uint8Array(h.buffer);
}

function fill(ptr, bytes, pool, granule = 64) {   // granule: quantized pools restart on a block
  const mem = new Uint8Array(e.memory.buffer, ptr, bytes);
  for (let off = 0, k = 0; off < bytes; k++) {
    const start = ((k * 7919) % 251) * granule % pool.length;
    const a = pool.subarray(start, Math.min(pool.length, start + bytes - off));
    mem.set(a, off); off += a.length;
    if (off < bytes) { const b = pool.subarray(0, Math.min(start, bytes - off)); mem.set(b, off); off += b.length; }
  }
}

// ---- buffers (the bump allocator never frees: allocate the largest case once) ----

const maxBytes = Math.max(...DTYPES.flatMap((d) => SHAPES.map(([r, c]) => r * c * d.size)));
const maxRows = Math.max(...SHAPES.map((s) => s[0])), maxCols = Math.max(...SHAPES.map((s) => s[1]));
const W = e.alloc(maxBytes + 4096, 4096);
const X = e.alloc(maxCols * 4, 64), XP = e.alloc(e.prep_len(maxCols) * 4, 64);
const OUT = e.alloc(maxRows * 4, 64), REF = e.alloc(maxRows * 4, 64);
const f32 = (p, n) => new Float32Array(e.memory.buffer, p, n);
f32(X, maxCols).set(Float32Array.from({ length: maxCols }, gauss));

function decode(dt, p, i) {
  if (dt.block) {
    const b = Math.floor(i / 32);
    return dequantize(dt.name, new Uint8Array(e.memory.buffer, p + b * dt.block, dt.block), 32)[i % 32];
  }
  const dv = new DataView(e.memory.buffer);
  if (dt.name === 'f32') return dv.getFloat32(p + 4 * i, true);
  const h = dv.getUint16(p + 2 * i, true);
  if (dt.name === 'bf16') { U[0] = h << 16; return F[0]; }
  const s = h & 0x8000 ? -1 : 1, ex = (h >> 10) & 31, m = h & 1023;
  return s * (ex ? 2 ** (ex - 15) * (1 + m / 1024) : 2 ** -14 * (m / 1024));
}

/** matvec vs matvec_ref on sampled rows: |diff| <= 1e-5 * sum |w x| (summation order only). */
function validate(dt, w, stride, rows, cols, sampleRows) {
  const w0 = w;
  e.matvec(dt.code, w, stride, X, XP, OUT, rows, cols);
  const x = f32(X, cols);
  for (const r of sampleRows) {
    e.matvec_ref(dt.code, w + r * stride, stride, X, REF + 4 * r, 1, cols);
    let scale = 0, xq = 0;
    for (let i = 0; i < cols; i++) {
      const w = Math.abs(decode(dt, w0 + r * stride, i));
      scale += w * Math.abs(x[i]);
      // quantized rows: the kernel also quantizes x to int8 per block of 32 (error <= max|x_b| / 254 each)
      if (dt.block) { let m = 0; for (let j = i & ~31; j < (i & ~31) + 32; j++) m = Math.max(m, Math.abs(x[j])); xq += w * m / 254; }
    }
    const got = f32(OUT, rows)[r], ref = f32(REF, rows)[r];
    if (!(Math.abs(got - ref) <= 1e-5 * scale + xq + 1e-30)) {
      throw new Error(`matvec ${dt.name} ${rows}x${cols} row ${r}: ${got} vs matvec_ref ${ref} (scale ${scale})`);
    }
  }
}

const seconds = (fn) => { const t = process.hrtime.bigint(); fn(); return Number(process.hrtime.bigint() - t) / 1e9; };

// ---- run ----

const results = [];
for (const dt of DTYPES) {
  const pool = weightPool(dt);
  // irregular shape first: padded stride, row starts at 2-byte offsets, column tail
  {
    const rows = 37, cols = dt.block ? 1024 : 1003, rowB = cols * dt.size, stride = rowB + 6;
    for (let r = 0; r < rows; r++) {
      const from = dt.block ? r * 2 * dt.block : r * 64 * dt.size;
      new Uint8Array(e.memory.buffer, W + 2 + r * stride, rowB).set(pool.subarray(from, from + rowB));
    }
    validate(dt, W + 2, stride, rows, cols, Array.from({ length: rows }, (_, i) => i));
  }
  for (const [rows, cols] of SHAPES) {
    const stride = cols * dt.size, bytes = rows * stride;
    fill(W, bytes, pool, dt.block ?? 64);
    const sample = [0, 1, rows / 4 - 1, rows / 4, rows / 2 + 3, rows - 2, rows - 1];
    validate(dt, W, stride, rows, cols, sample);
    // warm-up: lets V8 tier both functions up from Liftoff to TurboFan before timing
    for (let i = 0; i < 20; i++) { e.matvec(dt.code, W, stride, X, XP, OUT, 64, cols); e.read_sum(W, 1 << 18); }
    e.matvec(dt.code, W, stride, X, XP, OUT, rows, cols);
    e.read_sum(W, bytes);
    let tRead = Infinity, tMv = Infinity;
    for (let k = 0; k < RUNS; k++) { // alternate so both see the same machine state
      tRead = Math.min(tRead, seconds(() => e.read_sum(W, bytes)));
      tMv = Math.min(tMv, seconds(() => e.matvec(dt.code, W, stride, X, XP, OUT, rows, cols)));
    }
    const readGbps = bytes / tRead / 1e9, gbps = bytes / tMv / 1e9;
    results.push({ dtype: dt.name, rows, cols, gbps: +gbps.toFixed(2), ratio_to_read: +(gbps / readGbps).toFixed(3), read_gbps: +readGbps.toFixed(2) });
    console.log(`${dt.name.padEnd(5)} ${`${rows}x${cols}`.padEnd(10)} matvec ${gbps.toFixed(2).padStart(6)} GB/s   read ${readGbps.toFixed(2).padStart(6)} GB/s   ratio ${(gbps / readGbps).toFixed(3)}`);
  }
  // Console only: the same kernel on a matrix that stays in L2, i.e. its compute-bound speed.
  {
    const rows = 64, cols = 4096, stride = cols * dt.size, bytes = rows * stride, reps = 50;
    let t = Infinity;
    for (let k = 0; k < RUNS; k++) t = Math.min(t, seconds(() => { for (let i = 0; i < reps; i++) e.matvec(dt.code, W, stride, X, XP, OUT, rows, cols); }));
    console.log(`${dt.name.padEnd(5)} ${`${rows}x${cols}`.padEnd(10)} matvec ${(bytes * reps / t / 1e9).toFixed(2).padStart(6)} GB/s   (in L2: compute-bound)`);
  }
}

const cpus = os.cpus();
const report = {
  machine: { cpu: cpus[0]?.model ?? 'unknown', cores: cpus.length, node: process.version, os: `${os.type()} ${os.release()} ${os.arch()}` },
  date: new Date().toISOString(),
  read_gbps: Math.max(...results.map((r) => r.read_gbps)),
  kernels: results,
};
mkdirSync(OUT_DIR, { recursive: true });
writeFileSync(new URL('kernels.json', OUT_DIR), JSON.stringify(report, null, 2) + '\n');
const svg = barChart({
  title: 'matvec weight throughput, GB/s (ratio to a read of the same bytes)',
  subtitle: `${report.machine.cpu}, ${report.machine.cores} cores, node ${report.machine.node}, ${report.date.slice(0, 10)}; weights ~ N(0, 0.02)`,
  unit: 'GB/s',
  groups: DTYPES.map((d) => ({
    label: d.name,
    bars: results.filter((r) => r.dtype === d.name).map((r) => ({ label: `${r.rows}x${r.cols}`, value: r.gbps, text: `${r.gbps.toFixed(1)} (${r.ratio_to_read.toFixed(2)})` })),
  })),
  refLine: { label: 'fastest read', value: report.read_gbps },
});
writeFileSync(new URL('kernels.svg', OUT_DIR), svg);
console.log(`fastest read ${report.read_gbps} GB/s; wrote bench/results/kernels.json and kernels.svg`);
