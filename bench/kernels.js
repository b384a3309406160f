// Matvec throughput per weight dtype and wasm build, against the fastest plain read of the same bytes.
//   node bench/kernels.js            (npm run bench:kernels)
// In Node it times the SIMD build (and BASELINE, another SIMD build's .wasm: before/after a kernel
// change), then runs itself in Deno (node_modules/@deno/…/deno, or DENO) to time the relaxed-SIMD
// build against the SIMD one there (Node 20 runs relaxed SIMD only behind a flag). Builds are
// timed in interleaved rounds and the medians kept (the machine is shared).
// Env: RUNS (rounds, default 21); BASELINE (path to a .wasm); NO_DENO=1; F16_SUBNORMALS=0 flushes
// the ~0.25% subnormal f16 weights to zero (ablation: Zen 4 multiplies denormal f32 inputs slowly).
// Writes bench/results/kernels.json and bench/results/kernels.svg.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dequantize, quantize } from '../dist/src/format/dtype.js';
import { barChart } from './plot.js';
import { machine } from './machine.js';

const DTYPES = [
  { name: 'f32', code: 0, size: 4 },
  { name: 'f16', code: 1, size: 2 },
  { name: 'bf16', code: 2, size: 2 },
  // GGUF blocks of 32: bytes per element on average
  { name: 'q8_0', code: 3, size: 34 / 32, block: 34 },
  { name: 'q4_0', code: 4, size: 18 / 32, block: 18 },
];
// The two DRAM-bound shapes, and one that stays in L2 (its compute-bound speed), run `reps` times per timing.
const SHAPES = [{ rows: 4096, cols: 4096, reps: 1 }, { rows: 16384, cols: 4096, reps: 1 }, { rows: 64, cols: 4096, reps: 50, l2: true }];
const RUNS = Number(process.env.RUNS || 21);
const DENO = typeof Deno !== 'undefined';
const CHILD = process.env.KERNELS_CHILD === '1';
const OUT_DIR = new URL('./results/', import.meta.url);
const BUILD = new URL('../build/', import.meta.url);

// ---- the builds: each its own instance ----

const relaxedBytes = readFileSync(new URL('flashneuron.relaxed.wasm', BUILD));
const sources = [{ label: 'simd', bytes: readFileSync(new URL('flashneuron.simd.wasm', BUILD)) }];
if (WebAssembly.validate(relaxedBytes)) sources.push({ label: 'relaxed', bytes: relaxedBytes });
if (process.env.BASELINE && !CHILD) sources.push({ label: 'baseline', bytes: readFileSync(process.env.BASELINE) });

function instantiate(bytes) {
  const env = { now: () => performance.now(), abort() { throw new Error('wasm abort'); } };
  const wasi = new Proxy({}, { get: () => () => 52 });
  const e = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env, wasi_snapshot_preview1: wasi }).exports;
  e._initialize();
  return e;
}

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

function fill(e, ptr, bytes, pool, granule = 64) {   // granule: quantized pools restart on a block
  const mem = new Uint8Array(e.memory.buffer, ptr, bytes);
  for (let off = 0, k = 0; off < bytes; k++) {
    const start = ((k * 7919) % 251) * granule % pool.length;
    const a = pool.subarray(start, Math.min(pool.length, start + bytes - off));
    mem.set(a, off); off += a.length;
    if (off < bytes) { const b = pool.subarray(0, Math.min(start, bytes - off)); mem.set(b, off); off += b.length; }
  }
}

// ---- buffers per instance (the bump allocator never frees: the largest case once) ----

const maxBytes = Math.max(...DTYPES.flatMap((d) => SHAPES.map((s) => s.rows * s.cols * d.size)));
const maxRows = Math.max(...SHAPES.map((s) => s.rows)), maxCols = Math.max(...SHAPES.map((s) => s.cols));
const X0 = Float32Array.from({ length: maxCols }, gauss);
const builds = sources.map(({ label, bytes }) => {
  const e = instantiate(bytes);
  const b = { label, e, W: e.alloc(maxBytes + 4096, 4096), X: e.alloc(maxCols * 4, 64), XP: e.alloc(e.prep_len(maxCols) * 4, 64), OUT: e.alloc(maxRows * 4, 64), REF: e.alloc(maxRows * 4, 64) };
  new Float32Array(e.memory.buffer, b.X, maxCols).set(X0);
  return b;
});

