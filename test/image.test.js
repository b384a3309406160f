// The flash image: layout of the bundles against the Hugging Face tensors, and every way a
// file can be bad — each a clear error, nothing half-written, the process still serving.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine, FileSource, MemorySource, convertHF, loadModel, openHFCheckpoint, readImageHeader, cachedImage } from '../dist/src/index.js';
import { widenToF32 } from '../dist/src/format/dtype.js';
import { MODELS, modelDir, image, imagePath, golden } from './helpers/models.js';
import { cleanupTmp, copyModel, patchJson, tmpDir, truncateFile } from './helpers/hostile.js';

after(cleanupTmp);

function sectionOf(header, name) {
  return header.sections.find((s) => s.name === name);
}

const DTYPES = ['f32', 'bf16', 'f16'];

/** A copy of an image with one byte flipped at `offset`. */
function corrupt(src, offset) {
  const dst = join(tmpDir('bad'), 'model.fnimg');
  const b = readFileSync(src);
  b[offset] ^= 0x5a;
  writeFileSync(dst, b);
  return dst;
}

describe('image layout', () => {
  for (const name of MODELS) {
    it(`${name}: sections 4096-aligned; bundle i holds up/gate row i, down column i, bias i`, async () => {
      const path = await imagePath(name);
      const src = new FileSource(path);
      const h = readImageHeader(src);
      const ck = await openHFCheckpoint(modelDir(name));
      try {
        for (const s of h.sections) assert.equal(s.offset % 4096, 0, s.name);
        const d = h.config.hidden, n = h.config.ffn, f = h.ffn;
        assert.equal(f.bundle_bytes % 16, 0);
        const layer = 3, sec = sectionOf(h, `ffn.${layer}`);
        const prefix = name.startsWith('opt') ? `model.decoder.layers.${layer}.` : `model.layers.${layer}.mlp.`;
        const T = (t) => widenToF32(ck.readTensor(prefix + t), ck.tensor(prefix + t).dtype);
        const up = T(name.startsWith('opt') ? 'fc1.weight' : 'up_proj.weight');
        const down = T(name.startsWith('opt') ? 'fc2.weight' : 'down_proj.weight');
        const gate = f.gate >= 0 ? T('gate_proj.weight') : null;
        const bias = f.bias >= 0 ? T('fc1.bias') : null;
        for (const i of [0, 1, 777, n - 1]) {
          const raw = new Uint8Array(f.bundle_bytes);
          src.pread(raw, sec.offset + i * f.bundle_bytes);
          const row = (off) => widenToF32(raw.slice(off, off + d * 2), f.dtype);
          assert.deepEqual(row(f.up), up.subarray(i * d, (i + 1) * d));
          if (gate) assert.deepEqual(row(f.gate), gate.subarray(i * d, (i + 1) * d));
          assert.deepEqual(row(f.down), Float32Array.from({ length: d }, (_, r) => down[r * n + i]));
          if (bias) assert.equal(new DataView(raw.buffer).getFloat32(f.bias, true), bias[i]);
        }
      } finally {
        src.close();
        ck.close();
      }
    });
  }

  it('an image in memory (WASI shim over a MemorySource) gives the same logits as the file', async () => {
    const path = await imagePath('opt-relu-mini');
    const a = Engine.open(path);
    const b = Engine.open(new MemorySource('opt.fnimg', new Uint8Array(readFileSync(path))));
    const ids = golden('opt-relu-mini').prompts[0].ids;
    ids.forEach((id, p) => { a.forward(id, p); b.forward(id, p); });
    assert.deepEqual(a.logits(), b.logits());
    a.close(); b.close();
  });
});

