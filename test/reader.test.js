// ParallelReader (batched positioned reads into wasm memory, buffered and O_DIRECT) and the
// device profile (probe, cost model, profile file).
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ParallelReader, ensureThreadpool } from '../dist/src/node/reader.js';
import { probeDevice, defaultProfile, estimateUs, mergeGapBytes, plannerCosts, loadProfile, saveProfile, profilePath } from '../dist/src/node/probe.js';

function rng(seed) {
  return () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

const SIZE = 3 * 2 ** 20 + 1234; // not a multiple of 4096: the last block is partial
const data = new Uint8Array(SIZE);
{ const r = rng(11); for (let i = 0; i < SIZE; i++) data[i] = (r() * 256) | 1; }

const dirs = [];
function newDir(parent) {
  mkdirSync(parent, { recursive: true });
  const d = mkdtempSync(join(parent, 'fn-reader-'));
  dirs.push(d);
  return d;
}

/** A file holding `data` in os.tmpdir(), and one on a filesystem that takes O_DIRECT (if any). */
const bufferedFile = join(newDir(tmpdir()), 'data.bin');
writeFileSync(bufferedFile, data);
let directFile = null, directWhy = [];
for (const parent of [tmpdir(), join(process.cwd(), 'node_modules', '.cache'), process.cwd()]) {
  let d;
  try { d = newDir(parent); } catch (e) { directWhy.push(`${parent}: ${e.message}`); continue; }
  const f = join(d, 'data.bin');
  writeFileSync(f, data);
  const r = new ParallelReader(f, { direct: true });
  const ok = r.direct;
  r.close();
  if (ok) { directFile = f; break; }
  directWhy.push(`${parent}: O_DIRECT refused`);
}

after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

/** `n` random ops (aligned to `align`), non-overlapping destinations; returns plan + memory. */
function randomPlan(n, align, seed, maxLen = 20000) {
  const r = rng(seed);
  const plan = new Float64Array(n * 3);
  let dst = 0;
  for (let i = 0; i < n; i++) {
    let len = Math.max(1, Math.floor(r() * maxLen));
    len = Math.ceil(len / align) * align;
    let off = Math.floor(r() * (SIZE - len));
    off -= off % align;
    plan[i * 3] = off; plan[i * 3 + 1] = len; plan[i * 3 + 2] = dst;
    dst += Math.ceil(len / 4096) * 4096 + (align > 1 ? 0 : (i % 7));
  }
  const memory = new WebAssembly.Memory({ initial: Math.ceil(dst / 65536) + 1 });
  return { plan, memory };
}

function checkPlan(memory, plan, n, fileBytes = data) {
  const mem = new Uint8Array(memory.buffer);
  for (let i = 0; i < n; i++) {
    const off = plan[i * 3], len = plan[i * 3 + 1], dst = plan[i * 3 + 2];
    const end = Math.min(off + len, fileBytes.length);
    const got = mem.subarray(dst, dst + (end - off)), want = fileBytes.subarray(off, end);
    if (Buffer.compare(got, want) !== 0) assert.fail(`op ${i} (offset ${off}, length ${len}) read wrong bytes`);
  }
}

describe('ParallelReader', () => {
  it('ensureThreadpool sets UV_THREADPOOL_SIZE only when unset', () => {
    const before = process.env.UV_THREADPOOL_SIZE;
    try {
      delete process.env.UV_THREADPOOL_SIZE;
      ensureThreadpool(24);
      assert.equal(process.env.UV_THREADPOOL_SIZE, '24');
      ensureThreadpool(8);
      assert.equal(process.env.UV_THREADPOOL_SIZE, '24');
      assert.throws(() => ensureThreadpool(0), /1\.\.1024/);
    } finally {
      if (before === undefined) delete process.env.UV_THREADPOOL_SIZE; else process.env.UV_THREADPOOL_SIZE = before;
    }
  });

  it('buffered: many random unaligned ops equal the file bytes, with queueDepth ops in flight', async () => {
    const r = new ParallelReader(bufferedFile, { queueDepth: 16 });
    assert.equal(r.direct, false);
    assert.equal(r.alignment, 1);
    assert.equal(r.size, SIZE);
    const { plan, memory } = randomPlan(600, 1, 1);
    await r.read(memory, plan, 600);
    checkPlan(memory, plan, 600);
    assert.equal(r.stats.maxInFlight, 16, 'the instrumented counter saw fewer than queueDepth reads outstanding');
    assert.equal(r.stats.inFlight, 0);
    assert.equal(r.stats.ops, 600);
    r.close();
  });

  it('default queue depth is 32 and a batch smaller than it issues all ops at once', async () => {
    const r = new ParallelReader(bufferedFile);
    assert.equal(r.queueDepth, 32);
    const { plan, memory } = randomPlan(10, 1, 2);
    await r.read(memory, plan, 10);
    checkPlan(memory, plan, 10);
    assert.equal(r.stats.maxInFlight, 10);
    r.close();
  });

  it('readSync reads the same bytes one op at a time', () => {
    const r = new ParallelReader(bufferedFile);
    const { plan, memory } = randomPlan(300, 1, 3);
    r.readSync(memory, plan, 300);
    checkPlan(memory, plan, 300);
    assert.equal(r.stats.maxInFlight, 1);
    r.close();
  });

  it('O_DIRECT: aligned random ops equal the file bytes; a final partial block reaching EOF is fine', async function () {
    if (!directFile) { console.log(`      (skipped: no filesystem here takes O_DIRECT: ${directWhy.join('; ')})`); this.skip(); }
    const r = new ParallelReader(directFile, { direct: true, queueDepth: 32 });
    assert.equal(r.direct, true);
    assert.equal(r.alignment, 4096);
    const { plan, memory } = randomPlan(400, 4096, 4, 64 * 1024);
    // the last op asks the aligned tail: the file ends 1234 bytes into that block
    const lastBlock = Math.floor(SIZE / 4096) * 4096;
    plan[0] = lastBlock; plan[1] = 4096;
    const timings = new Float64Array(400);
    await r.read(memory, plan, 400, timings);
    checkPlan(memory, plan, 400);
    assert.equal(r.stats.maxInFlight, 32);
    assert.ok(timings.every((t) => t > 0), 'per-op timings filled in');
    r.readSync(memory, plan, 400);
    checkPlan(memory, plan, 400);
    // an aligned op wholly past EOF is still an error
    await assert.rejects(r.read(memory, new Float64Array([lastBlock + 4096, 4096, 0]), 1), /short read/);
    r.close();
  });

  it('O_DIRECT: a misaligned op is refused before any read, naming the op and the rule', async function () {
    if (!directFile) this.skip();
    const r = new ParallelReader(directFile, { direct: true });
    const memory = new WebAssembly.Memory({ initial: 4 });
    for (const op of [[100, 4096, 0], [4096, 1000, 0], [4096, 4096, 512]]) {
      const plan = new Float64Array([0, 4096, 0, ...op]);
      await assert.rejects(r.read(memory, plan, 2), (e) => e instanceof RangeError && /op 1/.test(e.message) && /multiples of 4096/.test(e.message));
      assert.throws(() => r.readSync(memory, plan, 2), /multiples of 4096/);
    }
    assert.equal(r.stats.ops, 0, 'nothing was read');
    r.close();
  });

  it('invalid ops are refused with a clear error before any read', async () => {
    const r = new ParallelReader(bufferedFile);
    const memory = new WebAssembly.Memory({ initial: 1 });
    const cases = [
      [[-1, 10, 0], /file offset -1/],
      [[NaN, 10, 0], /file offset NaN/],
      [[0.5, 10, 0], /file offset 0.5/],
      [[0, -3, 0], /length -3/],
      [[0, 10, 1.5], /destination 1.5/],
      [[0, 100, 65500], /outside the 65536-byte memory/],
    ];
    for (const [op, re] of cases) await assert.rejects(r.read(memory, new Float64Array([0, 8, 0, ...op]), 2), re);
    await assert.rejects(r.read(memory, new Float64Array(3), 2), /count 2/);
    assert.equal(r.stats.ops, 0);
    r.close();
    await assert.rejects(r.read(memory, new Float64Array([0, 8, 0]), 1), /reader is closed/);
  });

  it('an op past end of file is a short-read error; in-flight ops finish first, nothing more is issued, and the reader still works', async () => {
    const r = new ParallelReader(bufferedFile, { queueDepth: 8 });
    const { plan, memory } = randomPlan(300, 1, 5);
    plan[50 * 3] = SIZE - 100; plan[50 * 3 + 1] = 500;
    await assert.rejects(r.read(memory, plan, 300), (e) => {
      assert.match(e.message, new RegExp(`^${bufferedFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: short read of 500 bytes at offset ${SIZE - 100}: got 100`));
      assert.match(e.message, /past end of file/);
      return true;
    });
    assert.equal(r.stats.inFlight, 0, 'rejected while reads were still in flight');
    assert.ok(r.stats.ops < 100, `ops kept being issued after the failure (${r.stats.ops})`);
    assert.throws(() => r.readSync(memory, plan, 300), /short read/);
    const ok = randomPlan(100, 1, 6);
    await r.read(ok.memory, ok.plan, 100);
    checkPlan(ok.memory, ok.plan, 100);
    r.close();
  });

  it('a file truncated after opening gives "short read ... (file truncated?)"', async () => {
    const f = join(newDir(tmpdir()), 'trunc.bin');
    writeFileSync(f, data.subarray(0, 65536));
    const r = new ParallelReader(f);
    truncateSync(f, 8192);
    const memory = new WebAssembly.Memory({ initial: 1 });
    await assert.rejects(r.read(memory, new Float64Array([16384, 4096, 0]), 1), /short read of 4096 bytes at offset 16384: got 0 \(file truncated\?\)/);
    r.close();
  });

  it('I/O errors name the file, offset and errno (directory, closed descriptor), and the reader recovers', async () => {
    const dir = newDir(tmpdir());
    const d = new ParallelReader(dir);
    const memory = new WebAssembly.Memory({ initial: 1 });
    await assert.rejects(d.read(memory, new Float64Array([0, 4096, 0]), 1), (e) => e.message.startsWith(`${dir}: read of 4096 bytes at offset 0 failed (EISDIR`) && e.code === 'EISDIR');
    assert.throws(() => d.readSync(memory, new Float64Array([0, 4096, 0]), 1), /EISDIR/);
    d.close();

    const r = new ParallelReader(bufferedFile, { queueDepth: 4 });
    const fd = r.fd;
    closeSync(fd); // the descriptor goes away underneath the reader
    const { plan, memory: m2 } = randomPlan(20, 1, 7);
    await assert.rejects(r.read(m2, plan, 20), (e) => /: read of \d+ bytes at offset \d+ failed \(EBADF/.test(e.message) && e.code === 'EBADF');
    assert.equal(r.stats.inFlight, 0);
    // the lowest free descriptor is reused: the same number now names the file again
    const again = openSync(bufferedFile, 'r');
    assert.equal(again, fd);
    await r.read(m2, plan, 20);
    checkPlan(m2, plan, 20);
    r.close();
  });

  it('opening a missing file names it', () => {
    assert.throws(() => new ParallelReader(join(tmpdir(), 'no-such-flashneuron-file.bin')), /no-such-flashneuron-file\.bin: cannot open \(ENOENT/);
  });
});

describe('device profile', () => {
  let probed;
  it('probeDevice on a small temp file returns sane points and a fitted model, and removes the file', async () => {
    const dir = directFile ? join(directFile, '..') : newDir(tmpdir());
    const phases = [];
    probed = await probeDevice({ dir, sizeBytes: 8 * 2 ** 20, chunks: [4096, 65536], queueDepths: [1, 4], seconds: 0.05, onProgress: (d, t, ph) => phases.push([d, t, ph]) });
    assert.equal(probed.version, 1);
    assert.equal(probed.direct, !!directFile);
    assert.equal(probed.file_bytes, 8 * 2 ** 20);
    assert.equal(probed.points.length, 4);
    for (const p of probed.points) {
      assert.ok([4096, 65536].includes(p.chunk) && [1, 4].includes(p.qd));
      assert.ok(p.iops > 0 && Number.isFinite(p.iops));
      assert.ok(Math.abs(p.mb_per_s - (p.iops * p.chunk) / 1e6) <= 0.1 + p.mb_per_s * 0.01);
      assert.ok(p.lat_us_mean > 0 && p.lat_us_p50 > 0 && p.lat_us_p50 <= p.lat_us_p99);
    }
    assert.ok(probed.latency_us > 0 && probed.bytes_per_us > 0 && probed.parallelism >= 1 && probed.parallelism <= 4);
    assert.ok(!Number.isNaN(Date.parse(probed.date)));
    assert.deepEqual(phases.at(-1), [8, 8, 'done']);
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('flashneuron-probe-')), [], 'temp file left behind');
  });

  it('estimateUs is monotone in reads and bytes; mergeGapBytes is positive', () => {
    for (const p of [defaultProfile(), probed].filter(Boolean)) {
      for (const qd of [1, 4, 8, 32, 64]) {
        let prev = -1;
        for (let reads = 0; reads <= 2000; reads += 50) {
          const t = estimateUs(p, reads, 1 << 20, qd);
          assert.ok(t >= prev, `not monotone in reads at ${reads}, qd ${qd}`);
          prev = t;
        }
        prev = -1;
        for (let bytes = 0; bytes <= 1 << 26; bytes += 1 << 20) {
          const t = estimateUs(p, 100, bytes, qd);
          assert.ok(t >= prev, `not monotone in bytes at ${bytes}, qd ${qd}`);
          prev = t;
        }
        assert.ok(estimateUs(p, 1000, 1000 * 4096, qd) > 0);
        const g = mergeGapBytes(p, qd);
        assert.ok(Number.isFinite(g) && g > 0, `mergeGapBytes(${qd}) = ${g}`);
      }
      assert.equal(estimateUs(p, 0, 0, 8), 0);
      // more queue depth never makes a batch slower
      assert.ok(estimateUs(p, 1000, 1000 * 4096, 32) <= estimateUs(p, 1000, 1000 * 4096, 1));
    }
  });

  it('planner costs come from the measured points at the queue depth in use', () => {
    // A device whose bandwidth saturates: at depth 32 each op costs 12 µs plus 0.5 ns a byte
    // (2 GB/s) whatever the chunk; at depth 1 it is slower per op. The fitted global model would
    // scale bandwidth with parallelism; the planner must price bytes as measured at its depth.
    const pt = (chunk, qd, us) => ({ chunk, qd, iops: 1e6 / us, mb_per_s: chunk / us, lat_us_mean: us * qd, lat_us_p50: us * qd, lat_us_p99: 2 * us * qd });
    const points = [4096, 32768, 262144, 1 << 20].flatMap((b) => [pt(b, 32, 12 + b * 5e-4), pt(b, 1, 80 + b * 5e-4)]);
    const p = { ...defaultProfile(), points, latency_us: 80, bytes_per_us: 2000, parallelism: 8 };
    const c = plannerCosts(p, 32);
    assert.ok(Math.abs(c.opUs - 12) < 0.01 && Math.abs(c.byteUs - 5e-4) < 1e-7, JSON.stringify(c));
    assert.equal(c.gapBytes, Math.round(12 / 5e-4));
    assert.ok(plannerCosts(p, 1).opUs > 79, 'depth 1 takes its own points');
    // One chunk size at that depth: no fit there, so the global model's marginal costs.
    const single = { ...p, points: points.filter((x) => x.chunk === 4096) };
    const g = plannerCosts(single, 32);
    assert.ok(Math.abs(g.opUs - 80 / 8) < 1e-6 && Math.abs(g.byteUs - 1 / (2000 * 8)) < 1e-9, JSON.stringify(g));
    assert.equal(g.gapBytes, 80 * 2000);
  });

  it('default profile reflects the reference machine figures', () => {
    const p = defaultProfile();
    const t1 = estimateUs(p, 1, 4096, 1);
    assert.ok(t1 > 60 && t1 < 200, `4 KiB QD1 ≈ 100–130 µs, model says ${t1}`);
    const iops32 = 1000 / (estimateUs(p, 1000, 1000 * 4096, 32) / 1e6);
    assert.ok(iops32 > 20000 && iops32 < 90000, `4 KiB QD32 ≈ 45k IOPS, model says ${iops32}`);
  });

  it('save/load round trip, default when missing, clear error when malformed', () => {
    const dir = newDir(tmpdir());
    const before = process.env.FLASHNEURON_CACHE;
    process.env.FLASHNEURON_CACHE = dir;
    try {
      assert.equal(profilePath(), join(dir, 'device.json'));
      assert.equal(loadProfile().file, '(built-in default)');
      const p = { ...defaultProfile(), file: 'x' };
      saveProfile(p);
      assert.deepEqual(loadProfile(), p);
      const f = join(dir, 'bad.json');
      writeFileSync(f, '{ not json');
      assert.throws(() => loadProfile(f), (e) => e.message.startsWith(`${f}: malformed device profile`));
      writeFileSync(f, JSON.stringify({ version: 1, points: [] }));
      assert.throws(() => loadProfile(f), /malformed device profile: latency_us must be a positive number/);
      writeFileSync(f, JSON.stringify({ ...p, version: 2 }));
      assert.throws(() => loadProfile(f), /unsupported version 2/);
      writeFileSync(f, JSON.stringify({ ...p, points: [{ chunk: 'big' }] }));
      assert.throws(() => loadProfile(f), /points\[0\]\.chunk/);
      assert.ok(existsSync(profilePath()));
    } finally {
      if (before === undefined) delete process.env.FLASHNEURON_CACHE; else process.env.FLASHNEURON_CACHE = before;
    }
  });
});
