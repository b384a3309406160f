// Compute threads: with workers taking parts of the matrix products, every mode and weight type
// gives exactly the ids one thread gives (parts split the kernels' row groups, so each row's
// bits never depend on the thread count).
import assert from 'node:assert/strict';
import { instantiateEngine, loadModel } from '../dist/src/index.js';
import { convertDtype, quantize } from '../dist/src/format/dtype.js';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { golden, imagePath, modelDir } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';
import { siluImage } from './helpers/silu.js';
import { synthImage } from '../dist/src/node/synth-file.js';

const GREEDY = { temperature: 0, maxTokens: 12, stopAtEos: false };

after(cleanupTmp);

/** Waits (no deadline but mocha's) until the model's compute workers have all started. */
async function started(model, n) {
  while (model.engine.threads < n) await new Promise((r) => setTimeout(r, 5));
}

describe('compute threads', function () {
  const cases = [
    ['opt-relu-mini', undefined, {}],
    ['llama-relu-mini', undefined, {}],
    ['llama-relu-mini', { dtype: 'q8_0' }, {}],
    ['llama-relu-mini', { dtype: 'q4_0' }, {}],
    ['opt-relu-mini', undefined, { memory: '60%' }],
    ['llama-relu-mini', undefined, { mode: 'naive' }],
    ['llama-relu-mini', undefined, { memory: '80%' }],
  ];
  for (const [name, convert, opts] of cases) {
    it(`${name}${convert ? ` ${convert.dtype}` : ''} ${JSON.stringify(opts)}: 3 threads give the ids of 1`, async () => {
      const image = await imagePath(name, convert);
      const predictorPath = `${modelDir(name)}/flashneuron.fnpred`;
      const one = await loadModel(image, { ...opts, predictorPath, threads: 1 });
      const three = await loadModel(image, { ...opts, predictorPath, threads: 3 });
      try {
        assert.equal(one.engine.threads, 1);
        await started(three, 3);
        const prompt = golden(name).prompts[0].text;
        const a = await one.complete(prompt, GREEDY), b = await three.complete(prompt, GREEDY);
        assert.deepEqual(b.ids, a.ids);
        assert.equal(b.stats.threads, 3);
        assert.equal(b.stats.mode, a.stats.mode);
        if (!convert && !opts.memory && !opts.mode) assert.deepEqual(b.ids, golden(name).prompts[0].greedy_ids.slice(0, GREEDY.maxTokens));
      } finally {
        one.close(); three.close();
      }
    });
  }

  // The wasm's own reads of a round (io 'wasi' on a file) are shared out: each worker reads its
  // share through its own descriptor of the file (src/node/compute-worker.ts).
  it('sparse on flash, 3 threads reading: a file cut short under them is a clear error, the engine then serves again', async () => {
    const src = await imagePath('opt-relu-mini'), path = join(tmpDir('cut'), 'opt.fnimg');
    const bytes = readFileSync(src);
    writeFileSync(path, bytes);
    const predictorPath = `${modelDir('opt-relu-mini')}/flashneuron.fnpred`, prompt = golden('opt-relu-mini').prompts[0].text;
    const one = await loadModel(src, { memory: '60%', predictorPath, threads: 1 });
    const three = await loadModel(path, { memory: '60%', predictorPath, threads: 3 });
    try {
      await started(three, 3);
      const ref = (await one.complete(prompt, GREEDY)).ids;
      truncateSync(path, bytes.length >> 1);
      await assert.rejects(three.complete(prompt, GREEDY), /flash read failed: short read of \d+ bytes at offset \d+: got \d+ \(file truncated\?\); the neuron cache was reset/);
      writeFileSync(path, bytes);
      assert.deepEqual((await three.complete(prompt, GREEDY)).ids, ref);
    } finally { one.close(); three.close(); }
  });

  it('workers that cannot read (no file of their own) leave their share to the engine: the same ids', async () => {
    const image = await imagePath('opt-relu-mini');
    const predictorPath = `${modelDir('opt-relu-mini')}/flashneuron.fnpred`, prompt = golden('opt-relu-mini').prompts[0].text;
    const one = await loadModel(image, { memory: '60%', predictorPath, threads: 1 });
    // Through the built-in WASI shim the workers get no file; reads are shared out anyway here.
    const three = await loadModel(image, { memory: '60%', predictorPath, threads: 3, wasi: 'shim' });
    try {
      await started(three, 3);
      three.engine.wasm.threads_read(1);
      assert.deepEqual((await three.complete(prompt, GREEDY)).ids, (await one.complete(prompt, GREEDY)).ids);
    } finally { one.close(); three.close(); }
  });

  it('the default is one thread per core, and a bad count is refused in one line', async () => {
    const m = await loadModel(await imagePath('opt-relu-mini'));
    try {
      const { availableParallelism } = await import('node:os');
      assert.equal(m.options.threads, availableParallelism());
    } finally { m.close(); }
    for (const bad of [0, 1.5, -2, 1000]) {
      await assert.rejects(loadModel(await imagePath('opt-relu-mini'), { threads: bad }), /^Error: threads must be an integer from 1 to 256 \(got [-\d.]+\)$/);
    }
  });
});

