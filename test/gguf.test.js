// GGUF: export of llama-relu-mini read back by our bounds-checked reader against the image
// (names, shapes, types, llama.cpp's rotary row order, the FFN taken out of its bundles, the
// tokenizer), quantized export, OPT refused, and hostile GGUF files — each a clear error.
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, readSync, fstatSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertHF, loadModel, readImageHeaderFile } from '../dist/src/index.js';
import { exportGGUF } from '../dist/src/index.js';
import { readGGUF, writeGGUF } from '../dist/src/format/gguf.js';
import { openGGUFCheckpoint, readGGUFPredictor } from '../dist/src/node/gguf-file.js';
import { loadPredictor } from '../dist/src/node/predictor-file.js';
import { modelFingerprint } from '../dist/src/predictor/format.js';
import { dequantize } from '../dist/src/format/dtype.js';
import { golden, imagePath, modelDir } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';
import { cliRunner } from './helpers/cli.js';

after(cleanupTmp);

function open(path) {
  const fd = openSync(path, 'r'), size = fstatSync(fd).size;
  try {
    return readGGUF((p, l) => { const b = Buffer.alloc(Math.min(l, size - p)); readSync(fd, b, 0, b.length, p); return new Uint8Array(b.buffer, b.byteOffset, b.length); }, size, path);
  } finally { closeSync(fd); }
}
const bytesOf = (path, t) => readFileSync(path).subarray(t.offset, t.offset + t.bytes);

