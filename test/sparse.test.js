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

for (const name of MODELS) {
  describe(`sparse FFN with an oracle predictor: ${name}`, () => {
    for (const window of [1, 5]) {
      it(`equals dense logits token by token (window ${window}); reads only what the window lacks`, async () => {
        const path = await imagePath(name);
        const dense = Engine.open(path);
        const sparse = Engine.open(path, { mode: 'sparse', window });
        try {
          const ids = golden(name).activations[2].ids.slice(0, 48);
          const L = dense.config.nLayers, ffnBytes = dense.header.ffn.bundle_bytes * dense.config.ffn * L;
          let worst = 0, active = 0;
          for (let p = 0; p < ids.length; p++) {
            dense.forward(ids[p], p);
            for (let l = 0; l < L; l++) { const a = activeIds(dense.activations(l)); active += a.length; sparse.predict(l, a); }
            sparse.forward(ids[p], p);
            worst = Math.max(worst, maxAbsDiff(sparse.logits(), dense.logits()));
          }
          assert.ok(worst < 1e-4, `logits differ by ${worst}`);
          const st = sparse.stats();
          const perToken = st.bytes_read / ids.length / ffnBytes;
          const activeShare = active / ids.length / (dense.config.ffn * L);
          assert.ok(st.bytes_read > 0 && perToken <= activeShare + 1e-9, `read ${perToken} of the FFN per token, active share ${activeShare}`);
          if (window > 1) assert.ok(perToken < 0.8 * activeShare, `the window saved too little: ${perToken} vs ${activeShare}`);
        } finally {
          dense.close(); sparse.close();
        }
      });
    }
  });
}

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
    assert.throws(() => step(1), /flash read failed \(EIO: EIO: i\/o error/);
    fail = false;
    sparse.reset();
    for (let p = 0; p < ids.length; p++) step(p);
    assert.ok(maxAbsDiff(sparse.logits(), dense.logits()) < 1e-4);
    dense.close(); sparse.close();
  });
});
