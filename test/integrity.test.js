// Bundles read from flash are checked against the image's per-neuron CRC-32s ("ffn.crc"): a
// flipped bit in an FFN section is a clear error naming layer and neuron in every flash mode and
// io path, the neuron cache is reset, and the model answers correctly again once the file is.
import assert from 'node:assert/strict';
import { copyFileSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { convertHF, loadModel, readImageHeaderFile } from '../dist/src/index.js';
import { golden, imagePath, modelDir } from './helpers/models.js';
import { cleanupTmp, copyModel, patchJson, readSafetensors, shardOf, tmpDir } from './helpers/hostile.js';
import { ROOT } from './helpers/models.js';
import { crc32 } from '../dist/src/format/crc32.js';

after(cleanupTmp);
const NAME = 'llama-relu-mini';
const greedy = { temperature: 0, maxTokens: 6, stopAtEos: false };

/** XORs one byte of a file in place. */
function flip(path, offset, mask = 0x10) {
  const fd = openSync(path, 'r+'), b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, offset);
  b[0] ^= mask;
  writeSync(fd, b, 0, 1, offset);
  closeSync(fd);
}

/** Rewrites an image's JSON header with `fn` applied (the header checksum made valid again). */
function rewriteHeader(path, fn) {
  const fd = openSync(path, 'r+'), prefix = Buffer.alloc(32);
  readSync(fd, prefix, 0, 32, 0);
  const len = prefix.readUInt32LE(12), off = Number(prefix.readBigUInt64LE(16));
  const raw = Buffer.alloc(len);
  readSync(fd, raw, 0, len, off);
  const h = JSON.parse(raw.toString('utf8'));
  fn(h);
  const out = Buffer.from(JSON.stringify(h));
  writeSync(fd, out, 0, out.length, off);
  prefix.writeUInt32LE(out.length, 12);
  prefix.writeUInt32LE(crc32(out), 24);
  writeSync(fd, prefix, 0, 32, 0);
  closeSync(fd);
}

describe('integrity of FFN bundles read from flash', function () {
  let good, header, ref, prompt;
  before(async () => {
    good = await imagePath(NAME);
    header = readImageHeaderFile(good);
    const g = golden(NAME);
    prompt = g.prompts?.[0]?.ids ?? g.cases?.[0]?.ids;
    if (!prompt) {
      const m = await loadModel(good);
      prompt = m.tokenize('The meaning of the word');
      m.close();
    }
    const m = await loadModel(good);
    ref = (await m.complete(prompt, greedy)).ids;
    m.close();
  });

  it('convert writes one CRC-32 per neuron, equal to the CRC of its bundle', () => {
    const s = header.sections.find((x) => x.name === 'ffn.crc');
    const cfg = header.config, f = header.ffn;
    assert.equal(s.length, 4 * cfg.nLayers * cfg.ffn);
    const fd = openSync(good, 'r');
    const crcs = Buffer.alloc(s.length);
    readSync(fd, crcs, 0, s.length, s.offset);
    const ffn2 = header.sections.find((x) => x.name === 'ffn.2');
    for (const n of [0, 17, cfg.ffn - 1]) {
      const b = Buffer.alloc(f.bundle_bytes);
      readSync(fd, b, 0, b.length, ffn2.offset + n * f.bundle_bytes);
      assert.equal(crcs.readUInt32LE(4 * (2 * cfg.ffn + n)), crc32(b));
    }
    closeSync(fd);
  });

  const cases = [
    ['naive, io wasi', { mode: 'naive' }],
    ['naive, io async', { mode: 'naive', io: 'async' }],
    ['naive, io thread', { mode: 'naive', io: 'thread' }],
    ['sparse, io wasi', { mode: 'sparse', memory: '70%' }],
    ['sparse, io async', { mode: 'sparse', memory: '70%', io: 'async' }],
    ['hybrid', { mode: 'hybrid', memory: '70%' }],
    // Three threads land (copy and check) a round's bundles side by side, and read them.
    ['naive, 3 threads', { mode: 'naive', threads: 3 }],
    ['sparse, 3 threads', { mode: 'sparse', memory: '70%', threads: 3 }],
  ];
  for (const [label, opts] of cases) {
    it(`${label}: a flipped bit is an error naming layer and neuron; fixed, the same model answers right`, async () => {
      const path = join(tmpDir('integrity'), 'm.fnimg');
      copyFileSync(good, path);
      copyFileSync(join(modelDir(NAME), 'flashneuron.fnpred'), path.replace(/fnimg$/, 'fnpred'));
      const f = header.ffn, n = header.config.ffn;
      const s = header.sections.find((x) => x.name === 'ffn.1');
      // Every neuron of layer 1 is corrupted, so whichever the predictor wants fails.
      for (let i = 0; i < n; i++) flip(path, s.offset + i * f.bundle_bytes + f.down + 3);
      const m = await loadModel(path, opts);
      try {
        await assert.rejects(m.complete(prompt, greedy), /FFN bundle of layer 1, neuron \d+ read from flash fails its checksum.*neuron cache was reset/);
        await assert.rejects(m.complete(prompt, greedy), /layer 1, neuron \d+ .*fails its checksum/);
        for (let i = 0; i < n; i++) flip(path, s.offset + i * f.bundle_bytes + f.down + 3);
        assert.deepEqual((await m.complete(prompt, greedy)).ids, ref);
      } finally {
        m.close();
      }
    });
  }

  it('the neuron named is the same on 1 and 3 threads (verdicts are taken in order)', async () => {
    const path = join(tmpDir('integrity'), 'm.fnimg');
    copyFileSync(good, path);
    const f = header.ffn, n = header.config.ffn;
    const s = header.sections.find((x) => x.name === 'ffn.2');
    for (let i = 0; i < n; i += 7) flip(path, s.offset + i * f.bundle_bytes + f.up + 1);
    const named = [];
    for (const threads of [1, 3]) {
      const m = await loadModel(path, { mode: 'naive', threads });
      try {
        while (m.engine.threads < threads) await new Promise((r) => setTimeout(r, 5));
        const e = await m.complete(prompt, greedy).then(() => null, (err) => err.message);
        named.push(/layer 2, neuron (\d+)/.exec(e ?? '')?.[1]);
      } finally { m.close(); }
    }
    assert.ok(named[0] !== undefined, 'the corrupted neuron is named');
    assert.equal(named[1], named[0]);
  });

  it("verify 'first' checks a neuron once; 'always' catches a bundle that changes after its first read", async () => {
    const path = join(tmpDir('integrity'), 'm.fnimg');
    copyFileSync(good, path);
    const first = await loadModel(path, { mode: 'naive' });
    const always = await loadModel(path, { mode: 'naive', verify: 'always' });
    const off = await loadModel(path, { mode: 'naive', verify: 'off' });
    try {
      for (const m of [first, always, off]) assert.deepEqual((await m.complete(prompt, greedy)).ids, ref);
      const s = header.sections.find((x) => x.name === 'ffn.0');
      flip(path, s.offset + 5 * header.ffn.bundle_bytes + header.ffn.up + 1, 0x40);
      await assert.rejects(always.complete(prompt, greedy), /layer 0, neuron 5 read from flash fails its checksum/);
      // Checked once already: 'first' (and 'off') read the changed bytes without a check.
      await first.complete(prompt, greedy);
      await off.complete(prompt, greedy);
    } finally {
      first.close(); always.close(); off.close();
    }
  });

  it('an image without per-neuron checksums loads unverified, with a note', async () => {
    const path = join(tmpDir('integrity'), 'old.fnimg');
    copyFileSync(good, path);
    rewriteHeader(path, (h) => { h.sections = h.sections.filter((x) => x.name !== 'ffn.crc'); });
    const m = await loadModel(path, { mode: 'naive' });
    try {
      assert.ok(m.options.notes.some((n) => /no per-neuron checksums/.test(n)), JSON.stringify(m.options.notes));
      assert.deepEqual((await m.complete(prompt, greedy)).ids, ref);
    } finally {
      m.close();
    }
    const dense = await loadModel(path);
    assert.ok(!dense.options.notes.some((n) => /checksums/.test(n)), 'dense mode verifies whole sections');
    dense.close();
  });
});