describe('GGUF export', function () {
  this.timeout(120_000);
  let image, header, gguf, g;
  before(async () => {
    image = await imagePath('llama-relu-mini');
    header = readImageHeaderFile(image);
    gguf = join(tmpDir('gguf'), 'llama.gguf');
    exportGGUF(image, gguf);
    g = open(gguf);
  });
  const imageTensor = (role, layer = -1) => {
    const t = header.tensors.find((x) => x.role === role && x.layer === layer);
    const res = header.sections.find((s) => s.name === 'resident');
    return readFileSync(image).subarray(res.offset + t.offset, res.offset + t.offset + t.shape.reduce((a, b) => a * b, 1) * 2);
  };

  it('llama keys, the tokenizer and every tensor with llama.cpp names, ne order and types', () => {
    const c = header.config;
    assert.equal(g.version, 3);
    assert.equal(g.metadata.get('general.architecture'), 'llama');
    assert.equal(g.metadata.get('llama.block_count'), c.nLayers);
    assert.equal(g.metadata.get('llama.attention.head_count_kv'), c.nKvHeads);
    assert.equal(g.metadata.get('tokenizer.ggml.pre'), 'gpt-2');
    const tok = JSON.parse(readFileSync(join(modelDir('llama-relu-mini'), 'tokenizer.json'), 'utf8'));
    const tokens = g.metadata.get('tokenizer.ggml.tokens');
    assert.equal(tokens.length, c.vocab);
    for (const [s, id] of Object.entries(tok.model.vocab).slice(0, 500)) assert.equal(tokens[id], s);
    assert.equal(g.metadata.get('tokenizer.ggml.merges').length, tok.model.merges.length);
    assert.equal(g.tensors.size, 3 + 9 * c.nLayers);
    assert.deepEqual(g.tensors.get('token_embd.weight').dims, [c.hidden, c.vocab]);
    assert.deepEqual(g.tensors.get('blk.0.ffn_down.weight').dims, [c.ffn, c.hidden]);
    assert.deepEqual(g.tensors.get('blk.0.ffn_up.weight').dims, [c.hidden, c.ffn]);
    assert.equal(g.tensors.get('blk.0.attn_q.weight').dtype, 'bf16');
    assert.equal(g.tensors.get('output_norm.weight').dtype, 'f32');
    assert.deepEqual(bytesOf(gguf, g.tensors.get('token_embd.weight')), imageTensor('tok_embed'));
  });

  it("attn_q/attn_k rows in llama.cpp's rotary order; the FFN out of its bundles (down transposed)", () => {
    const c = header.config, hd = c.headDim, d = c.hidden;
    for (const [name, role, heads] of [['attn_q', 'q', c.nHeads], ['attn_k', 'k', c.nKvHeads]]) {
      const got = bytesOf(gguf, g.tensors.get(`blk.2.${name}.weight`)), want = imageTensor(role, 2), rb = d * 2;
      for (let h = 0; h < heads; h++) for (let j = 0; j < hd / 2; j++) for (let half = 0; half < 2; half++) {
        const from = h * hd + half * hd / 2 + j, to = h * hd + 2 * j + half;
        assert.deepEqual(got.subarray(to * rb, (to + 1) * rb), want.subarray(from * rb, (from + 1) * rb));
      }
    }
    const f = header.ffn, sec = header.sections.find((s) => s.name === 'ffn.3');
    const bundles = readFileSync(image).subarray(sec.offset, sec.offset + sec.length);
    const up = bytesOf(gguf, g.tensors.get('blk.3.ffn_up.weight')), down = bytesOf(gguf, g.tensors.get('blk.3.ffn_down.weight'));
    for (const i of [0, 1, 517, c.ffn - 1]) {
      assert.deepEqual(up.subarray(i * d * 2, (i + 1) * d * 2), bundles.subarray(i * f.bundle_bytes + f.up, i * f.bundle_bytes + f.up + d * 2));
      for (const r of [0, 5, d - 1]) {
        const a = down.subarray((r * c.ffn + i) * 2, (r * c.ffn + i) * 2 + 2), b = bundles.subarray(i * f.bundle_bytes + f.down + r * 2, i * f.bundle_bytes + f.down + r * 2 + 2);
        assert.deepEqual(a, b);
      }
    }
  });

  it('an int8 image exports as Q8_0 (ffn_down quantized again along its rows, close to the columns)', async () => {
    const q = join(tmpDir('gguf'), 'q8.fnimg');
    await convertHF(modelDir('llama-relu-mini'), q, undefined, { dtype: 'q8_0' });
    const out = join(tmpDir('gguf'), 'q8.gguf');
    exportGGUF(q, out);
    const qg = open(out);
    assert.equal(qg.metadata.get('general.file_type'), 7);
    const t = qg.tensors.get('blk.0.ffn_down.weight');
    assert.equal(t.dtype, 'q8_0');
    const m = dequantize('q8_0', bytesOf(out, t), t.dims[0] * t.dims[1]);
    const ref = dequantize('q8_0', bytesOf(out, qg.tensors.get('blk.0.ffn_up.weight')), 64);
    assert.ok(m.some((v) => v !== 0) && ref.some((v) => v !== 0));
  });

  it('imports back (loadModel on the .gguf): golden ids, and the same logits as the image it came from', async () => {
    const p = golden('llama-relu-mini').prompts[0];
    const cacheDir = tmpDir('ggufcache');
    const back = await loadModel(gguf, { cacheDir }), orig = await loadModel(image);
    try {
      assert.equal(back.config.act, 'relu');   // recorded by the export (flashneuron.activation)
      assert.deepEqual(back.tokenize(p.text), p.ids);
      const a = await back.complete(p.text, { temperature: 0, maxTokens: 24, stopAtEos: false });
      assert.deepEqual(a.ids, p.greedy_ids);
      const b = await orig.complete(p.text, { temperature: 0, maxTokens: 24, stopAtEos: false });
      assert.deepEqual(Array.from(back.engine.logits()), Array.from(orig.engine.logits()));
      assert.deepEqual(a.ids, b.ids);
    } finally { back.close(); orig.close(); }
  });

  it('an int8 GGUF imports: Q8_0 rows kept, greedy text as the int8 image', async () => {
    const q = join(tmpDir('gguf'), 'q8b.fnimg');
    await convertHF(modelDir('llama-relu-mini'), q, undefined, { dtype: 'q8_0' });
    const out = join(tmpDir('gguf'), 'q8b.gguf');
    exportGGUF(q, out);
    const back = await loadModel(out, { cacheDir: tmpDir('ggufcache') }), orig = await loadModel(q);
    try {
      assert.equal(back.engine.header.ffn.dtype, 'q8_0');
      const p = golden('llama-relu-mini').prompts[0];
      const a = await back.complete(p.text, { temperature: 0, maxTokens: 16, stopAtEos: false });
      const b = await orig.complete(p.text, { temperature: 0, maxTokens: 16, stopAtEos: false });
      assert.ok(a.ids.filter((id, i) => id === b.ids[i]).length >= 12, `${a.ids} vs ${b.ids}`);
    } finally { back.close(); orig.close(); }
  });

  it('OPT is refused by name', async () => {
    await assert.rejects(async () => exportGGUF(await imagePath('opt-relu-mini'), join(tmpDir('gguf'), 'x.gguf')), /Llama family \(llama.cpp has no OPTForCausalLM graph\)/);
  });
});

