// The FFN on flash: every mode gives the dense model's logits, the memory budget holds, the
// planner merges reads and never does worse than reading a layer whole, host-issued parallel
// reads equal WASI reads, and failures leave a model that still serves.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { Engine, MemorySource, convertHF, loadModel, parseMemory } from '../dist/src/index.js';
import { join } from 'node:path';
import { MODELS, golden, imagePath, maxAbsDiff, modelDir } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';

after(cleanupTmp);

function activeIds(acts) {
  const ids = [];
  for (let i = 0; i < acts.length; i++) if (acts[i] !== 0) ids.push(i);
  return ids;
}

/** Runs `ids` through a dense engine and `other` (fed oracle predictions when sparse); returns the worst logit gap. */
async function compare(dense, other, ids, { async = false } = {}) {
  let worst = 0;
  dense.reset(); other.reset();
  for (let p = 0; p < ids.length; p++) {
    dense.forward(ids[p], p);
    if (other.mode === 'sparse') for (let l = 0; l < dense.config.nLayers; l++) other.predict(l, activeIds(dense.activations(l)));
    if (async) await other.forwardAsync(ids[p], p); else other.forward(ids[p], p);
    worst = Math.max(worst, maxAbsDiff(other.logits(), dense.logits()));
  }
  return worst;
}

const seq = (name, n = 40) => golden(name).activations[1].ids.slice(0, n);

