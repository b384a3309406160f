// Hostile inputs whose checksums hold: image headers rewritten with their CRC recomputed, tokenizer
// files (tokenizer.json, vocab.json + merges.txt, tokenizer.model) and .fnpred predictor headers.
// Each is either read correctly or refused with one Error of one line naming the file and the
// problem: never a hang, a TypeError, a trap or a plausible wrong answer.
import assert from 'node:assert/strict';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine, FileSource, loadModel, readImageHeader, readImageHeaderFile } from '../dist/src/index.js';
import { Tokenizer } from '../dist/src/core/tokenizer.js';
import { tokenizerFromFiles, parseSentencePieceModel, mergesFromScores } from '../dist/src/format/tokenizer-files.js';
import { loadPredictor, modelFingerprint } from '../dist/src/node/predictor-file.js';
import { crc32 } from '../dist/src/format/crc32.js';
import { golden, imagePath, modelDir, ROOT } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';
import { mutateImage, readImage, sectionOf, tensorOf } from './helpers/image-mutate.js';

after(cleanupTmp);

/** fn throws an Error (no TypeError and the like) whose message is one line, starts with `prefix` and matches re. */
function refuses(fn, re, prefix = '') {
  assert.throws(fn, (e) => {
    const raw = [TypeError, RangeError, SyntaxError, ReferenceError, WebAssembly.RuntimeError].some((T) => e instanceof T);
    assert.ok(e instanceof Error && !raw, `${e.constructor.name}: ${e.message}`);
    assert.ok(!e.message.includes('\n'), `more than one line: ${e.message}`);
    assert.ok(e.message.startsWith(prefix), `does not start with ${prefix}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

describe('hostile image headers (CRC valid)', () => {
  const base = {};
  before(async () => {
    base.opt = await imagePath('opt-relu-mini');
    base.llama = await imagePath('llama-relu-mini');
    base.split = await imagePath('llama-relu-mini', { layout: 'split' });
  });
  const header = (which) => readImage(base[which]).header;
  const cut = (h, name) => { h.sections = h.sections.filter((s) => s.name !== name); };
  const refusesImage = (which, fn, re, opts) => {
    const path = mutateImage(base[which], fn, opts);
    refuses(() => readImageHeaderFile(path), re, 'model.fnimg: invalid image: ');
  };

  it('the helper: a rewritten header with nothing changed loads and gives the golden greedy ids', async () => {
    const path = mutateImage(base.opt, (h) => { h.tensors.reverse(); });
    const m = await loadModel(path);
    try {
      const p = golden('opt-relu-mini').prompts[0];
      assert.deepEqual((await m.complete(p.text, { temperature: 0, maxTokens: 8 })).ids, p.greedy_ids.slice(0, 8));
    } finally { m.close(); }
  });

  it('what stays valid: no ffn.crc (older images) or one of its size, unknown header keys and sections, ffn.bundle_crc', () => {
    for (const which of ['opt', 'llama', 'split']) {
      const h = header(which);
      const older = mutateImage(base[which], (x) => cut(x, 'ffn.crc'));
      assert.equal(sectionOf(readImageHeaderFile(older), 'ffn.crc'), undefined);
      const crcBytes = new Uint8Array(h.config.nLayers * h.config.ffn * 4);
      const path = mutateImage(older, (x) => { x.written_by = 'someone later'; x.ffn.bundle_crc = true; x.config.someNewKey = 1; },
        { append: [{ name: 'ffn.crc', bytes: crcBytes }, { name: 'notes', bytes: Buffer.from('hello') }] });
      const got = readImageHeader(new FileSource(path));
      assert.equal(sectionOf(got, 'ffn.crc').length, crcBytes.length);
    }
    refusesImage('opt', (h) => { h.ffn.bundle_crc = 'yes'; }, /ffn\.bundle_crc is "yes" \(true or false\)/);
    const older = mutateImage(base.opt, (x) => cut(x, 'ffn.crc'));
    refuses(() => readImageHeaderFile(mutateImage(older, () => {}, { append: [{ name: 'ffn.crc', bytes: new Uint8Array(12) }] })),
      /section ffn\.crc holds 12 bytes \(6 layers x 1536 neurons x 4 = 36864\)/, 'model.fnimg: invalid image: ');
  });

  const cases = [
    // the header as a whole
    ['a header that is a list', 'opt', () => [1, 2], /the header is \[1,2\] \(a JSON object\)/],
    ['a header nested 200,000 deep', 'opt', (h) => JSON.stringify(h).replace('"hidden":384', `"hidden":${'['.repeat(2e5)}${']'.repeat(2e5)}`), /the header nests deeper than 32 levels \(a flat JSON object\)/],
    ['another format', 'opt', (h) => { h.format = 'gguf'; }, /format is "gguf" \("flashneuron"\)/],
    ['no config', 'opt', (h) => { delete h.config; }, /config is missing \(an object\)/],
    ['tokenizer_config a string', 'opt', (h) => { h.tokenizer_config = 'x'; }, /tokenizer_config is "x" \(an object\)/],
    ['tokenizer_config.bos_token a number', 'opt', (h) => { h.tokenizer_config.bos_token = 5; }, /invalid image: tokenizer_config\.bos_token is 5 \(a token string, \{"content": string\} or null\)$/],
    ['tokenizer_config.add_bos_token a string', 'llama', (h) => { h.tokenizer_config.add_bos_token = 'yes'; }, /add_bos_token is "yes" \(true, false or null\)/],
    // config numbers
    ['hidden 0', 'opt', (h) => { h.config.hidden = 0; }, /config\.hidden is 0 \(an integer in 1\.\.1048576\)/],
    ['hidden 384.5', 'opt', (h) => { h.config.hidden = 384.5; }, /config\.hidden is 384\.5 \(an integer/],
    ['a huge layer count', 'opt', (h) => { h.config.nLayers = 1e9; }, /config\.nLayers is 1000000000 \(an integer in 1\.\.1024\)/],
    ['a huge context', 'llama', (h) => { h.config.maxPositions = 2 ** 31; }, /config\.maxPositions is 2147483648 \(an integer in 1\.\.16777216\)/],
    ['vocab as a string', 'opt', (h) => { h.config.vocab = '8192'; }, /config\.vocab is "8192"/],
    ['heads not a multiple of kv heads', 'llama', (h) => { h.config.nKvHeads = 4; }, /nHeads 6 is not a multiple of config\.nKvHeads 4/],
    ['normEps NaN (null in JSON)', 'opt', (h) => { h.config.normEps = null; }, /config\.normEps is null \(a number between 0 and 1\)/],
    ['no RoPE base for Llama', 'llama', (h) => { h.config.ropeTheta = 0; }, /config\.ropeTheta is 0 \(a positive RoPE base\)/],
    ['a RoPE base for OPT', 'opt', (h) => { h.config.ropeTheta = 10000; }, /config\.ropeTheta is 10000 \(0: OPT learns its positions\)/],
    ['hasGate a string', 'llama', (h) => { h.config.hasGate = 'yes'; }, /config\.hasGate is "yes" \(true or false\)/],
    ['a gate for OPT', 'opt', (h) => { h.config.hasGate = true; }, /config\.hasGate is true for arch opt/],
    ['an unknown arch', 'opt', (h) => { h.config.arch = 'gpt2'; }, /config\.arch is "gpt2" \(opt, llama, falcon or phi\)/],
    ['an unknown activation', 'opt', (h) => { h.config.act = 'gelu'; }, /config\.act is "gelu"/],
    ['RMSNorm for OPT', 'opt', (h) => { h.config.norm = 'rms'; }, /config\.norm is "rms" for arch opt \(layer\)/],
    ['parallel attention for Llama', 'llama', (h) => { h.config.parallelAttn = 'one-norm'; }, /config\.parallelAttn is "one-norm" for arch llama \(absent\)/],
    ['an odd rotaryDim', 'llama', (h) => { h.config.rotaryDim = 33; }, /config\.rotaryDim is 33/],
    ['ropeScaling of another type', 'llama', (h) => { h.config.ropeScaling = { type: 'yarn', factor: 2 }; }, /config\.ropeScaling is .*yarn/],
    // token ids
    ['eosIds a number', 'opt', (h) => { h.config.eosIds = 2; }, /config\.eosIds is 2 \(a list of token ids below the vocabulary's 8192\)/],
    ['eosIds with a fraction', 'opt', (h) => { h.config.eosIds = [2.5]; }, /config\.eosIds is \[2\.5\]/],
    ['an EOS id past the vocabulary', 'llama', (h) => { h.config.eosIds = [2, 9000]; }, /config\.eosIds is \[2,9000\]/],
    ['a BOS id past the vocabulary', 'opt', (h) => { h.config.bosId = 8192; }, /config\.bosId is 8192 \(a token id below the vocabulary's 8192, or -1\)/],
    ['a pad id of -5', 'opt', (h) => { h.config.padId = -5; }, /config\.padId is -5/],
    // shapes against the config
    ['a narrower FFN in the config', 'opt', (h) => { h.config.ffn = 1000; }, /section ffn\.crc holds 36864 bytes \(6 layers x 1000 neurons x 4 = 24000\)/],
    ['a narrower FFN in the config, no ffn.crc', 'opt', (h) => { h.config.ffn = 1000; cut(h, 'ffn.crc'); }, /section ffn\.0 holds 2383872 bytes \(1000 neurons of 1552 = 1552000\)/],
    ['a wider model in the config', 'opt', (h) => { h.config.hidden = 512; }, /ffn\.bundle_bytes is 1552 \(up \+ down \+ bias of f16 rows of 512 = 2052, padded to 16: 2064\)/],
    ['a smaller vocabulary in the config', 'opt', (h) => { h.config.vocab = 8000; h.config.eosIds = [2]; }, /tensor "tok_embed" has shape \[8192,384\] \(\[8000,384\] as the config implies\)/],
    ['more kv heads in the config', 'llama', (h) => { h.config.nKvHeads = 6; }, /tensor "k" of layer 0 has shape \[128,384\] \(\[384,384\]/],
    ['narrower heads in the config', 'llama', (h) => { h.config.headDim = 32; }, /tensor "q" of layer 0 has shape \[384,384\] \(\[192,384\]/],
    ['a longer context for OPT\'s learned positions', 'opt', (h) => { h.config.maxPositions = 1024; }, /tensor "pos_embed" has shape \[514,384\] \(\[1026,384\]/],
    ['one layer less in the config', 'opt', (h) => { h.config.nLayers = 5; }, /section "ffn\.5" names no layer of the 5 \(ffn\.0 to ffn\.4\)/],
    ['one layer more in the config', 'opt', (h) => { h.config.nLayers = 7; }, /section ffn\.6 is missing/],
    // tensors
    ['tensors not a list', 'opt', (h) => { h.tensors = {}; }, /tensors is \{\} \(a list\)/],
    ['a missing tensor', 'llama', (h) => { h.tensors = h.tensors.filter((t) => !(t.role === 'q' && t.layer === 3)); }, /tensor "q" of layer 3 is missing \(every tensor llama with this config has\)/],
    ['a duplicate tensor', 'opt', (h) => { h.tensors.push({ ...tensorOf(h, 'norm_w') }); }, /tensor "norm_w" is listed twice/],
    ['an unknown role', 'opt', (h) => { tensorOf(h, 'norm_b').role = 'norm_x'; }, /tensor "norm_x" is not one this model has/],
    ['a role that is a number', 'opt', (h) => { tensorOf(h, 'norm_b').role = 5; }, /tensor \{"role":5,.* \(an object with a role and a layer\)/],
    ['a layer that is a string', 'opt', (h) => { h.tensors[5].layer = '0'; }, /\(an object with a role and a layer\)/],
    ['a layer past the last', 'opt', (h) => { h.tensors.find((t) => t.layer === 5 && t.role === 'q').layer = 6; }, /tensor "q" of layer 6 is not one this model has .*layers 0 to 5/],
    ['an lm_head beside tied embeddings', 'opt', (h) => { h.tensors.push({ ...tensorOf(h, 'tok_embed'), role: 'lm_head' }); }, /tensor "lm_head" is not one this model has/],
    ['a negative offset', 'opt', (h) => { tensorOf(h, 'norm_w').offset = -64; }, /tensor "norm_w" has offset -64 \(a multiple of 64 in the resident section\)/],
    ['an unaligned offset', 'opt', (h) => { tensorOf(h, 'norm_w').offset += 4; }, /has offset \d+ \(a multiple of 64/],
    ['an offset as a string', 'opt', (h) => { tensorOf(h, 'norm_w').offset = '0'; }, /has offset "0"/],
    ['a shape of the wrong rank', 'llama', (h) => { tensorOf(h, 'q', 0).shape = [147456]; }, /tensor "q" of layer 0 has shape \[147456\] \(\[384,384\]/],
    ['a shape as a string', 'llama', (h) => { tensorOf(h, 'q', 0).shape = '384x384'; }, /has shape "384x384"/],
    ['a fractional shape', 'llama', (h) => { tensorOf(h, 'q', 0).shape = [384, 384.5]; }, /has shape \[384,384\.5\]/],
    ['an unknown dtype', 'llama', (h) => { tensorOf(h, 'q', 1).dtype = 'f8'; }, /tensor "q" of layer 1 has dtype "f8" \(f32, f16, bf16, q8_0 or q4_0\)/],
    ['a vector stored as f16', 'opt', (h) => { tensorOf(h, 'norm_w').dtype = 'f16'; }, /tensor "norm_w" is f16 \(f32/],
    ['a tensor past the resident section', 'opt', (h) => { tensorOf(h, 'down_b', 5).offset = sectionOf(h, 'resident').length; }, /tensor "down_b" of layer 5 ends at \d+, past the resident section's \d+ bytes/],
    ['overlapping tensors', 'llama', (h) => { tensorOf(h, 'k', 2).offset = tensorOf(h, 'q', 2).offset + 64; }, /tensor "q" of layer 2 and tensor "k" of layer 2 overlap/],
    // sections
    ['sections not a list', 'opt', (h) => { h.sections = null; }, /sections is null \(a list\)/],
    ['a section past the header', 'opt', (h) => { sectionOf(h, 'ffn.5').offset += 1 << 30; }, /section "ffn\.5" ends at \d+, past the header at \d+/],
    ['an unaligned section', 'opt', (h) => { sectionOf(h, 'ffn.3').offset += 16; }, /section "ffn\.3" starts at \d+ \(a multiple of 4096 after the prefix\)/],
    ['a section inside the prefix', 'opt', (h) => { sectionOf(h, 'tokenizer').offset = 0; }, /section "tokenizer" starts at 0/],
    ['overlapping sections', 'opt', (h) => { sectionOf(h, 'ffn.2').offset = sectionOf(h, 'ffn.1').offset; }, /sections ffn\.1 and ffn\.2 overlap|sections ffn\.2 and ffn\.1 overlap/],
    ['no tokenizer section', 'opt', (h) => cut(h, 'tokenizer'), /section tokenizer is missing/],
    ['no resident section', 'opt', (h) => cut(h, 'resident'), /section resident is missing/],
    ['a missing FFN layer', 'llama', (h) => cut(h, 'ffn.3'), /section ffn\.3 is missing/],
    ['a section listed twice', 'opt', (h) => { h.sections.push({ ...sectionOf(h, 'ffn.0') }); }, /section "ffn\.0" is listed twice/],
    ['a negative section length', 'opt', (h) => { sectionOf(h, 'ffn.0').length = -1; }, /section "ffn\.0" has offset \d+, length -1/],
    ['a CRC past 32 bits', 'opt', (h) => { sectionOf(h, 'ffn.0').crc32 = 2 ** 40; }, /crc32 1099511627776 \(a CRC-32\)/],
    ['a section name that is a number', 'opt', (h) => { sectionOf(h, 'ffn.0').name = 7; }, /section \{"name":7.*\(an object with a name\)/],
    ['an empty resident section', 'opt', (h) => { sectionOf(h, 'resident').length = 0; }, /section resident is empty/],
    // FFN layout
    ['no ffn object', 'opt', (h) => { h.ffn = 'bundled'; }, /ffn is "bundled" \(an object\)/],
    ['an unknown FFN dtype', 'opt', (h) => { h.ffn.dtype = 'int3'; }, /ffn\.dtype is "int3"/],
    ['another FFN dtype than stored', 'opt', (h) => { h.ffn.dtype = 'q8_0'; }, /ffn\.bundle_bytes is 1552 \(up \+ down \+ bias of q8_0 rows of 384 = 820, padded to 16: 832\)/],
    ['a bundle too small', 'opt', (h) => { h.ffn.bundle_bytes = 1536; }, /ffn\.bundle_bytes is 1536/],
    ['a bundle as a string', 'llama', (h) => { h.ffn.bundle_bytes = '2304'; }, /ffn\.bundle_bytes is "2304"/],
    ['a part past the bundle', 'opt', (h) => { h.ffn.up = 1000; }, /ffn\.up at 1000 \(768 bytes\) ends past the 1552-byte bundle/],
    ['overlapping parts', 'llama', (h) => { h.ffn.down = h.ffn.gate; }, /ffn\.gate and ffn\.down overlap in the bundle|ffn\.down and ffn\.gate overlap/],
    ['no bias though the config has MLP biases', 'opt', (h) => { h.ffn.bias = -1; }, /ffn\.bias is -1 \(a byte offset in the bundle: config\.mlpBias is true\)/],
    ['a gate offset for a model without one', 'opt', (h) => { h.ffn.gate = 0; }, /ffn\.gate is 0 \(-1: config\.hasGate is false\)/],
    ['an offset as a string', 'llama', (h) => { h.ffn.gate = '768'; }, /ffn\.gate is "768"/],
    ['an unknown layout', 'opt', (h) => { h.ffn.layout = 'zigzag'; }, /ffn\.layout is "zigzag" \(bundled or split\)/],
    ['parts given to the bundled layout', 'opt', (h) => { h.ffn.parts = []; }, /ffn\.parts is given for the bundled layout/],
    ['split: a part missing', 'split', (h) => { h.ffn.parts.pop(); }, /ffn\.parts is .* \(the 3 parts of the split layout\)/],
    ['split: a part of the wrong length', 'split', (h) => { h.ffn.parts[1].len = 700; }, /ffn\.parts\[1\] \(row 768, 700 bytes\) is no part of the bundle/],
    ['split: a part twice', 'split', (h) => { h.ffn.parts[1] = { ...h.ffn.parts[0], base: h.ffn.parts[1].base }; }, /ffn\.parts\[1\] \(row 0, 768 bytes\) is no part of the bundle or a repeated one/],
    ['split: parts not back to back', 'split', (h) => { h.ffn.parts[2].base += 64; }, /ffn\.parts\[2\]\.base is 1572928 \(1572864: the parts back to back\)/],
    ['split: a part as a string', 'split', (h) => { h.ffn.parts[0] = 'up'; }, /ffn\.parts\[0\] is "up"/],
    ['split: too few bundled CRCs', 'split', (h) => { h.ffn.bundled_crc32.pop(); }, /ffn\.bundled_crc32 is .* \(a CRC-32 for each of the 6 layers\)/],
  ];
  for (const [what, which, fn, re] of cases) it(`${what} (${which})`, () => refusesImage(which, fn, re));

  it('Engine.open and loadModel refuse the same way (no wasm ever sees the header)', async () => {
    const path = mutateImage(base.llama, (h) => { tensorOf(h, 'k', 0).shape = [384, 384]; });
    refuses(() => Engine.open(path), /tensor "k" of layer 0 has shape \[384,384\] \(\[128,384\]/, 'model.fnimg: invalid image: ');
    await assert.rejects(loadModel(path), /model\.fnimg: invalid image: tensor "k" of layer 0 has shape/);
  });

  it('a header longer than any header (64 MiB) is refused before it is read', () => {
    const path = join(tmpDir('himg'), 'model.fnimg');
    const prefix = Buffer.alloc(32);
    prefix.write('FLASHNRN');
    prefix.writeUInt32LE(1, 8);
    prefix.writeUInt32LE(100 << 20, 12);
    prefix.writeBigUInt64LE(4096n, 16);
    writeFileSync(path, prefix);
    truncateSync(path, (100 << 20) + 8192); // sparse: no 100 MiB written
    refuses(() => readImageHeaderFile(path), /invalid image: header of 104857600 bytes \(at most 67108864\)/, 'model.fnimg: ');
  });

  it('an image whose tokenizer section has an id of 2^31 is refused at load, not looped over', async () => {
    const tok = JSON.parse(readFileSync(join(modelDir('opt-relu-mini'), 'tokenizer.json'), 'utf8'));
    tok.model.vocab['zzz'] = 2 ** 31;
    const path = mutateImage(base.opt, () => {}, { replace: { tokenizer: Buffer.from(JSON.stringify(tok)) } });
    await assert.rejects(loadModel(path), /Malformed tokenizer\.json: vocab id of "zzz" is 2147483648 \(an integer below \d+/);
  });
});

describe('hostile tokenizer.json', () => {
  const base = () => JSON.parse(readFileSync(join(modelDir('llama-relu-mini'), 'tokenizer.json'), 'utf8'));
  const spm = () => JSON.parse(readFileSync(join(ROOT, 'test/fixtures/replicas/relullama-tiny/tokenizer.json'), 'utf8'));
  const bad = (make, mutate, re, opts) => {
    const j = make();
    mutate(j);
    refuses(() => Tokenizer.fromJSON(j, undefined, opts), re, 'Malformed tokenizer');
    refuses(() => Tokenizer.fromJSON(JSON.stringify(j), undefined, opts), re, 'Malformed tokenizer');
  };
  it('ids of 1e9, 2^31, -1, 1.5 or "3" in the vocabulary or added_tokens', () => {
    bad(base, (j) => { j.model.vocab.zzz = 1e9; }, /vocab id of "zzz" is 1000000000 \(an integer below 8197, the count of tokens in the file\)/);
    bad(base, (j) => { j.model.vocab.zzz = 2 ** 31; }, /vocab id of "zzz" is 2147483648/);
    bad(base, (j) => { j.model.vocab.zzz = -1; }, /vocab id of "zzz" is -1|vocab id of "zzz" is not an index/);
    bad(base, (j) => { j.model.vocab.zzz = 1.5; }, /vocab id of "zzz"/);
    bad(base, (j) => { j.model.vocab.zzz = '3'; }, /vocab id of "zzz"/);
    bad(base, (j) => { j.added_tokens[0].id = 2 ** 31; }, /added token "<s>" has id 2147483648 \(an integer below/);
  });
  it('ids past the model\'s vocabulary when it is given', () => {
    const ok = Tokenizer.fromJSON(base(), undefined, { vocab: 8192 });
    for (const p of golden('llama-relu-mini').prompts) assert.deepEqual(ok.encode(p.text), p.ids, p.text);
    bad(base, () => {}, /vocab id of ".*" is \d+ \(an integer below 8000, the model's vocabulary\)/, { vocab: 8000 });
    bad(base, (j) => { j.post_processor = { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<x>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], special_tokens: { '<x>': { id: '<x>', ids: [99999], tokens: ['<x>'] } } }; },
      /post_processor adds token id 99999 \(an id below 8196\)/);
  });
  it('one id per token', () => {
    bad(base, (j) => { j.model.vocab.zzz = 5; }, /vocab ids of ".*" and "zzz" are both 5 \(one id per token\)/);
    bad(base, (j) => { j.added_tokens[1].id = j.added_tokens[0].id; }, /added tokens "<s>" and "<pad>" both have id 0/);
  });
  it('merges: every one "a b" or every one [a, b], of vocabulary tokens', () => {
    bad(base, (j) => { j.model.merges[5] = 42; }, /merge 5 is 42 \(a pair \[a, b\] of tokens, as merge 0\)/);
    bad(base, (j) => { j.model.merges[5] = ['a']; }, /merge 5 is \["a"\]/);
    bad(base, (j) => { j.model.merges[5] = 'a b'; }, /merge 5 is "a b" \(a pair/);
    bad(spm, (j) => { j.model.merges[7] = ['▁', 't']; }, /merge 7 is \["▁","t"\] \(a string "a b": two tokens and one space, as merge 0\)/);
    bad(spm, (j) => { j.model.merges[7] = 'a b c'; }, /merge 7 is "a b c"/);
    bad(spm, (j) => { j.model.merges[7] = 42; }, /merge 7 is 42/);
    bad(base, (j) => { j.model.merges[5] = ['zzzq', 'yyyq']; }, /merge 5 \["zzzq","yyyq"\] needs "zzzq", which is not in the vocabulary/);
    bad(base, (j) => { j.model.merges[5] = ['a', 'b']; delete j.model.vocab.ab; }, /needs "ab", which is not in the vocabulary/);
  });
  it('unk_token and the model flags of the wrong type', () => {
    bad(spm, (j) => { j.model.unk_token = 5; }, /model\.unk_token is 5 \(null or a token of the file\)/);
    bad(spm, (j) => { j.model.unk_token = 'nope'; }, /model\.unk_token is "nope"/);
    bad(spm, (j) => { j.model.byte_fallback = 'yes'; }, /model\.byte_fallback is "yes" \(true, false or null\)/);
    bad(base, (j) => { j.added_tokens[0].special = 'yes'; }, /added token "<s>" has special "yes" \(true or false\)/);
    const t = spm();
    t.model.unk_token = null;
    assert.ok(Tokenizer.fromJSON(t).encode('hello').length > 0);
  });
  it('a pipeline nested 200,000 deep', () => {
    const text = JSON.stringify({ ...base(), normalizer: '@' }).replace('"@"', `${'{"type":"Sequence","normalizers":['.repeat(2e5)}${']}'.repeat(2e5)}`);
    refuses(() => Tokenizer.fromJSON(text), /Malformed tokenizer\.json: the pipeline nests deeper than 32 levels/, 'Malformed');
  });
  it('tokenizer_config fields of the wrong type; a regex the library refuses', () => {
    refuses(() => Tokenizer.fromJSON(base(), { bos_token: 5 }), /Malformed tokenizer_config\.json: bos_token is 5 \(a token string, \{"content": string\} or null\)/, 'Malformed');
    refuses(() => Tokenizer.fromJSON(base(), { legacy: 'no' }), /legacy is "no"/, 'Malformed');
    bad(base, (j) => { j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '((' }, behavior: 'Isolated', invert: false }, j.pre_tokenizer] }; },
      /Malformed tokenizer\.json: Invalid regular expression.* \(as the tokenizers library reads it\)/);
  });
});

describe('hostile tokenizer files', () => {
  const opt = join(ROOT, 'test/fixtures/replicas/opt-relu-bin-tiny');
  const files = () => ({ vocabJson: readFileSync(join(opt, 'vocab.json'), 'utf8'), mergesTxt: readFileSync(join(opt, 'merges.txt'), 'utf8'), tokenizerConfig: readFileSync(join(opt, 'tokenizer_config.json'), 'utf8') });
  const label = (f) => `dir/${f}`;
  it('vocab.json with an id of 1e9; merges.txt with tokens outside vocab.json', () => {
    const f = files();
    const v = JSON.parse(f.vocabJson);
    refuses(() => tokenizerFromFiles({ ...f, vocabJson: JSON.stringify({ ...v, zzz: 1e9 }) }, label), /^dir\/vocab\.json: id of "zzz" is 1000000000 \(below \d+, the count of tokens\)$/, 'dir/vocab.json: ');
    refuses(() => tokenizerFromFiles({ ...f, vocabJson: JSON.stringify({ ...v, zzz: 1e9 }) }, label, 'dir', 50272), /below 50272, the model's vocabulary/, 'dir/');
    refuses(() => tokenizerFromFiles({ ...f, mergesTxt: '#version: 0.2\nĠ t\nzzzq yyyq\n' }, label), /line 3 needs "zzzq", which is not in vocab\.json/, 'dir/merges.txt: ');
  });
  it('tokenizer_config.json: a huge added token id, a bos_token of the wrong type', () => {
    const f = files();
    refuses(() => tokenizerFromFiles({ ...f, tokenizerConfig: JSON.stringify({ added_tokens_decoder: { 999999999: { content: '<x>' } } }) }, label), /added token "<x>" has id 999999999/, 'dir/tokenizer_config.json: ');
    refuses(() => tokenizerFromFiles({ ...f, tokenizerConfig: JSON.stringify({ bos_token: 5 }) }, label), /dir\/tokenizer_config\.json: bos_token is 5/, 'dir/tokenizer_config.json: ');
  });
  it('a tokenizer.json is checked when the folder is read, with the model\'s vocabulary', () => {
    const j = JSON.parse(readFileSync(join(modelDir('opt-relu-mini'), 'tokenizer.json'), 'utf8'));
    refuses(() => tokenizerFromFiles({ tokenizerJson: JSON.stringify({ ...j, model: { ...j.model, merges: [42] } }) }, label), /merge 0 is 42/, 'dir/tokenizer.json: ');
    refuses(() => tokenizerFromFiles({ tokenizerJson: JSON.stringify(j) }, label, 'dir', 4000), /an integer below 4000, the model's vocabulary/, 'dir/tokenizer.json: ');
    assert.equal(tokenizerFromFiles({ tokenizerJson: JSON.stringify(j) }, label, 'dir', 8192).source, 'tokenizer.json');
  });

  // tokenizer.model: a protobuf (sentencepiece_model.proto)
  const spmBytes = () => new Uint8Array(readFileSync(join(ROOT, 'test/fixtures/replicas/spm-only-relu-tiny/tokenizer.model')));
  const varint = (n) => { const o = []; do { o.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0)); n = Math.floor(n / 128); } while (n > 0); return o; };
  it('tokenizer.model with hostile lengths and varints', () => {
    refuses(() => tokenizerFromFiles({ tokenizerModel: Uint8Array.from([0x0a, ...varint(2 ** 40), 1, 2]) }, label), /length past the end/, 'dir/tokenizer.model: ');
    refuses(() => tokenizerFromFiles({ tokenizerModel: Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]) }, label), /varint longer than 10 bytes/, 'dir/tokenizer.model: ');
    refuses(() => tokenizerFromFiles({ tokenizerModel: Uint8Array.from([0x08, 0x80]) }, label), /truncated varint/, 'dir/tokenizer.model: ');
    refuses(() => tokenizerFromFiles({ tokenizerModel: Uint8Array.from([0x0b]) }, label), /wire type 3/, 'dir/tokenizer.model: ');
    // A NaN score would sort the merges in no defined order.
    const nan = Uint8Array.from([0x0a, 8, 0x0a, 1, 0x61, 0x15, 0, 0, 0xc0, 0x7f]);
    refuses(() => parseSentencePieceModel(nan), /score is not a number/);
    // Cut short and bytes flipped at seeded places: parsed or refused in one line, never a TypeError.
    const good = spmBytes();
    let seed = 7;
    const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
    for (let i = 0; i < 150; i++) {
      const cut = good.subarray(0, rnd(good.length));
      const flip = good.slice();
      for (let k = 0; k < 3; k++) flip[rnd(flip.length)] ^= 1 << rnd(8);
      for (const b of [cut, flip]) {
        try { tokenizerFromFiles({ tokenizerModel: b }, label); } catch (e) {
          assert.equal(e.constructor.name, 'CheckpointError', e.message);
          assert.ok(!e.message.includes('\n'), e.message);
          assert.match(e.message, /^dir\/tokenizer\.model: (not a SentencePiece model \(|Unsupported tokenizer\.model feature: )/);
        }
      }
    }
  });
  it('a piece of 200,000 characters gets its merges (splits found through hashes, not tried one by one)', () => {
    const long = 'ab'.repeat(100000);
    const pieces = [{ piece: 'a', score: 0 }, { piece: 'b', score: 0 }, { piece: 'ab', score: -1 }, { piece: long, score: -2 }, { piece: long.slice(2), score: -3 }];
    // by score, then the longer left half: the long piece's two splits are ab|(ab)^99999 and (ab)^99999|ab
    assert.deepEqual(mergesFromScores(pieces), [['a', 'b'], [long.slice(2), 'ab'], ['ab', long.slice(2)]]);
  });
});

describe('hostile .fnpred headers (CRC valid)', () => {
  let good, fingerprint;
  before(async () => {
    good = readFileSync(join(modelDir('llama-relu-mini'), 'flashneuron.fnpred'));
    fingerprint = modelFingerprint(readImageHeaderFile(await imagePath('llama-relu-mini')));
  });
  /** The file with its JSON header rewritten by fn (mutated, or returned: a value or raw text), CRC recomputed, data moved to the new aligned start. */
  const withHeader = (fn) => {
    const hlen = good.readUInt32LE(8), start = Math.ceil((16 + hlen) / 64) * 64;
    const h = JSON.parse(good.subarray(16, 16 + hlen).toString('utf8'));
    const out = fn(h);
    const json = Buffer.from(typeof out === 'string' ? out : JSON.stringify(out === undefined ? h : out)), nstart = Math.ceil((16 + json.length) / 64) * 64;
    const b = Buffer.alloc(nstart + good.length - start);
    good.copy(b, 0, 0, 8); b.writeUInt32LE(json.length, 8); b.writeUInt32LE(crc32(json), 12); json.copy(b, 16); good.copy(b, nstart, start);
    const path = join(tmpDir('hpred'), 'model.fnpred');
    writeFileSync(path, b);
    return path;
  };
  const bad = (fn, re, fp) => { const path = withHeader(fn); refuses(() => loadPredictor(path, fp), re, `${path}: `); };
  it('loads unchanged for its model', () => {
    assert.equal(loadPredictor(withHeader(() => {}), fingerprint).rank, 192);
  });
  const cases = [
    ['a header that is a number', () => 5, /invalid predictor: the header is 5 \(a JSON object\)/],
    ['config not an object', (h) => { h.config = 'x'; }, /config\.nLayers = undefined \(an integer in 1\.\.1024\)/],
    ['a huge rank', (h) => { h.config.rank = 1e6; }, /config\.rank = 1000000 \(an integer in 1\.\.4096\)/],
    ['a config unlike the model it claims', (h) => { h.config.hidden = 256; }, /config 6x256x1024 \(layers x hidden x ffn\) is not the shape of the model it claims \(6x384x1024\)/],
    ['a fingerprint of another form', (h) => { h.fingerprint = 42; }, /fingerprint 42 \(arch-LAYERSxHIDDENxFFN-hex/, 'none'],
    ['a fingerprint of another form, loaded for its model', (h) => { h.fingerprint = 42; }, /belongs to another model \(its fingerprint is 42,/],
    ['a layer that is null', (h) => { h.layers[2] = null; }, /invalid predictor: layer 2 is null \(an object\)/],
    ['a range that is a string', (h) => { h.layers[1].w2 = 'x'; }, /layer 1 w2 has a bad range/],
    ['overlapping tensors', (h) => { h.layers[1].b1 = { ...h.layers[0].b1 }; }, /layer 0 b1 and layer 1 b1 overlap in the data/],
    ['a recall above 1', (h) => { h.layers[0].recall = 1.5; }, /layer 0 recall is 1\.5 \(a fraction in 0\.\.1\)/],
    ['a negative ratio', (h) => { h.ranks[0].layers[3].ratio = -1; }, /rung 16 layer 3 ratio is -1 \(a number >= 0\)/],
    ['a predicted share of NaN (null)', (h) => { h.ranks[1].layers[0].predicted_share = null; }, /rung 32 layer 0 predicted_share is null/],
    ['a rung layer that is null', (h) => { h.ranks[1].layers[4] = null; }, /rung 32 layer 4 is null \(an object\)/],
    ['a report whose shares are strings', (h) => { h.report.layers[0].predicted_share = 'lots'; }, /invalid predictor: report .* \(an object whose layers/],
    ['a data CRC that is a string', (h) => { h.data_crc32 = 'x'; }, /data_crc32 "x" \(a CRC-32\)/],
    ['a report nested 100,000 deep', (h) => JSON.stringify(h).replace('"report":{', `"report":{"x":${'['.repeat(1e5)}${']'.repeat(1e5)},`), /the header nests deeper than 32 levels/],
  ];
  for (const [what, fn, re, fp] of cases) it(what, () => bad(fn, re, fp === 'none' ? undefined : fingerprint));
});
