// The sparse FFN path: with an oracle predictor (the dense pass's true activations) the FFN read
// from flash through the windowed neuron cache must give the dense logits.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Engine, MemorySource } from '../dist/src/index.js';
import { MODELS, golden, imagePath, maxAbsDiff } from './helpers/models.js';
import { cleanupTmp } from './helpers/hostile.js';

after(cleanupTmp);

function activeIds(acts) {
  const ids = [];
  for (let i = 0; i < acts.length; i++) if (acts[i] !== 0) ids.push(i);
  return ids;
}

// The dense pass the oracle tests follow: golden text's first 48 tokens (the tests take a prefix),
// run once per model; per position its logits and each layer's active neurons.
const TOKENS = 48;
const denseRuns = new Map();
function densePass(name) {
  if (!denseRuns.has(name)) {
    denseRuns.set(name, (async () => {
      const dense = Engine.open(await imagePath(name));
      try {
        const ids = golden(name).activations[2].ids.slice(0, TOKENS), L = dense.config.nLayers;
        const logits = [], active = [];
        for (let p = 0; p < ids.length; p++) {
          dense.forward(ids[p], p);
          logits.push(dense.logits().slice());
          active.push(Array.from({ length: L }, (_, l) => activeIds(dense.activations(l))));
        }
        return { ids, logits, active, config: dense.config };
      } finally { dense.close(); }
    })());
  }
  return denseRuns.get(name);
}

for (const name of MODELS) {
  describe(`sparse FFN with an oracle predictor: ${name}`, () => {
    for (const window of [1, 5, 'lru']) {
      it(`equals dense logits token by token (window ${window}); reads only what the window lacks`, async () => {
        const path = await imagePath(name);
        const dense = await densePass(name);
        const sparse = Engine.open(path, { mode: 'sparse', window });
        try {
          const ids = dense.ids.slice(0, 48);
          const L = dense.config.nLayers, ffnBytes = sparse.header.ffn.bundle_bytes * dense.config.ffn * L;
          let worst = 0, active = 0;
          for (let p = 0; p < ids.length; p++) {
            for (let l = 0; l < L; l++) { const a = dense.active[p][l]; active += a.length; sparse.predict(l, a); }
            sparse.forward(ids[p], p);
            worst = Math.max(worst, maxAbsDiff(sparse.logits(), dense.logits[p]));
          }
          assert.ok(worst < 1e-4, `logits differ by ${worst}`);
          const st = sparse.stats();
          const perToken = st.bytes_read / ids.length / ffnBytes;
          const activeShare = active / ids.length / (dense.config.ffn * L);
          assert.ok(st.bytes_read > 0 && perToken <= activeShare + 1e-9, `read ${perToken} of the FFN per token, active share ${activeShare}`);
          if (window !== 1) assert.ok(perToken < 0.8 * activeShare, `the window saved too little: ${perToken} vs ${activeShare}`);
        } finally {
          sparse.close();
        }
      });
    }
  });
}

describe("window 'lru': the neuron cache fills the budget, least recently used evicted first", () => {
  for (const name of MODELS) {
    it(`${name}: full once enough neurons were seen; no evicted neuron was used later than a kept one; fewer reads than window 5`, async () => {
      const path = await imagePath(name);
      const dense = await densePass(name);
      const cap = 128;
      const lru = Engine.open(path, { mode: 'sparse', window: 'lru', cacheRows: cap });
      const win = Engine.open(path, { mode: 'sparse', window: 5, cacheRows: cap });
      try {
        const ids = dense.ids.slice(0, 40);
        const L = dense.config.nLayers;
        const last = Array.from({ length: L }, () => new Map());   // neuron → last token it was wanted
        let worst = 0;
        for (let p = 0; p < ids.length; p++) {
          const want = dense.active[p];
          want.forEach((a, l) => { lru.predict(l, a); win.predict(l, a); a.forEach((i) => last[l].set(i, p)); });
          lru.forward(ids[p], p); win.forward(ids[p], p);
          worst = Math.max(worst, maxAbsDiff(lru.logits(), dense.logits[p]));
          for (let l = 0; l < L; l++) {
            const rows = lru.cacheRows()[l];
            const cached = new Set(new Int32Array(lru.wasm.memory.buffer, lru.wasm.cache_pointers_ptr(l), rows));
            assert.equal(rows, Math.min(cap, last[l].size), `layer ${l} at ${p}: ${rows} rows cached, ${last[l].size} neurons seen`);
            let newestGone = -1, oldestKept = Infinity;
            for (const [i, t] of last[l]) {
              if (t === p) continue;
              if (cached.has(i)) oldestKept = Math.min(oldestKept, t); else newestGone = Math.max(newestGone, t);
            }
            assert.ok(newestGone <= oldestKept, `layer ${l} at ${p}: evicted a neuron last used at ${newestGone}, kept one last used at ${oldestKept}`);
          }
        }
        assert.ok(worst < 1e-4, `logits differ from dense by ${worst}`);
        assert.ok(lru.stats().bytes_read <= win.stats().bytes_read, `lru read ${lru.stats().bytes_read} B, window 5 ${win.stats().bytes_read} B`);
      } finally {
        lru.close(); win.close();
      }
    });
  }
  it('bad windows are refused', async () => {
    const path = await imagePath('opt-relu-mini');
    for (const w of [-1, 1.5, 'forever']) assert.throws(() => Engine.open(path, { mode: 'sparse', window: w }), /window must be a whole number of tokens ≥ 0 or 'lru'/);
  });
});

