// Compute threads: with workers taking parts of the matrix products, every mode and weight type
// gives exactly the ids one thread gives (parts split the kernels' row groups, so each row's
// bits never depend on the thread count).
import assert from 'node:assert/strict';
import { loadModel } from '../dist/src/index.js';
import { golden, imagePath, modelDir } from './helpers/models.js';

const GREEDY = { temperature: 0, maxTokens: 12, stopAtEos: false };

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