function decode(b, dt, p, i) {
  if (dt.block) {
    const k = Math.floor(i / 32);
    return dequantize(dt.name, new Uint8Array(b.e.memory.buffer, p + k * dt.block, dt.block), 32)[i % 32];
  }
  const dv = new DataView(b.e.memory.buffer);
  if (dt.name === 'f32') return dv.getFloat32(p + 4 * i, true);
  const h = dv.getUint16(p + 2 * i, true);
  if (dt.name === 'bf16') { U[0] = h << 16; return F[0]; }
  const s = h & 0x8000 ? -1 : 1, ex = (h >> 10) & 31, m = h & 1023;
  return s * (ex ? 2 ** (ex - 15) * (1 + m / 1024) : 2 ** -14 * (m / 1024));
}

/** matvec vs matvec_ref on sampled rows: |diff| <= 1e-5 * sum |w x| (summation order only), plus x's int8 rounding for quantized rows. */
function validate(b, dt, w, stride, rows, cols, sampleRows) {
  const { e, X, OUT, REF } = b;
  e.matvec(dt.code, w, stride, X, b.XP, OUT, rows, cols);
  const x = new Float32Array(e.memory.buffer, X, cols);
  for (const r of sampleRows) {
    e.matvec_ref(dt.code, w + r * stride, stride, X, REF + 4 * r, 1, cols);
    let scale = 0, xq = 0;
    for (let i = 0; i < cols; i++) {
      const wv = Math.abs(decode(b, dt, w + r * stride, i));
      scale += wv * Math.abs(x[i]);
      if (dt.block) { let m = 0; for (let j = i & ~31; j < (i & ~31) + 32; j++) m = Math.max(m, Math.abs(x[j])); xq += wv * m / 254; }
    }
    const got = new Float32Array(e.memory.buffer, OUT, rows)[r], ref = new Float32Array(e.memory.buffer, REF, rows)[r];
    if (!(Math.abs(got - ref) <= 1e-5 * scale + xq + 1e-30)) throw new Error(`${b.label} matvec ${dt.name} ${rows}x${cols} row ${r}: ${got} vs matvec_ref ${ref} (scale ${scale})`);
  }
}

const seconds = (fn) => { const t = process.hrtime.bigint(); fn(); return Number(process.hrtime.bigint() - t) / 1e9; };
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };

// ---- run ----

const results = [];
for (const dt of DTYPES) {
  const pool = weightPool(dt);
  for (const b of builds) { // irregular shape first: padded stride, row starts at 2-byte offsets, column tail
    const rows = 37, cols = dt.block ? 1024 : 1003, rowB = cols * dt.size, stride = rowB + 6;
    for (let r = 0; r < rows; r++) {
      const from = dt.block ? r * 2 * dt.block : r * 64 * dt.size;
      new Uint8Array(b.e.memory.buffer, b.W + 2 + r * stride, rowB).set(pool.subarray(from, from + rowB));
    }
    validate(b, dt, b.W + 2, stride, rows, cols, Array.from({ length: rows }, (_, i) => i));
  }
  for (const { rows, cols, reps, l2 } of SHAPES) {
    const stride = cols * dt.size, bytes = rows * stride;
    for (const b of builds) {
      fill(b.e, b.W, bytes, pool, dt.block ?? 64);
      validate(b, dt, b.W, stride, rows, cols, [0, 1, rows / 4 - 1, rows / 4, rows / 2 + 3, rows - 2, rows - 1]);
      // warm-up: lets V8 tier both functions up from Liftoff to TurboFan before timing
      for (let i = 0; i < 20; i++) { b.e.matvec(dt.code, b.W, stride, b.X, b.XP, b.OUT, 64, cols); b.e.read_sum(b.W, 1 << 18); }
      b.tRead = []; b.tMv = [];
    }
    for (let k = 0; k < RUNS; k++) {  // interleaved: every build sees the same machine state
      for (let j = 0; j < builds.length; j++) {
        const b = builds[(j + k) % builds.length], { e } = b;
        b.tRead.push(seconds(() => { for (let i = 0; i < reps; i++) e.read_sum(b.W, bytes); }));
        b.tMv.push(seconds(() => { for (let i = 0; i < reps; i++) e.matvec(dt.code, b.W, stride, b.X, b.XP, b.OUT, rows, cols); }));
      }
    }
    for (const b of builds) {
      const readGbps = bytes * reps / median(b.tRead) / 1e9, gbps = bytes * reps / median(b.tMv) / 1e9;
      results.push({ build: b.label, dtype: dt.name, rows, cols, ...(l2 ? { in_l2: true } : {}), gbps: +gbps.toFixed(2), ratio_to_read: +(gbps / readGbps).toFixed(3), read_gbps: +readGbps.toFixed(2) });
      if (!CHILD) console.log(`${b.label.padEnd(8)} ${dt.name.padEnd(5)} ${`${rows}x${cols}`.padEnd(10)} matvec ${gbps.toFixed(2).padStart(6)} GB/s   read ${readGbps.toFixed(2).padStart(6)} GB/s   ratio ${(gbps / readGbps).toFixed(3)}${l2 ? '   (in L2: compute-bound)' : ''}`);
    }
  }
}

