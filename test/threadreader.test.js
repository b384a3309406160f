// The read thread (io 'thread'): a round of preads shared by a worker thread and the caller.
// Bytes must land exactly where the plan says, whichever thread read them; failures must be
// clear errors that leave the reader (and an engine on it) serving the next round.
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine, ThreadReader } from '../dist/src/index.js';
import { FaultPlan, parseFaults } from '../dist/src/io/fault.js';
import { MODELS, golden, imagePath, maxAbsDiff } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';

after(cleanupTmp);

function activeIds(acts) {
  const ids = [];
  for (let i = 0; i < acts.length; i++) if (acts[i] !== 0) ids.push(i);
  return ids;
}

/** A file of `n` pseudo-random bytes in a temp folder. */
function randomFile(n, seed = 7) {
  const b = new Uint8Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; b[i] = s >>> 24; }
  const f = join(tmpDir('thread'), 'data.bin');
  writeFileSync(f, b);
  return { f, b };
}

describe('ThreadReader', () => {
  it('lands every op of many random rounds at its destination, whichever thread reads it; each op is read once', () => {
    const { f, b } = randomFile(1 << 20);
    const r = new ThreadReader(f, 256 << 10, 128);
    const memory = new WebAssembly.Memory({ initial: 16 });
    const nap = new Int32Array(new SharedArrayBuffer(4));
    try {
      let s = 1, total = 0;
      const rnd = (m) => { s = (s * 1103515245 + 12345) >>> 0; return s % m; };
      for (let round = 0; round < 200; round++) {
        const count = 1 + rnd(128), plan = new Float64Array(count * 3);
        const view = new Uint8Array(memory.buffer);
        view.fill(0);
        for (let i = 0; i < count; i++) {
          // disjoint destinations: op i owns [i * 2048, i * 2048 + len)
          plan[3 * i] = rnd(b.length - 2048); plan[3 * i + 1] = 1 + rnd(2047); plan[3 * i + 2] = i * 2048;
        }
        total += count;
        const before = { ...r.stats };
        r.begin(memory, plan, count);
        // Every fourth round the caller lets the worker take the whole round first (however long
        // that takes), so the staging copy is certainly exercised; the others run as the engine
        // does, with some computation before wait(), split however the threads happen to run.
        const workerOnly = round % 4 === 0;
        if (workerOnly) while (r.taken() < count) Atomics.wait(nap, 0, 0, 1);
        else {
          let x = 0;
          for (let k = 0; k < 2000 * (round % 5); k++) x += Math.sqrt(k);
          assert.ok(x >= 0);
        }
        r.wait();
        for (let i = 0; i < count; i++) {
          const off = plan[3 * i], len = plan[3 * i + 1], dst = plan[3 * i + 2];
          assert.deepEqual(view.subarray(dst, dst + len), b.subarray(off, off + len), `round ${round} op ${i}`);
          if (dst + len < dst + 2048) assert.equal(view[dst + len], 0, `round ${round} op ${i} wrote past its end`);
        }
        if (workerOnly) assert.deepEqual([r.stats.workerOps - before.workerOps, r.stats.callerOps - before.callerOps], [count, 0], `round ${round}`);
      }
      assert.equal(r.stats.rounds, 200);
      assert.equal(r.stats.workerOps + r.stats.callerOps, total, `ops read twice or not at all: ${JSON.stringify(r.stats)}`);
    } finally { r.close(); }
  });

  it('injected faults (FaultPlan) fail the op they name, whichever thread reads it; the next round reads', () => {
    const { f, b } = randomFile(1 << 16);
    for (const [spec, want] of [['eio@2', /: read of 100 bytes at offset 2000 failed \(EIO: injected i\/o error, read 2\)$/],
      ['short@3', /: short read of 100 bytes at offset 3000: got 50 \(injected, read 3\)$/]]) {
      const plan = new FaultPlan(parseFaults(`${spec};scope=all`));
      const r = new ThreadReader(f, 8192, 8, plan);
      const memory = new WebAssembly.Memory({ initial: 1 });
      try {
        const ops = new Float64Array([0, 100, 0, 1000, 100, 100, 2000, 100, 200, 3000, 100, 300]);
        r.begin(memory, ops, 2);
        r.wait();
        r.begin(memory, ops.subarray(6), 2);
        assert.throws(() => r.wait(), (e) => e.message.startsWith(f) && want.test(e.message));
        r.begin(memory, ops, 4);
        r.wait();
        assert.deepEqual(new Uint8Array(memory.buffer, 300, 100), b.subarray(3000, 3100));
        assert.deepEqual(plan.log.map((x) => x.read), [Number(spec.split('@')[1])]);
      } finally { r.close(); }
    }
  });

  it('a round the worker failed leaves nothing behind: the next round lands the file bytes, whoever reads them', () => {
    const { f, b } = randomFile(1 << 16);
    const nap = new Int32Array(new SharedArrayBuffer(4));
    // Round one: the worker reads ops 0–2, then read 3 fails. Round two: op 0 stalls whoever takes
    // it, so the other thread most likely reads ops 1–3 into the same slots; however the round
    // is split, its bytes must be the file's (no stale bytes of round one copied over them).
    const r = new ThreadReader(f, 8192, 8, new FaultPlan(parseFaults('eio@3;delay:200@4;scope=all')));
    const memory = new WebAssembly.Memory({ initial: 1 });
    const view = new Uint8Array(memory.buffer);
    try {
      const round = (base) => new Float64Array([0, 1, 2, 3].flatMap((i) => [base + i * 1000, 500, i * 512]));
      r.begin(memory, round(0), 4);
      while (r.taken() < 4) Atomics.wait(nap, 0, 0, 1);
      assert.throws(() => r.wait(), /EIO: injected i\/o error, read 3/);
      const plan = round(20000);
      r.begin(memory, plan, 4);
      while (r.taken() < 1) Atomics.wait(nap, 0, 0, 1);
      r.wait();
      for (let i = 0; i < 4; i++) {
        assert.ok(Buffer.from(view.subarray(i * 512, i * 512 + 500)).equals(b.subarray(20000 + i * 1000, 20500 + i * 1000)), `op ${i} holds other bytes than the file's`);
      }
    } finally { r.close(); }
  });

  it('refuses a round with more ops or bytes than it holds, or a destination outside memory', () => {
    const { f } = randomFile(1 << 16);
    const r = new ThreadReader(f, 8192, 4);
    const memory = new WebAssembly.Memory({ initial: 1 });
    try {
      assert.throws(() => r.begin(memory, new Float64Array(15), 5), /5 reads exceed the reader's 4/);
      assert.throws(() => r.begin(memory, new Float64Array([0, 4096, 0, 0, 4097, 4096]), 2), /a round of 8193 bytes exceeds the reader's 8192/);
      assert.throws(() => r.begin(memory, new Float64Array([0, 16, 65530]), 1), /destination 65530\.\.65546 is outside the 65536-byte memory/);
      r.begin(memory, new Float64Array([100, 16, 0]), 1);
      r.wait();
    } finally { r.close(); }
  });

  it('a read error (EISDIR) is named, whichever thread hit it', () => {
    const dir = tmpDir('thread');
    const r = new ThreadReader(dir, 8192, 8);
    const memory = new WebAssembly.Memory({ initial: 1 });
    try {
      r.begin(memory, new Float64Array([0, 16, 0, 16, 16, 16]), 2);
      assert.throws(() => r.wait(), (e) => e.message.startsWith(`${dir}: read of 16 bytes at offset`) && /EISDIR/.test(e.message));
    } finally { r.close(); }
  });

  it('a file truncated after opening gives a short-read error; once restored, the next round reads', () => {
    const { f, b } = randomFile(1 << 16);
    const r = new ThreadReader(f, 8192, 8);
    const memory = new WebAssembly.Memory({ initial: 1 });
    try {
      truncateSync(f, 1000);
      r.begin(memory, new Float64Array([2000, 100, 0, 3000, 100, 200]), 2);
      assert.throws(() => r.wait(), /short read of 100 bytes at offset [23]000: got 0 \(file truncated\?\)/);
      writeFileSync(f, b);
      r.begin(memory, new Float64Array([2000, 100, 0, 3000, 100, 200]), 2);
      r.wait();
      assert.deepEqual(new Uint8Array(memory.buffer, 200, 100), b.subarray(3000, 3100));
    } finally { r.close(); }
  });
});

for (const name of MODELS) {
  describe(`io 'thread': ${name}`, () => {
    it('sparse with an oracle predictor equals dense token by token, with the same reads as io wasi', async () => {
      const path = await imagePath(name);
      const dense = Engine.open(path);
      // the same rounds (staging and reads per round) on both paths, so the same reads
      const same = { mode: 'sparse', window: 5, cacheRows: 128, stagingBytes: 256 << 10, maxOps: 256 };
      const wasi = Engine.open(path, same);
      const thread = Engine.open(path, { ...same, io: 'thread' });
      try {
        const ids = golden(name).activations[2].ids.slice(0, 32);
        let worst = 0;
        for (let p = 0; p < ids.length; p++) {
          dense.forward(ids[p], p);
          for (let l = 0; l < dense.config.nLayers; l++) { const a = activeIds(dense.activations(l)); wasi.predict(l, a); thread.predict(l, a); }
          wasi.forward(ids[p], p);
          await thread.forwardAsync(ids[p], p);
          worst = Math.max(worst, maxAbsDiff(thread.logits(), dense.logits()));
          assert.deepEqual([thread.stats().bytes_read, thread.stats().reads], [wasi.stats().bytes_read, wasi.stats().reads], `position ${p}`);
        }
        assert.ok(worst < 1e-4, `logits differ by ${worst}`);
        assert.ok(thread.stats().reads > 0);
      } finally { dense.close(); wasi.close(); thread.close(); }
    });
  });
}

describe("io 'thread': failures and budget", () => {
  it('a model file truncated mid-generation is a clear error; restored, the engine serves the next request', async () => {
    const src = await imagePath('opt-relu-mini');
    const path = join(tmpDir('thread'), 'opt.fnimg');
    copyFileSync(src, path);
    const bytes = readFileSync(path);
    const dense = Engine.open(src);
    const e = Engine.open(path, { mode: 'naive', io: 'thread' });
    try {
      const ids = golden('opt-relu-mini').activations[1].ids.slice(0, 6);
      await e.forwardAsync(ids[0], 0);
      truncateSync(path, e.header.sections.find((s) => s.name === 'ffn.0').offset + 4096);
      await assert.rejects(e.forwardAsync(ids[1], 1), /opt\.fnimg: short read of \d+ bytes at offset \d+: got \d+ \(file truncated\?\); the neuron cache was reset/);
      writeFileSync(path, bytes);
      e.reset(); dense.reset();
      for (let p = 0; p < ids.length; p++) { dense.forward(ids[p], p); await e.forwardAsync(ids[p], p); }
      assert.ok(maxAbsDiff(e.logits(), dense.logits()) < 1e-4);
    } finally { e.close(); dense.close(); }
  });

  it("counts the thread's buffers in the budget and the report", async () => {
    const path = await imagePath('llama-relu-mini');
    const budget = 26 << 20;
    const wasi = Engine.open(path, { mode: 'hybrid', memoryBytes: budget, residentDtype: 'stored' });
    const thread = Engine.open(path, { mode: 'hybrid', memoryBytes: budget, residentDtype: 'stored', io: 'thread' });
    try {
      assert.ok(thread.memoryBytes <= budget, `${thread.memoryBytes} B held under a ${budget} B budget`);
      assert.ok(thread.memory.total === thread.memoryBytes);
      assert.ok(thread.memory.neuron_cache < wasi.memory.neuron_cache, 'the staging copy should come out of the neuron cache');
    } finally { wasi.close(); thread.close(); }
    assert.throws(() => Engine.open(path, { mode: 'sparse', io: 'thread', direct: true }), /io 'thread' reads through the page cache/);
  });
});