// A real width (OPT-125M's shape, random weights): here the dense FFN's products and its down
// columns (half of ReLU's neurons fire on random weights) are large enough to be shared out.
describe('compute threads at a real width', () => {
  it('opt-125m shape, dense: 3 threads give the logits of 1 bit for bit', async function () {
    this.timeout(120000);
    const image = join(tmpDir('synth'), 'opt-125m.fnimg');
    synthImage('opt-125m', image, { dtype: 'f16' });
    const run = async (threads) => {
      const m = await loadModel(image, { threads, contextLength: 16 });
      try {
        await started(m, threads);
        const out = [];
        for (let t = 0; t < 4; t++) { await m.engine.forwardAsync(100 + t, t); out.push(new Uint32Array(m.engine.logits().slice().buffer)); }
        return out;
      } finally { m.close(); }
    };
    assert.deepEqual(await run(3), await run(1));
  });

  it('llama-silu-mini, SiLU sparse mode (down columns shared out), 48-row caches: 3 threads give the ids of 1', async () => {
    const image = await siluImage();
    // A fixed cut per layer (no calibration needed to compare thread counts): some neurons dropped, most kept.
    const opts = { mode: 'sparse', ffnThresholds: new Array(6).fill(0.002), cacheRows: 48 };
    const one = await loadModel(image, { ...opts, threads: 1 }), three = await loadModel(image, { ...opts, threads: 3 });
    try {
      await started(three, 3);
      const prompt = 'The meaning of the word';
      const a = await one.complete(prompt, { ...GREEDY, maxTokens: 24 }), b = await three.complete(prompt, { ...GREEDY, maxTokens: 24 });
      assert.equal(b.stats.mode, 'sparse');
      assert.deepEqual(b.ids, a.ids);
    } finally { one.close(); three.close(); }
  });

  // From ~85 positions on, llama-relu-mini's 6 query heads (over 2 KV heads) are shared out.
  for (const kvDtype of ['f32', 'f16']) {
    it(`llama-relu-mini, ${kvDtype} KV cache, 120 positions: attention over 3 threads gives the logits of 1 bit for bit`, async function () {
      const image = await imagePath('llama-relu-mini');
      const run = async (threads) => {
        const m = await loadModel(image, { threads, contextLength: 128, kvDtype });
        try {
          await started(m, threads);
          const out = [];
          for (let t = 0; t < 120; t++) {
            await m.engine.forwardAsync(100 + ((t * 37) % 4000), t);
            if (t % 10 === 9) out.push(new Uint32Array(m.engine.logits().slice().buffer));
          }
          return out;
        } finally { m.close(); }
      };
      assert.deepEqual(await run(3), await run(1));
    });
  }
});

// The down columns are summed over slices of y (axpy_list_part), one per thread: any slicing must
// give the bits of the one-row-at-a-time reference, for every storage type and with a tail.
describe('down columns over slices of y', () => {
  const { exports: e } = instantiateEngine();
  e._initialize();
  const mem = () => e.memory.buffer;
  const encode = (v, dt) => dt === 'f32' ? new Uint8Array(v.buffer) : dt.startsWith('q') ? quantize(dt, v, v.length)
    : convertDtype(new Uint8Array(v.buffer), 'f32', dt, v.length);
  for (const [dt, code] of [['f32', 0], ['f16', 1], ['bf16', 2], ['q8_0', 3], ['q4_0', 4]]) {
    for (const n of dt.startsWith('q') ? [384, 1024] : [384, 1000]) {
      it(`${dt}, y of ${n}: 1..7 slices equal the reference bit for bit`, () => {
        const count = 37;
        let seed = 7;
        const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
        const rows = [], coefs = new Float32Array(count);
        for (let k = 0; k < count; k++) {
          const v = new Float32Array(n).map(rand);
          const bytes = encode(v, dt);
          const p = e.alloc(bytes.length, 16);
          new Uint8Array(mem(), p, bytes.length).set(bytes);
          rows.push(p);
          coefs[k] = k % 5 === 0 ? 0 : rand();   // some neurons add nothing
        }
        const ptrs = e.alloc(count * 4, 16), cp = e.alloc(count * 4, 16);
        new Uint32Array(mem(), ptrs, count).set(rows);
        new Float32Array(mem(), cp, count).set(coefs);
        const len = e.prep_len(n) * 4, ref = e.alloc(len, 16), got = e.alloc(len, 16);
        e.prep_zero(code, ref, n);
        e.axpy_list_ref(code, ptrs, cp, count, ref, n);
        const want = new Uint32Array(mem(), ref, len / 4).slice();
        for (let parts = 1; parts <= 7; parts++) {
          e.prep_zero(code, got, n);
          for (let part = parts - 1; part >= 0; part--) e.axpy_list_part(code, ptrs, cp, count, got, n, part, parts);
          assert.deepEqual(new Uint32Array(mem(), got, len / 4), want, `${parts} slices`);
        }
      });
    }
  }
});