const runtime = DENO ? `deno ${Deno.version.deno} (V8 ${Deno.version.v8})` : `node ${process.version}`;
if (CHILD) { console.log(JSON.stringify({ runtime, results })); process.exit(0); }

/** a ÷ b of matvec GB/s for every kernel both builds ran. */
function ratios(rs, a, b) {
  return rs.filter((r) => r.build === a).map((r) => {
    const o = rs.find((s) => s.build === b && s.dtype === r.dtype && s.rows === r.rows && s.cols === r.cols);
    return { dtype: r.dtype, rows: r.rows, cols: r.cols, ...(r.in_l2 ? { in_l2: true } : {}), [`${a}_gbps`]: r.gbps, [`${b}_gbps`]: o.gbps, ratio: +(r.gbps / o.gbps).toFixed(3) };
  });
}

const report = { machine: { ...machine(), runtime }, date: new Date().toISOString(), runs: RUNS, statistic: 'median', kernels: results };
if (process.env.BASELINE) report.simd_vs_baseline = { baseline: process.env.BASELINE, kernels: ratios(results, 'simd', 'baseline') };
if (builds.some((b) => b.label === 'relaxed')) report.relaxed_vs_simd = { runtime, kernels: ratios(results, 'relaxed', 'simd') };
else if (!DENO && process.env.NO_DENO !== '1') {
  // The relaxed build in Deno (V8 there runs relaxed SIMD without flags).
  const deno = process.env.DENO ?? fileURLToPath(new URL('../node_modules/@deno/linux-x64-glibc/deno', import.meta.url));
  if (existsSync(deno)) {
    console.log(`relaxed vs simd: running in ${deno} …`);
    const r = spawnSync(deno, ['run', '-A', fileURLToPath(import.meta.url)], { env: { ...process.env, KERNELS_CHILD: '1' }, encoding: 'utf8', maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`deno run bench/kernels.js failed: ${r.stderr}`);
    const child = JSON.parse(r.stdout.trim().split('\n').pop());
    report.relaxed_vs_simd = { runtime: child.runtime, kernels: ratios(child.results, 'relaxed', 'simd') };
  } else console.log('no deno binary: relaxed vs simd not measured (DENO=path)');
}
for (const [name, cmp] of [['relaxed ÷ simd', report.relaxed_vs_simd], ['simd ÷ baseline', report.simd_vs_baseline]]) {
  if (!cmp) continue;
  console.log(`${name}${cmp.runtime ? ` (${cmp.runtime})` : ''}:`);
  for (const k of cmp.kernels) console.log(`  ${k.dtype.padEnd(5)} ${`${k.rows}x${k.cols}`.padEnd(10)} ${k.ratio.toFixed(3)}${k.in_l2 ? '   (in L2)' : ''}`);
}

mkdirSync(OUT_DIR, { recursive: true });
writeFileSync(new URL('kernels.json', OUT_DIR), JSON.stringify(report, null, 2) + '\n');
const series = [['simd', results.filter((r) => r.build === 'simd')], ...(report.simd_vs_baseline ? [['baseline', results.filter((r) => r.build === 'baseline')]] : [])];
const svg = barChart({
  title: 'matvec weight throughput, GB/s (ratio to a read of the same bytes; relaxed ÷ simd in Deno)',
  subtitle: `${report.machine.cpu}, ${report.machine.cores} cores, ${runtime}, ${report.date.slice(0, 10)}; medians of ${RUNS} interleaved rounds`,
  unit: 'GB/s',
  groups: DTYPES.flatMap((d) => SHAPES.map((s) => ({
    label: `${d.name} ${s.l2 ? 'L2' : s.rows === 4096 ? '4k' : '16k'}`,
    bars: [
      ...series.map(([label, rs]) => { const r = rs.find((x) => x.dtype === d.name && x.rows === s.rows); return { label, value: r.gbps, text: `${r.gbps.toFixed(1)}` }; }),
      ...(report.relaxed_vs_simd ? [(() => { const k = report.relaxed_vs_simd.kernels.find((x) => x.dtype === d.name && x.rows === s.rows); return { label: 'relaxed (Deno)', value: k.relaxed_gbps, text: `×${k.ratio.toFixed(2)}` }; })()] : []),
    ],
  }))),
  width: 1100,
});
writeFileSync(new URL('kernels.svg', OUT_DIR), svg);
console.log('wrote bench/results/kernels.json and kernels.svg');