describe('I/O replay (ioOnly): the flash traffic of a real run without its weights or arithmetic', () => {
  for (const name of MODELS) {
    for (const [mode, extra] of [['sparse', { window: 5, cacheRows: 96 }], ['sparse', { window: 'lru', cacheRows: 96 }], ['sparse', { window: 0, layout: 'split' }], ['hybrid', { hybridShare: 0.3 }], ['naive', {}]]) {
      for (const io of ['wasi', 'async', 'thread']) {
        it(`${name} ${mode} ${JSON.stringify(extra)} io ${io}: the same reads, bytes and cache rows token by token`, async () => {
          const path = await imagePath(name, extra.layout === 'split' ? { layout: 'split' } : undefined);
          const { layout, ...opts } = extra;
          const real = Engine.open(path, { mode, io, ...opts });
          const replay = Engine.open(path, { mode, io, ...opts, ioOnly: true });
          const dense = await densePass(name);
          try {
            assert.equal(replay.memory.resident, 0);
            assert.ok(replay.memoryBytes <= real.memoryBytes - real.memory.resident + (256 << 10),
              `replay holds ${replay.memoryBytes} B, the real run ${real.memoryBytes} B of which ${real.memory.resident} B resident`);
            const ids = dense.ids.slice(0, 16);
            const L = real.config.nLayers;
            for (let p = 0; p < ids.length; p++) {
              if (mode === 'sparse') for (let l = 0; l < L; l++) { const a = dense.active[p][l]; real.predict(l, a); replay.predict(l, a); }
              await real.forwardAsync(ids[p], p);
              await replay.forwardAsync(ids[p], p);
              const a = real.stats(), b = replay.stats();
              assert.deepEqual([b.bytes_read, b.reads], [a.bytes_read, a.reads], `position ${p}`);
              assert.deepEqual(replay.cacheRows(), real.cacheRows(), `position ${p}`);
              for (let l = 0; l < L; l++) {
                const rows = real.cacheRows()[l];
                const ptr = (e) => Array.from(new Int32Array(e.wasm.memory.buffer, e.wasm.cache_pointers_ptr(l), rows));
                assert.deepEqual(ptr(replay), ptr(real), `layer ${l} cache order at position ${p}`);
              }
            }
            assert.ok(real.stats().bytes_read > 0);
            assert.throws(() => replay.forward(ids[0], 0), /I\/O replay\) backend runs asynchronously/);
            await assert.rejects(replay.setDevice('cpu'), /I\/O replay \(ioOnly\) runs no arithmetic/);
          } finally {
            real.close(); replay.close();
          }
        });
      }
    }
  }
  it('refuses dense mode and a predictor', async () => {
    const path = await imagePath('opt-relu-mini');
    assert.throws(() => Engine.open(path, { ioOnly: true }), /needs a flash mode/);
    assert.throws(() => Engine.open(path, { ioOnly: true, mode: 'sparse', predictor: { rank: 1, layers: [] } }), /takes the wanted neurons from predict\(\)/);
  });
});

describe('sparse FFN failures', () => {
  it('an EIO from flash mid-generation is a clear error; the engine then serves the next request', async () => {
    const path = await imagePath('opt-relu-mini');
    const bytes = new Uint8Array(readFileSync(path));
    let fail = false;
    class Flaky extends MemorySource {
      pread(dst, off) { if (fail && off > 4096 * 1000) throw new Error('EIO: i/o error, read'); return super.pread(dst, off); }
    }
    const dense = Engine.open(path);
    const sparse = Engine.open(new Flaky('opt.fnimg', bytes), { mode: 'sparse' });
    const ids = golden('opt-relu-mini').prompts[0].ids;
    const step = (p) => {
      dense.forward(ids[p], p);
      for (let l = 0; l < dense.config.nLayers; l++) sparse.predict(l, activeIds(dense.activations(l)));
      sparse.forward(ids[p], p);
    };
    step(0);
    fail = true;
    assert.throws(() => step(1), /flash read failed: EIO: EIO: i\/o error/);
    fail = false;
    sparse.reset();
    for (let p = 0; p < ids.length; p++) step(p);
    assert.ok(maxAbsDiff(sparse.logits(), dense.logits()) < 1e-4);
    dense.close(); sparse.close();
  });
});
