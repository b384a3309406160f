// Block-quantized images (convert --dtype int8|int4: GGUF Q8_0 / Q4_0 layout) on both models:
// perplexity on held-out text (the last 12 000 characters of calibration.txt, as in the README)
// against the unquantized model — targets ≤ +2 % for int8 and ≤ +8 % for int4 — the bundles
// whole in the quantized layout, and a budget run from flash.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertHF, loadModel } from '../dist/src/index.js';
import { MODELS, ROOT, golden, modelDir } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';

after(cleanupTmp);

const HELDOUT = readFileSync(join(ROOT, 'models', 'calibration.txt'), 'utf8').slice(-12000);
const TARGET = { q8_0: 0.02, q4_0: 0.08 };

for (const name of MODELS) {
  describe(`quantized images: ${name}`, function () {
    this.timeout(300_000);
    const ppl = {};
    before(async () => {
      const m = await loadModel(modelDir(name));
      try { ppl.ref = (await m.perplexity(HELDOUT, { context: 128 })).ppl; } finally { m.close(); }
    });
    for (const dt of ['q8_0', 'q4_0']) {
      it(`${dt}: bundles whole in the quantized layout; perplexity within +${TARGET[dt] * 100}%; greedy text close`, async () => {
        const out = join(tmpDir('q'), `${name}.${dt}.fnimg`);
        const h = await convertHF(modelDir(name), out, undefined, { dtype: dt });
        const d = h.config.hidden, block = dt === 'q8_0' ? 34 : 18;
        assert.equal(h.ffn.dtype, dt);
        assert.equal(h.ffn.down - h.ffn.up, (h.config.hasGate ? 2 : 1) * (d / 32) * block);
        assert.equal(h.ffn.bundle_bytes % 16, 0);
        const m = await loadModel(out);
        try {
          const r = await m.perplexity(HELDOUT, { context: 128 });
          const change = r.ppl / ppl.ref - 1;
          console.log(`      ${name} ${dt}: ppl ${r.ppl.toFixed(3)} vs ${ppl.ref.toFixed(3)} (${(100 * change).toFixed(2)}%)`);
          assert.ok(change <= TARGET[dt], `perplexity +${(100 * change).toFixed(2)}% > ${TARGET[dt] * 100}%`);
          const p = golden(name).prompts[0];
          const c = await m.complete(p.text, { temperature: 0, maxTokens: 16, stopAtEos: false });
          // int8 follows the unquantized greedy text; int4 on a 384-wide model keeps its first token, then drifts.
          const same = c.ids.filter((id, i) => id === p.greedy_ids[i]).length;
          if (dt === 'q8_0') assert.ok(same >= 12, `${same} of 16 greedy ids equal the unquantized model's`);
          else assert.equal(c.ids[0], p.greedy_ids[0]);
        } finally { m.close(); }
        // The FFN from flash under a budget works on quantized bundles too (no predictor for them: naive).
        const f = await loadModel(out, { memory: '80%', mode: 'naive', contextLength: 64 });
        try {
          const c = await f.complete('The meaning of the word', { temperature: 0, maxTokens: 4 });
          assert.ok(c.stats.bytes_read_per_token > 0);
        } finally { f.close(); }
      });
    }
  });
}