describe('bad images', () => {
  let good;
  before(async () => { good = await imagePath('opt-relu-mini'); });

  const cases = [
    ['a byte flipped in the resident section', (h) => corrupt(good, sectionOf(h, 'resident').offset + 1000), /checksum mismatch in section resident/],
    ['a byte flipped in an FFN section', (h) => corrupt(good, sectionOf(h, 'ffn.4').offset + 77), /checksum mismatch in section ffn\.4/],
    ['a byte flipped in the tokenizer', (h) => corrupt(good, sectionOf(h, 'tokenizer').offset + 5), /checksum mismatch in section tokenizer/],
    ['a byte flipped in the header', () => corrupt(good, statSync(good).size - 10), /header checksum mismatch/],
    ['a wrong magic', () => corrupt(good, 0), /not a flashneuron image/],
    ['an unknown version', () => corrupt(good, 8), /version \d+ is not supported/],
    ['a file cut in the FFN', (h) => { const p = corrupt(good, 4095); truncateFile(p, sectionOf(h, 'ffn.2').offset + 10); return p; }, /truncated/],
    ['a file cut to 10 bytes', () => { const p = corrupt(good, 4095); truncateFile(p, 10); return p; }, /not a flashneuron image/],
    ['a safetensors file', () => join(modelDir('opt-relu-mini'), 'model-00003-of-00003.safetensors'), /not a flashneuron image/],
  ];
  for (const [what, make, msg] of cases) {
    it(`${what} → ${msg}`, () => {
      const h = readImageHeader(new FileSource(good));
      const path = make(h);
      assert.throws(() => Engine.open(path), msg);
    });
  }

  it('read errors (EIO) and short reads from the flash source are clear errors; the process goes on', async () => {
    const bytes = new Uint8Array(readFileSync(good));
    const h = readImageHeader(new MemorySource('x', bytes));
    const ffn = sectionOf(h, 'ffn.1');
    class Failing extends MemorySource {
      pread(dst, off) {
        if (off >= ffn.offset && off < ffn.offset + ffn.length) throw new Error('EIO: i/o error, read');
        return super.pread(dst, off);
      }
    }
    class Short extends MemorySource {
      // The file "ends" 100 bytes into ffn.1 for the engine's reads (partial reads, then 0).
      pread(dst, off) {
        const cut = ffn.offset + 100;
        if (off >= ffn.offset + ffn.length || off + dst.length <= ffn.offset) return super.pread(dst, off);
        return super.pread(dst.subarray(0, Math.max(0, cut - off)), off);
      }
    }
    assert.throws(() => Engine.open(new Failing('m.fnimg', bytes)), /read of section ffn\.1 failed \(EIO: EIO: i\/o error/);
    assert.throws(() => Engine.open(new Short('m.fnimg', bytes)), /truncated in section ffn\.1/);
    const model = await loadModel(good);
    const p = golden('opt-relu-mini').prompts[0];
    assert.deepEqual((await model.complete(p.text, { temperature: 0, maxTokens: 5 })).ids, p.greedy_ids.slice(0, 5));
    model.close();
  });
});

describe('conversion', () => {
  // The images of every dtype below start converting (worker threads) while the first tests run.
  before(() => { for (const dtype of DTYPES) for (const name of MODELS) image(name, { dtype }); });

  it('a bad checkpoint leaves no output file behind', async () => {
    const dir = copyModel(modelDir('llama-relu-mini'));
    truncateFile(join(dir, 'model-00002-of-00003.safetensors'), -1000);
    const out = join(tmpDir('out'), 'x.fnimg');
    await assert.rejects(convertHF(dir, out), /truncated|not within the file bounds|corrupted/);
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(join(out, '..')), []);
  });

  it('unknown architecture and activation are named', async () => {
    const dir = copyModel(modelDir('opt-relu-mini'));
    patchJson(join(dir, 'config.json'), (c) => { c.activation_function = 'gelu'; });
    await assert.rejects(loadModel(dir, { cacheDir: tmpDir('cache') }), /unsupported activation "gelu"/);
    patchJson(join(dir, 'config.json'), (c) => { c.architectures = ['GPT2LMHeadModel']; });
    await assert.rejects(loadModel(dir, { cacheDir: tmpDir('cache') }), /unsupported architecture "GPT2LMHeadModel"/);
  });

  for (const dtype of DTYPES) {
    it(`convert --dtype ${dtype}: every matrix stored as ${dtype}, greedy text unchanged on both models`, async () => {
      for (const name of MODELS) {
        // convertHF's header and image (helpers/models.js: converted once, read by later tests too)
        const { path: out, header: h } = await image(name, { dtype });
        assert.equal(h.ffn.dtype, dtype);
        for (const t of h.tensors) assert.equal(t.dtype, t.shape.length === 1 ? 'f32' : dtype, t.role);
        const m = await loadModel(out);
        try {
          const p = golden(name).prompts[0];
          const r = await m.complete(p.text, { temperature: 0, maxTokens: 16, stopAtEos: false });
          assert.deepEqual(r.ids, p.greedy_ids.slice(0, 16));
        } finally { m.close(); }
      }
    });
  }

  it('convert --dtype names the types it knows', async () => {
    await assert.rejects(convertHF(modelDir('opt-relu-mini'), join(tmpDir('dt'), 'x.fnimg'), undefined, { dtype: 'int3' }), /unknown dtype int3 \(f32, f16, bf16, q8_0 or q4_0\)/);
  });

  it('a Hugging Face folder converts once into the cache and is reused', async () => {
    const cache = tmpDir('cache');
    const dir = copyModel(modelDir('opt-relu-mini'));
    const phases = new Set();
    const a = await cachedImage(dir, { cacheDir: cache, onProgress: (d, t, ph) => phases.add(ph) });
    assert.ok(phases.has('resident') && phases.has('ffn.5'));
    const t = statSync(a).mtimeMs;
    const b = await cachedImage(dir, { cacheDir: cache });
    assert.equal(a, b);
    assert.equal(statSync(b).mtimeMs, t);
    copyFileSync(join(dir, 'config.json'), join(dir, 'config.json.bak'));
    patchJson(join(dir, 'config.json'), (c) => { c.max_position_embeddings = 256; });
    assert.notEqual(await cachedImage(dir, { cacheDir: cache }).catch((e) => e.message), a);
  });
});
