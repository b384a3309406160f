// Injected read faults (src/io/fault.ts, FLASHNEURON_FAULTS) on every io path: an EIO or a short
// read at a seeded FFN read ends the request with one clear line naming the read (file, offset,
// errno), and the same model object then answers the next request exactly as a model that never
// failed. Which read faults is a function of the seed and the read's number, not of timing.
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { loadModel } from '../dist/src/index.js';
import { FaultPlan, FaultySource, parseFaults } from '../dist/src/io/fault.js';
import { MemorySource } from '../dist/src/io/source.js';
import { golden, modelDir } from './helpers/models.js';
import { cleanupTmp, seeded, tmpDir } from './helpers/hostile.js';

after(cleanupTmp);

const NAME = 'opt-relu-mini';
const GREEDY = { maxTokens: 8, temperature: 0, stopAtEos: false };


/** Loads the model with FLASHNEURON_FAULTS set to `spec` (the variable is read when the image is opened). */
async function load(opts, spec) {
  const before = process.env.FLASHNEURON_FAULTS;
  process.env.FLASHNEURON_FAULTS = spec;
  try {
    return await loadModel(modelDir(NAME), opts);
  } finally {
    if (before === undefined) delete process.env.FLASHNEURON_FAULTS; else process.env.FLASHNEURON_FAULTS = before;
  }
}

describe('fault specs', () => {
  it('parse read numbers, seeded probabilities, delays, limits and scope; refuse anything else', () => {
    assert.deepEqual(parseFaults('eio@3,7; short@p0.25/9x2;delay:40@1; scope=all'), {
      scope: 'all',
      rules: [{ kind: 'eio', at: [3, 7] }, { kind: 'short', p: 0.25, seed: 9, times: 2 }, { kind: 'delay', ms: 40, at: [1] }],
    });
    for (const bad of ['eio', 'boom@1', 'delay@1', 'eio@p2/1', 'scope=some']) assert.throws(() => parseFaults(bad), /^Error: bad fault/);
  });

  it('a seeded plan faults the same reads every time, whatever else happens', () => {
    const picks = () => {
      const plan = new FaultPlan(parseFaults('eio@p0.05/11;scope=all'));
      for (let i = 0; i < 2000; i++) plan.next(i * 100, 100);
      return plan.log.map((f) => f.read);
    };
    const a = picks();
    assert.ok(a.length > 50 && a.length < 200, `${a.length} faults for p = 0.05`);
    assert.deepEqual(picks(), a);
  });

  it('wraps any source: an EIO names the read, a short read ends at the cut, a delay changes nothing', () => {
    const bytes = new Uint8Array(4096).map((_, i) => i & 255);
    const src = new FaultySource(new MemorySource('m.bin', bytes), new FaultPlan(parseFaults('eio@1;short@2;delay:1@3;scope=all')));
    const buf = new Uint8Array(100);
    assert.equal(src.pread(buf, 0), 100);
    assert.throws(() => src.pread(buf, 500), /^Error: m\.bin: read of 100 bytes at offset 500 failed \(EIO: injected i\/o error, read 1\)$/);
    assert.equal(src.pread(buf, 1000), 50);
    assert.equal(src.pread(buf.subarray(50), 1050), 0, 'the read continuing a short one finds the end of the file');
    assert.equal(src.pread(buf, 2000), 100);
    assert.deepEqual(buf, bytes.subarray(2000, 2100));
    assert.deepEqual(src.plan.log.map((f) => [f.read, f.kind]), [[1, 'eio'], [2, 'short'], [3, 'delay']]);
  });
});

describe(`injected read faults: ${NAME}`, function () {
  let cacheDir;
  before(() => { cacheDir = tmpDir('faultcache'); });

  for (const mode of ['naive', 'sparse']) {
    for (const io of ['wasi', 'async', 'thread']) {
      describe(`${mode}, io ${io}`, () => {
        let reference, reads;
        before(async () => {
          // A model that counts its FFN reads and injects nothing: the reference ids, and how many reads a request makes.
          const m = await load({ mode, io, cacheDir }, 'scope=ffn');
          try {
            reference = (await m.complete(golden(NAME).prompts[0].text, GREEDY)).ids;
            reads = m.engine.source.plan.reads;
          } finally { m.close(); }
          assert.ok(reads > 0, 'the request read nothing from flash');
          if (mode === 'naive') assert.deepEqual(reference, golden(NAME).prompts[0].greedy_ids.slice(0, GREEDY.maxTokens));
        });

        for (const kind of ['eio', 'short']) {
          it(`${kind} at a seeded read: one clear line naming the read; the same model then gives the reference ids`, async () => {
            const at = seeded(`${mode}/${io}/${kind}`, reads);
            const model = await load({ mode, io, cacheDir }, `${kind}@${at}`);
            try {
              const prompt = golden(NAME).prompts[0].text;
              const err = await model.complete(prompt, GREEDY).then(() => undefined, (e) => e);
              assert.ok(err instanceof Error, `read ${at} of ${reads} failed and the request still succeeded`);
              const [fault] = model.engine.source.plan.log;
              assert.equal(fault?.read, at);
              // Recovery first (it must hold whatever the message says), then the message.
              const again = await model.complete(prompt, GREEDY);
              assert.deepEqual(again.ids, reference, `after "${err.message}" the model answers differently`);
              const msg = err.message;
              assert.ok(!msg.includes('\n'), `more than one line: ${msg}`);
              assert.ok(msg.includes(basename(model.engine.source.name)), `the file is not named: ${msg}`);
              assert.ok(msg.includes(`offset ${fault.offset}`), `the offset ${fault.offset} is not named: ${msg}`);
              assert.match(msg, kind === 'eio' ? /EIO/ : /short read/);
              assert.doesNotMatch(msg, /TypeError|RangeError|RuntimeError|unreachable|out of bounds/);
              assert.equal(model.engine.source.plan.log.length, 1);
            } finally { model.close(); }
          });
        }

        it('delays at seeded reads change nothing', async () => {
          const model = await load({ mode, io, cacheDir }, 'delay:1@p0.2/3');
          try {
            const c = await model.complete(golden(NAME).prompts[0].text, GREEDY);
            assert.deepEqual(c.ids, reference);
            assert.ok(model.engine.source.plan.log.length > 0);
          } finally { model.close(); }
        });
      });
    }
  }
});