for (const name of MODELS) {
  describe(`FFN on flash: ${name}`, () => {
    let path, dense, size;
    before(async () => { path = await imagePath(name); dense = Engine.open(path); size = statSync(path).size; });
    after(() => dense.close());

    it('naive reads the whole FFN every token and gives the dense logits', async () => {
      const e = Engine.open(path, { mode: 'naive' });
      try {
        const ids = seq(name, 12);
        assert.ok(await compare(dense, e, ids) < 1e-4);
        assert.equal(e.stats().bytes_read, e.ffnBytes * ids.length);
      } finally { e.close(); }
    });

    it('hybrid keeps a share of neurons and reads the rest every token, with the dense logits', async () => {
      const e = Engine.open(path, { mode: 'hybrid', hybridShare: 0.25 });
      try {
        const ids = seq(name, 12);
        assert.ok(await compare(dense, e, ids) < 1e-4);
        const kept = e.memory.cache_rows.reduce((a, b) => a + b, 0) * e.header.ffn.bundle_bytes;
        assert.ok(Math.abs(kept / e.ffnBytes - 0.25) < 0.01);
        // the first token fills the kept rows; after that only the rest is read
        const perToken = (e.stats().bytes_read - e.ffnBytes) / (ids.length - 1);
        assert.equal(perToken, e.ffnBytes - kept);
      } finally { e.close(); }
    });

    it('sparse with a cache far smaller than a token needs streams the overflow and keeps the dense logits', async () => {
      const e = Engine.open(path, { mode: 'sparse', cacheRows: 16, window: 3 });
      try {
        assert.ok(await compare(dense, e, seq(name, 24)) < 1e-4);
        assert.ok(e.cacheRows().every((r) => r <= 16));
      } finally { e.close(); }
    });

    it('window 0 reads every wanted neuron every token; a window reads fewer', async () => {
      const ids = seq(name, 24);
      const bytes = {};
      for (const window of [0, 1, 5]) {
        const e = Engine.open(path, { mode: 'sparse', window });
        try {
          assert.ok(await compare(dense, e, ids) < 1e-4);
          bytes[window] = e.stats().bytes_read;
        } finally { e.close(); }
      }
      let active = 0;
      dense.reset();
      for (let p = 0; p < ids.length; p++) {
        dense.forward(ids[p], p);
        for (let l = 0; l < dense.config.nLayers; l++) active += activeIds(dense.activations(l)).length;
      }
      assert.equal(bytes[0], active * dense.header.ffn.bundle_bytes);
      assert.ok(bytes[1] < bytes[0] && bytes[5] < bytes[1], JSON.stringify(bytes));
    });

    it('the planner merges neighbouring misses when an operation costs more than the gap', async () => {
      const ids = seq(name, 16);
      const B = dense.header.ffn.bundle_bytes;
      const plain = Engine.open(path, { mode: 'sparse' });
      const merged = Engine.open(path, { mode: 'sparse', planner: { opUs: 100, byteUs: 0.001, gapBytes: 8 * B } });
      try {
        assert.ok(await compare(dense, plain, ids) < 1e-4);
        assert.ok(await compare(dense, merged, ids) < 1e-4);
        const a = plain.stats(), b = merged.stats();
        assert.ok(b.reads < a.reads * 0.7, `merged ${b.reads} reads vs ${a.reads}`);
        assert.ok(b.bytes_read > a.bytes_read, 'merging reads the gaps through');
      } finally { plain.close(); merged.close(); }
    });

    it('the planner never issues more than reading each layer whole would', async () => {
      const ids = seq(name, 8);
      const staging = 64 << 10;
      // Operations so costly that one extent per layer is always best.
      const e = Engine.open(path, { mode: 'sparse', window: 0, stagingBytes: staging, planner: { opUs: 1e6, byteUs: 1e-6, gapBytes: 0 } });
      try {
        assert.ok(await compare(dense, e, ids) < 1e-4);
        const layerBytes = e.ffnBytes / e.config.nLayers;
        const wholeOps = Math.ceil(layerBytes / staging) * e.config.nLayers;
        assert.ok(e.stats().reads / ids.length <= wholeOps, `${e.stats().reads / ids.length} reads per token > ${wholeOps}`);
        assert.ok(e.stats().bytes_read / ids.length <= e.ffnBytes);
      } finally { e.close(); }
    });

    it('batched reads from an in-memory source give the dense logits', async () => {
      const e = Engine.open(new MemorySource('m.fnimg', new Uint8Array(readFileSync(path))), { mode: 'sparse', io: 'async', window: 2 });
      try {
        assert.ok(await compare(dense, e, seq(name, 12), { async: true }) < 1e-4);
        assert.ok(e.stats().reads > 0);
      } finally { e.close(); }
    });

    it('host-issued parallel reads (io async) give the same logits as WASI reads', async () => {
      const e = Engine.open(path, { mode: 'sparse', io: 'async', queueDepth: 16, stagingBytes: 128 << 10 });
      try {
        assert.ok(await compare(dense, e, seq(name, 16), { async: true }) < 1e-4);
        assert.ok(e.source.reader.stats.maxInFlight > 1, `max in flight ${e.source.reader.stats.maxInFlight}`);
        assert.ok(e.stats().bytes_read > 0);
      } finally { e.close(); }
    });

    it('the unbundled (split) layout gives the same logits with one read per part', async () => {
      const split = join(tmpDir('split'), `${name}-split.fnimg`);
      const h = await convertHF(modelDir(name), split, undefined, { layout: 'split' });
      assert.equal(h.ffn.layout, 'split');
      assert.throws(() => Engine.open(split), /unbundled \(split\) FFN layout/);
      const ids = seq(name, 12);
      const a = Engine.open(path, { mode: 'sparse', window: 0 });
      const b = Engine.open(split, { mode: 'sparse', window: 0 });
      try {
        assert.ok(await compare(dense, a, ids) < 1e-4);
        assert.ok(await compare(dense, b, ids) < 1e-4);
        const parts = h.ffn.parts.length;
        // the same runs of neighbours, read part by part (staging may cut long runs elsewhere)
        assert.ok(Math.abs(b.stats().reads / (a.stats().reads * parts) - 1) < 0.02, `${b.stats().reads} vs ${parts} × ${a.stats().reads}`);
        assert.ok(b.stats().bytes_read <= a.stats().bytes_read, 'bundles carry padding the split layout does not');
      } finally { a.close(); b.close(); }
    });

    it('the memory budget caps everything the engine holds', () => {
      for (const share of [0.7, 0.85, 1.0]) {
        const budget = Math.floor(size * share);
        const e = Engine.open(path, { mode: 'sparse', memoryBytes: budget, contextLength: 128, kvDtype: 'f16' });
        try {
          assert.ok(e.memoryBytes <= budget, `${e.memoryBytes} > ${budget}`);
          assert.equal(e.wasm.memory.buffer.byteLength, e.memoryBytes);
          const m = e.memory;
          assert.equal(m.total, e.memoryBytes);
          assert.ok(m.neuron_cache > 0 && m.kv_cache === 2 * e.config.nLayers * 128 * e.config.nKvHeads * e.config.headDim * 2);
        } finally { e.close(); }
      }
    });

    it('a budget below the resident part is a clear error that names the minimum', () => {
      assert.throws(() => Engine.open(path, { mode: 'sparse', memoryBytes: Math.floor(size * 0.3) }),
        /memory budget .* is too small.*needs [\d.]+ MiB.*give at least [\d.]+ MiB \([\d.]+% of the model\)/);
    });

    it('token embeddings left on flash (untied models) give the same logits, one row read per token', async () => {
      if (dense.config.tieWordEmbeddings) {
        assert.throws(() => Engine.open(path, { embeddingsOnFlash: true }), /cannot stay on flash when the lm_head shares them/);
        return;
      }
      const e = Engine.open(path, { embeddingsOnFlash: true });
      try {
        const ids = seq(name, 12);
        assert.ok(await compare(dense, e, ids) < 1e-6);
        const row = e.config.hidden * 2;
        assert.equal(e.stats().bytes_read, row * ids.length);
        assert.equal(e.memory.resident, dense.memory.resident - e.config.vocab * row);
      } finally { e.close(); }
    });

    it('an f16 KV cache stays within 2e-2 of the f32 logits', () => {
      const e = Engine.open(path, { kvDtype: 'f16' });
      try {
        const ids = seq(name, 64);
        dense.reset();
        let worst = 0;
        for (let p = 0; p < ids.length; p++) { dense.forward(ids[p], p); e.forward(ids[p], p); worst = Math.max(worst, maxAbsDiff(e.logits(), dense.logits())); }
        assert.ok(worst < 2e-2, `${worst}`);
        assert.ok(e.memory.kv_cache * 2 === dense.memory.kv_cache);
      } finally { e.close(); }
    });
  });
}