describe('GGUF: PowerInfer-style predictor tensors (blk.N.fc1 / fc2)', function () {
  this.timeout(120_000);
  let image, pred, gguf, g;
  before(async () => {
    image = await imagePath('llama-relu-mini');
    pred = loadPredictor(join(modelDir('llama-relu-mini'), 'flashneuron.fnpred'), modelFingerprint(readImageHeaderFile(image)));
    gguf = join(tmpDir('gguf'), 'llama-pred.gguf');
    exportGGUF(image, gguf, undefined, { predictor: pred, downTransposed: true });
    g = open(gguf);
  });

  it('writes ffn_down_t (ne [d, ffn]), fc1 (ne [d, r]) and fc2 (ne [r, ffn]) per layer, biases, and powerinfer.sparse_threshold', () => {
    assert.equal(g.metadata.get('powerinfer.sparse_threshold'), 0);
    for (let l = 0; l < pred.nLayers; l++) {
      assert.deepEqual(g.tensors.get(`blk.${l}.ffn_down_t.weight`).dims, [pred.hidden, pred.ffn]);
      assert.equal(g.tensors.has(`blk.${l}.ffn_down.weight`), false);
      assert.deepEqual(g.tensors.get(`blk.${l}.fc1.weight`).dims, [pred.hidden, pred.rank]);
      assert.deepEqual(g.tensors.get(`blk.${l}.fc2.weight`).dims, [pred.rank, pred.ffn]);
      assert.deepEqual(g.tensors.get(`blk.${l}.fc2.bias`).dims, [pred.ffn]);
    }
    const plain = join(tmpDir('gguf'), 'plain.gguf');
    exportGGUF(image, plain);
    assert.equal(readGGUFPredictor(plain, 'x'), undefined);
    assert.equal(open(plain).tensors.has('blk.0.fc1.weight'), false);
  });

  it('sparse mode on the .gguf runs the predictor it carries: the same wanted neurons and greedy ids as the .fnpred', async () => {
    const p = golden('llama-relu-mini').prompts[0];
    const back = await loadModel(gguf, { cacheDir: tmpDir('ggufpred'), mode: 'sparse' });
    const orig = await loadModel(modelDir('llama-relu-mini'), { mode: 'sparse' });
    try {
      assert.equal(back.engine.memory.predictor_rank, pred.rank);
      let same = 0, all = 0;
      for (let t = 0; t < p.ids.length; t++) {
        back.engine.forward(p.ids[t], t); orig.engine.forward(p.ids[t], t);
        for (let l = 0; l < pred.nLayers; l++) {
          const a = new Set(back.engine.predicted(l)), b = orig.engine.predicted(l);
          assert.ok(b.length > 0);
          same += b.filter((i) => a.has(i)).length; all += Math.max(a.size, b.length);
        }
      }
      // The layer's threshold is folded into fc2.bias: only neurons within rounding of it may differ.
      assert.ok(same / all > 0.999, `${same} of ${all} wanted neurons agree`);
      back.engine.reset(); orig.engine.reset();
      const a = await back.complete(p.text, { temperature: 0, maxTokens: 16, stopAtEos: false });
      const b = await orig.complete(p.text, { temperature: 0, maxTokens: 16, stopAtEos: false });
      assert.deepEqual(a.ids, b.ids);
    } finally { back.close(); orig.close(); }
  });

  it('dense on the .gguf with ffn_down_t: golden greedy ids, the logits of the image it came from', async () => {
    const p = golden('llama-relu-mini').prompts[0];
    const back = await loadModel(gguf, { cacheDir: tmpDir('ggufpred') }), orig = await loadModel(image);
    try {
      const a = await back.complete(p.text, { temperature: 0, maxTokens: 24, stopAtEos: false });
      assert.deepEqual(a.ids, p.greedy_ids);
      await orig.complete(p.text, { temperature: 0, maxTokens: 24, stopAtEos: false });
      assert.deepEqual(Array.from(back.engine.logits()), Array.from(orig.engine.logits()));
    } finally { back.close(); orig.close(); }
  });

  it('from the CLI: export-gguf --powerinfer, then generate --mode sparse on the .gguf', async () => {
    const cli = cliRunner('ggufcli');
    const out = join(tmpDir('gguf'), 'cli-pi.gguf');
    let r = await cli('export-gguf', '--model', modelDir('llama-relu-mini'), '--powerinfer', out);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(open(out).tensors.has('blk.5.fc2.weight'));
    const p = golden('llama-relu-mini').prompts[0];
    r = await cli('generate', '--model', out, '--mode', 'sparse', '--json', '--temperature', '0', '--max-tokens', '8', p.text);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.stats.mode, 'sparse');
    assert.deepEqual(j.ids, p.greedy_ids.slice(0, 8));
  });

  it('a predictor missing in a layer, or holding non-finite values, is a clear error', async () => {
    const partial = join(tmpDir('gguf'), 'partial.gguf');
    exportGGUF(image, partial, undefined, { predictor: { ...pred, layers: pred.layers.slice(0, 1) } });
    assert.throws(() => readGGUFPredictor(partial, 'x'), /predictor tensors: blk\.1\.fc1\.weight is missing/);
    await assert.rejects(loadModel(partial, { cacheDir: tmpDir('ggufpred2'), mode: 'sparse' }), /blk\.1\.fc1\.weight is missing/);
    const nan = join(tmpDir('gguf'), 'nan.gguf');
    const w1 = pred.layers[1].w1.slice(); w1[5] = NaN;
    exportGGUF(image, nan, undefined, { predictor: { ...pred, layers: pred.layers.map((L, l) => (l === 1 ? { ...L, w1 } : L)) } });
    assert.throws(() => readGGUFPredictor(nan, 'x'), /layer 1 holds values that are not finite/);
  });
});

