// The neuron cache: random insert/delete sequences against a plain Set; rows must follow their
// neuron when swap-delete moves them, and nothing may be reallocated.
import assert from 'node:assert/strict';
import { instantiateEngine } from '../dist/src/index.js';

function rng(seed) {
  return () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

describe('neuron cache', () => {
  for (const simd of [true, false]) {
    it(`random insert/delete keeps rows, pointers and slots consistent (${simd ? 'SIMD' : 'scalar'} build)`, () => {
      const { exports: e } = instantiateEngine({ simd });
      e._initialize();
      const ffn = 1536, cap = 400, bundle = 48;
      const h = e.cache_new(cap, bundle, ffn);
      const memBefore = e.memory.buffer.byteLength;
      const ref = new Set();
      const rand = rng(7);
      const fill = (n) => { const row = new Uint32Array(e.memory.buffer, e.cache_row_ptr(h, e.cache_slot(h, n)), bundle / 4); row.fill(n * 2654435761 >>> 0); };
      for (let step = 0; step < 20000; step++) {
        const n = Math.floor(rand() * ffn);
        if (ref.has(n)) { e.cache_remove(h, n); ref.delete(n); }
        else if (ref.size < cap) { e.cache_insert(h, n); ref.add(n); fill(n); }
        if (step % 97 === 0 || step === 19999) {
          const count = e.cache_count(h);
          assert.equal(count, ref.size);
          const ptrs = new Int32Array(e.memory.buffer, e.cache_pointers(h), count);
          assert.deepEqual(new Set(ptrs), ref);
          for (let r = 0; r < count; r++) {
            assert.equal(e.cache_slot(h, ptrs[r]), r);
            const row = new Uint32Array(e.memory.buffer, e.cache_row_ptr(h, r), bundle / 4);
            assert.ok(row.every((v) => v === (ptrs[r] * 2654435761 >>> 0)), `row ${r} does not hold neuron ${ptrs[r]}`);
          }
          for (let n2 = 0; n2 < ffn; n2 += 61) if (!ref.has(n2)) assert.equal(e.cache_slot(h, n2), -1);
        }
      }
      assert.equal(e.memory.buffer.byteLength, memBefore, 'the cache reallocated');
      e.cache_clear(h);
      assert.equal(e.cache_count(h), 0);
    });
  }

  it('swap-delete moves the last row into the hole', () => {
    const { exports: e } = instantiateEngine();
    e._initialize();
    const h = e.cache_new(4, 16, 10);
    for (const n of [3, 5, 7, 9]) { const r = e.cache_insert(h, n); new Int32Array(e.memory.buffer, e.cache_row_ptr(h, r), 4).fill(n); }
    e.cache_remove(h, 5);
    assert.deepEqual([...new Int32Array(e.memory.buffer, e.cache_pointers(h), 3)], [3, 9, 7]);
    assert.deepEqual([...new Int32Array(e.memory.buffer, e.cache_row_ptr(h, 1), 4)], [9, 9, 9, 9]);
    assert.equal(e.cache_slot(h, 9), 1);
    assert.equal(e.cache_slot(h, 5), -1);
  });
});