describe('descriptors', () => {
  // node:wasi holds the model's directory open (its preopen) until the engine closes it.
  it('loading and closing a model (from flash) eight times leaves the open descriptors as they were', async function () {
    if (!existsSync('/proc/self/fd')) this.skip();
    // A copy in a folder of its own, and only descriptors into that folder counted: other tests'
    // workers in this process may open or close theirs meanwhile.
    const dir = tmpDir('fds'), path = join(dir, 'opt.fnimg');
    copyFileSync(await imagePath('opt-relu-mini'), path);
    const target = (fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`); } catch { return ''; } };
    const open = () => readdirSync('/proc/self/fd').filter((fd) => target(fd).startsWith(dir)).length;
    const before = open();
    for (let i = 0; i < 8; i++) {
      const m = await loadModel(path, { mode: 'naive', threads: 1 });
      await m.complete('The meaning', { maxTokens: 2, temperature: 0 });
      m.close();
    }
    assert.equal(open(), before);
  });
});

describe('flash failures', () => {
  it('a failed parallel read is a clear error; the engine then serves the next request', async () => {
    const path = await imagePath('opt-relu-mini');
    const dense = Engine.open(path);
    const e = Engine.open(path, { mode: 'sparse', io: 'async', queueDepth: 8 });
    try {
      const ids = seq('opt-relu-mini', 6);
      assert.ok(await compare(dense, e, ids.slice(0, 2), { async: true }) < 1e-4);
      const real = e.source.readBatch;
      e.source.readBatch = () => Promise.reject(new Error('model.fnimg: read of 1552 bytes at offset 4096 failed (EIO: i/o error)'));
      dense.forward(ids[2], 2);
      for (let l = 0; l < dense.config.nLayers; l++) e.predict(l, activeIds(dense.activations(l)));
      await assert.rejects(e.forwardAsync(ids[2], 2), /EIO.*the neuron cache was reset/);
      e.source.readBatch = real;
      assert.ok(await compare(dense, e, ids, { async: true }) < 1e-4);
    } finally { e.close(); dense.close(); }
  });

  it('a short read from a truncated source is a clear error; the engine then serves again', async () => {
    const path = await imagePath('opt-relu-mini');
    const bytes = new Uint8Array(readFileSync(path));
    let cut = false;
    class Cut extends MemorySource {
      pread(dst, off) { return cut && off > bytes.length / 2 ? 0 : super.pread(dst, off); }
    }
    const dense = Engine.open(path);
    const e = Engine.open(new Cut('opt.fnimg', bytes), { mode: 'naive' });
    try {
      cut = true;
      assert.throws(() => e.forward(2, 0), /flash read failed: short read of \d+ bytes at offset \d+: got 0 \(file truncated\?\); the neuron cache was reset/);
      cut = false;
      assert.ok(await compare(dense, e, seq('opt-relu-mini', 4)) < 1e-4);
    } finally { e.close(); dense.close(); }
  });

  it('memory budgets parse as bytes, units or a share of the model, and refuse anything else', () => {
    assert.equal(parseMemory('60%', 1000), 600);
    assert.equal(parseMemory('1.5GiB', 0), 1.5 * 2 ** 30);
    assert.equal(parseMemory('300MB', 0), 300 * 2 ** 20);
    assert.equal(parseMemory('4096B', 0), 4096);
    assert.equal(parseMemory(12345, 0), 12345);
    for (const bad of ['lots', '0%', '150%', '-5MB', '', '4096']) assert.throws(() => parseMemory(bad, 1000), /memory budget/);
  });
});