describe('non-finite values', function () {
  let path, ref, clean, poisoned;
  before(async () => {
    // One token's embedding row holds NaN (checksums valid: the file says so, it is no corruption).
    const dir = copyModel(modelDir(NAME));
    const shard = shardOf(dir, 'model.embed_tokens.weight');
    const { header, dataStart } = readSafetensors(shard);
    const t = header['model.embed_tokens.weight'], es = { F32: 4, F16: 2, BF16: 2 }[t.dtype];
    const m = await loadModel(await imagePath(NAME));
    clean = m.tokenize('The meaning of the word');
    poisoned = m.tokenize('The meaning of the elephant');
    ref = (await m.complete(clean, greedy)).ids;
    m.close();
    const bad = poisoned.find((id) => !clean.includes(id));
    const fd = openSync(shard, 'r+');
    const nan = t.dtype === 'F32' ? Buffer.from([0, 0, 0xc0, 0x7f]) : t.dtype === 'F16' ? Buffer.from([0, 0x7e]) : Buffer.from([0xc0, 0x7f]);
    writeSync(fd, nan, 0, es, dataStart + t.data_offsets[0] + (bad * t.shape[1] + 7) * es);
    closeSync(fd);
    path = join(tmpDir('nan'), 'nan.fnimg');
    await convertHF(dir, path);
  });

  for (const [label, opts] of [['dense', {}], ['naive', { mode: 'naive' }]]) {
    it(`${label}: NaN in the weights is an error at the logits, then the model answers other prompts right`, async () => {
      const m = await loadModel(path, opts);
      try {
        await assert.rejects(m.complete(poisoned, greedy), /non-finite values \(NaN or Inf\) in the logits at position \d+/);
        assert.deepEqual((await m.complete(clean, greedy)).ids, ref);
      } finally {
        m.close();
      }
    });
  }

  it('with check on, the error names the first layer whose output is not finite', async () => {
    const m = await loadModel(path, { check: true });
    try {
      await assert.rejects(m.complete(poisoned, greedy), /non-finite values \(NaN or Inf\) after layer 0 at position \d+/);
      assert.deepEqual((await m.complete(clean, greedy)).ids, ref);
    } finally {
      m.close();
    }
  });
});

describe('a context longer than wasm32 can hold', function () {
  it('is refused in one line; without one asked for, the KV cache holds 8192 tokens, said in a note', async () => {
    const dir = copyModel(join(ROOT, 'test/fixtures/replicas/llama3-relu-tiny'));
    patchJson(join(dir, 'config.json'), (c) => { c.max_position_embeddings = 2 ** 24; });
    const path = join(tmpDir('ctx'), 'long.fnimg');
    await convertHF(dir, path);
    await assert.rejects(loadModel(path, { contextLength: 2 ** 24 }), /^Error: a context of 16777216 tokens needs a \d+\.\d+ GiB KV cache, more than wasm32's 4 GiB of memory holds: give a shorter context \(--context N\)$/);
    const m = await loadModel(path);
    try {
      assert.equal(m.engine.contextLength, 8192);
      assert.ok(m.options.notes.some((n) => /holds 8192 tokens of the model's 16777216/.test(n)), JSON.stringify(m.options.notes));
    } finally {
      m.close();
    }
  });
});