describe('GGUF: hostile files', () => {
  /** A small valid GGUF: one f32 vector and one q8_0 matrix. */
  function small() {
    const chunks = [];
    writeGGUF((b, pos) => chunks.push([pos, Buffer.from(b)]), [['general.architecture', { type: 'string', value: 'llama' }]], [
      { name: 'a', dims: [4], dtype: 'f32', data: () => new Uint8Array(16) },
      { name: 'b', dims: [32, 2], dtype: 'q8_0', data: () => new Uint8Array(68) },
    ]);
    const size = Math.max(...chunks.map(([p, b]) => p + b.length)), out = Buffer.alloc(size);
    for (const [p, b] of chunks) b.copy(out, p);
    return out;
  }
  const parse = (buf) => readGGUF((p, l) => new Uint8Array(buf.buffer, buf.byteOffset + p, Math.max(0, Math.min(l, buf.length - p))), buf.length, 'x.gguf');
  const find = (buf, s) => buf.indexOf(Buffer.from(s));

  it('the valid one parses', () => {
    const g = parse(small());
    assert.deepEqual([...g.tensors.keys()], ['a', 'b']);
    assert.equal(g.tensors.get('b').bytes, 68);
  });
  const cases = [
    ['truncated header', (b) => b.subarray(0, 40), /header runs past the end/],
    ['truncated data', (b) => b.subarray(0, b.length - 10), /tensor b lies past the end of the file/],
    ['bad magic', (b) => { b[0] = 0x47; b[1] = 0x47; b[2] = 0x4d; return b; }, /magic/],
    ['unsupported version', (b) => { b.writeUInt32LE(4, 4); return b; }, /version 4/],
    ['absurd tensor count', (b) => { b.writeBigUInt64LE(1n << 40n, 8); return b; }, /tensors/],
    ['unknown ggml type', (b) => { const at = find(b, 'b') ; b.writeUInt32LE(13, at + 1 + 4 + 16); return b; }, /ggml type 13/],
    ['tensor offset past the end', (b) => { const at = find(b, 'b'); b.writeBigUInt64LE(1n << 30n, at + 1 + 4 + 16 + 4); return b; }, /past the end|not aligned/],
    ['overlapping tensors', (b) => { const at = find(b, 'b'); b.writeBigUInt64LE(0n, at + 1 + 4 + 16 + 4); return b; }, /overlap/],
    ['q8_0 rows not a multiple of 32', (b) => { const at = find(b, 'b'); b.writeBigUInt64LE(31n, at + 1 + 4); return b; }, /rows of 31 elements/],
    ['invalid UTF-8 in a key', (b) => { const at = find(b, 'general.architecture'); b[at] = 0xff; return b; }, /not a valid GGUF file/],
  ];
  it('a GGUF of another architecture, without a GPT-2 tokenizer or missing a tensor: named', async () => {
    const file = (meta, tensors = []) => {
      const chunks = [];
      writeGGUF((b, pos) => chunks.push([pos, Buffer.from(b)]), meta, tensors);
      const out = Buffer.alloc(Math.max(...chunks.map(([p, b]) => p + b.length)));
      for (const [p, b] of chunks) b.copy(out, p);
      const path = join(tmpDir('hg'), 'x.gguf');
      writeFileSync(path, out);
      return path;
    };
    assert.throws(() => openGGUFCheckpoint(file([['general.architecture', { type: 'string', value: 'falcon' }]])), /architecture "falcon" is not supported/);
    assert.throws(() => openGGUFCheckpoint(file([['general.architecture', { type: 'string', value: 'llama' }], ['tokenizer.ggml.model', { type: 'string', value: 'llama' }]])), /GPT-2 byte-level BPE/);
    const llamaKeys = [['general.architecture', { type: 'string', value: 'llama' }], ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
      ['tokenizer.ggml.tokens', { type: 'array', of: 'string', value: ['a'] }], ['tokenizer.ggml.merges', { type: 'array', of: 'string', value: [] }]];
    assert.throws(() => openGGUFCheckpoint(file(llamaKeys)), /llama.embedding_length is missing/);
  });

  for (const [what, mutate, re] of cases) {
    it(`${what}: a clear error`, () => {
      assert.throws(() => parse(mutate(small())), (e) => /x\.gguf: not a valid GGUF file/.test(e.message) && re.test(e.message));
    });
  }
});
