// Tokenizers of real checkpoints (test/fixtures/replicas: Llama-2 and Mistral byte-fallback BPE,
// Llama-3's Split + ByteLevel with ignore_merges and a Sequence post-processor, Falcon / Phi-2
// byte-level BPE, OPT's vocab.json + merges.txt, a SentencePiece tokenizer.model alone): built
// from the folder's files as the product does, every golden text's ids with and without special
// tokens, the streaming decoder fed id by id against decoded / decoded_skip_special, each
// prompt's ids and greedy text; then the features one by one, GGUF's "llama" tokenizer, and the
// refusals.
//
// Which reading each replica matches: transformers 5's `ids` everywhere (qwen2-silu-tiny's come from
// scripts/reference/qwen2.py), for all nine (none needs its `alt_ids`). Where the two differ
// (Llama-2, Mistral, the SentencePiece folder: text starting with a space, or a space after a
// special token; OPT: a literal `<s>`), `alt_ids` are
// what the tokenizer files give read as written (the tokenizers library on tokenizer.json,
// sentencepiece on tokenizer.model); Tokenizer follows transformers' LlamaTokenizer and
// GPT2Tokenizer instead (src/core/tokenizer.ts: asTransformersLlama; src/format/tokenizer-files.ts).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../dist/src/core/tokenizer.js';
import {
  TOKENIZER_FILE_NAMES, tokenizerFromFiles, readCheckpointTokenizer, parseSentencePieceModel, sentencePieceTokenizerJson,
  ggufSentencePieceTokenizer, mergesFromScores,
} from '../dist/src/format/tokenizer-files.js';
import { nodeCheckpointFS } from '../dist/src/node/checkpoint-fs.js';
import { openGGUFCheckpoint } from '../dist/src/node/gguf-file.js';
import { writeGGUF } from '../dist/src/format/gguf.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';

after(cleanupTmp);

const DIR = fileURLToPath(new URL('fixtures/replicas/', import.meta.url));
const REPLICAS = readdirSync(DIR).filter((n) => existsSync(join(DIR, n, 'golden.json'))).sort();
const readJSON = (p) => JSON.parse(readFileSync(p, 'utf8'));

/** What each folder's tokenizer is built from, and which golden reading it matches. */
const EXPECTED = {
  'falcon-relu-tiny': { source: 'tokenizer.json', reading: 'ids' },
  'llama3-relu-tiny': { source: 'tokenizer.json', reading: 'ids' },
  'opt-relu-bin-tiny': { source: 'vocab.json+merges.txt', reading: 'ids' },
  'phi2-relu-tiny': { source: 'tokenizer.json', reading: 'ids' },
  'prosparse-tiny': { source: 'tokenizer.json', reading: 'ids' },
  'relullama-tiny': { source: 'tokenizer.json', reading: 'ids' },
  'spm-only-relu-tiny': { source: 'tokenizer.model', reading: 'ids' },
  'turbosparse-mistral-tiny': { source: 'tokenizer.json', reading: 'ids' },
  'qwen2-silu-tiny': { source: 'tokenizer.json', reading: 'ids' },
};

/** The folder's tokenizer files read into tokenizerFromFiles (text as text, tokenizer.model as bytes);
 *  built once per folder (both suites below read the same ones, and no test changes them). */
const tokenizers = new Map();
function folderTokenizer(dir) {
  if (!tokenizers.has(dir)) tokenizers.set(dir, buildTokenizer(dir));
  return tokenizers.get(dir);
}
function buildTokenizer(dir) {
  const files = {};
  for (const [key, name] of Object.entries(TOKENIZER_FILE_NAMES)) {
    const p = join(dir, name);
    if (!existsSync(p)) continue;
    files[key] = key === 'tokenizerModel' ? new Uint8Array(readFileSync(p)) : readFileSync(p, 'utf8');
  }
  const built = tokenizerFromFiles(files, (f) => join(dir, f));
  return { built, tok: Tokenizer.fromJSON(built.tokenizerJson, built.tokenizerConfig) };
}

/** ids pushed one by one into a streaming decoder: the chunks and what flush() leaves. */
function stream(tok, ids, skipSpecialTokens) {
  const d = tok.decoder({ skipSpecialTokens });
  const chunks = ids.map((id) => d.push(id));
  return { chunks, text: chunks.join('') + d.flush() };
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** 'ids' when `got` is transformers' ids, 'alt_ids' when it is only the recorded alternative, else undefined. */
function reading(got, ids, alt) {
  if (same(got, ids)) return 'ids';
  if (alt !== undefined && same(got, alt)) return 'alt_ids';
  return undefined;
}

describe('tokenizer replicas: built from the folder files, as transformers tokenizes', function () {
  this.timeout(120000);

  it('has the nine replicas', () => {
    assert.deepEqual(REPLICAS, Object.keys(EXPECTED).sort());
  });

  for (const name of REPLICAS) {
    describe(name, () => {
      const dir = join(DIR, name);
      const golden = readJSON(join(dir, 'golden.json'));
      let tok, built;
      before(() => ({ tok, built } = folderTokenizer(dir)));

      it(`is built from ${EXPECTED[name].source}, the same through the checkpoint folder reader`, () => {
        assert.equal(built.source, EXPECTED[name].source);
        const viaFs = readCheckpointTokenizer(nodeCheckpointFS(dir));
        assert.equal(viaFs.tokenizerJson, built.tokenizerJson);
        assert.deepEqual(viaFs.tokenizerConfig, built.tokenizerConfig);
        assert.equal(viaFs.source, built.source);
      });

      it('has the BOS / EOS of the model', () => {
        const cfg = readJSON(join(dir, 'config.json'));
        const withBos = golden.tokenizer.find((e) => e.text === '').ids;
        if (withBos.length > 0) assert.equal(tok.bosId, withBos[0]);
        if (withBos.length > 0) assert.equal(tok.bosId, cfg.bos_token_id);
        const eosName = built.tokenizerConfig?.eos_token;
        const eosText = typeof eosName === 'string' ? eosName : eosName?.content;
        assert.equal(tok.decode([tok.eosId]), eosText ?? tok.decode([cfg.eos_token_id]));
        assert.ok(tok.vocabSize <= cfg.vocab_size, `${tok.vocabSize} ids fit the model's ${cfg.vocab_size}`);
      });

      it(`encodes every golden text as ${EXPECTED[name].reading}, with and without special tokens (the same reading throughout)`, () => {
        const seen = new Set();
        for (const e of golden.tokenizer) {
          const w = reading(tok.encode(e.text), e.ids, e.alt_ids);
          const wo = reading(tok.encode(e.text, { addSpecialTokens: false }), e.ids_no_special, e.alt_ids_no_special);
          assert.ok(w && wo, `${JSON.stringify(e.text)}: ${JSON.stringify(tok.encode(e.text))} is neither ids ${JSON.stringify(e.ids)} nor alt_ids`);
          // A case whose alt_ids equal its ids says nothing about the reading.
          if (e.alt_ids === undefined || !same(e.alt_ids, e.ids)) seen.add(w);
          if (e.alt_ids_no_special === undefined || !same(e.alt_ids_no_special, e.ids_no_special)) seen.add(wo);
        }
        assert.deepEqual([...seen], [EXPECTED[name].reading]);
      });

      it('encodes every golden prompt to its ids', () => {
        for (const p of golden.prompts) assert.deepEqual(tok.encode(p.text), p.ids, p.text);
      });

      it('streams decoded / decoded_skip_special id by id; decode() agrees; no chunk splits a character', () => {
        let spanning = 0;
        for (const e of golden.tokenizer) {
          for (const [skip, want] of [[false, e.decoded], [true, e.decoded_skip_special]]) {
            const { chunks, text } = stream(tok, e.ids, skip);
            assert.equal(text, want, `${JSON.stringify(e.text)} (skipSpecialTokens ${skip})`);
            assert.equal(tok.decode(e.ids, { skipSpecialTokens: skip }), want);
            if (!want.includes('\uFFFD')) for (const c of chunks) assert.ok(!c.includes('\uFFFD'), `chunk ${JSON.stringify(c)} of ${JSON.stringify(e.text)}`);
            spanning += chunks.filter((c) => c === '').length;
          }
        }
        assert.ok(spanning > 0, 'some tokens complete no character');
      });

      it('decodes each prompt\'s greedy ids to greedy_text (special tokens kept, as the golden was made)', () => {
        for (const p of golden.prompts) {
          assert.equal(stream(tok, p.greedy_ids, false).text, p.greedy_text, p.text);
          assert.equal(tok.decode(p.greedy_ids), p.greedy_text);
        }
      });
    });
  }
});

describe('tokenizer replicas: the features one by one', function () {
  this.timeout(120000);
  const load = (name) => folderTokenizer(join(DIR, name));
  let llama2, mistral, llama3, opt, spm;
  before(() => {
    llama2 = load('relullama-tiny');
    mistral = load('turbosparse-mistral-tiny');
    llama3 = load('llama3-relu-tiny');
    opt = load('opt-relu-bin-tiny');
    spm = load('spm-only-relu-tiny');
  });

  it('byte fallback: characters outside the vocabulary become <0xNN> tokens and come back whole', () => {
    const { tok } = llama2;
    const ids = tok.encode('😀', { addSpecialTokens: false });
    const json = JSON.parse(llama2.built.tokenizerJson);
    const byId = Object.fromEntries(Object.entries(json.model.vocab).map(([t, i]) => [i, t]));
    assert.deepEqual(ids.map((i) => byId[i]), ['▁', '<0xF0>', '<0x9F>', '<0x98>', '<0x80>']);
    assert.deepEqual([...tok.tokenBytes(ids[1])], [0xf0]);
    // A run of byte tokens is one piece of text, given when the run ends (as Rust's ByteFallback).
    const { chunks, text } = stream(tok, [...ids, ...tok.encode(' ok', { addSpecialTokens: false })], true);
    assert.equal(text, '😀 ok');
    assert.deepEqual(chunks.slice(1, 5), ['', '', '', '']);
    assert.equal(chunks[5].includes('😀'), true);
    // A run that is not UTF-8 gives one U+FFFD per byte (Rust), not per invalid sequence.
    const b = (x) => json.model.vocab[`<0x${x}>`];
    assert.equal(tok.decode([b('32'), b('D2')]), '\uFFFD\uFFFD');
    assert.equal(tok.decode([b('E2'), b('82'), b('AC')]), '€');
    const d = tok.decoder();
    assert.equal(d.push(b('E2')), '');
    assert.equal(d.flush(), '\uFFFD');
    assert.equal(d.push(b('41')) + d.flush(), 'A');
  });

  it('Llama decoders: ▁ is a space, and one leading space of the whole text is stripped', () => {
    const { tok } = llama2;
    const ids = tok.encode(' Hello world', { addSpecialTokens: false });
    assert.deepEqual(stream(tok, ids, false).chunks, ['Hello', ' world']);
    assert.equal(tok.decode(tok.encode('   x', { addSpecialTokens: false })), '  x');
    assert.equal(tok.decode([tok.bosId, ...ids]), '<s> Hello world');
  });

  it('a Metaspace decoder drops every ▁ of the first token, as Rust does (not just one space)', () => {
    const json = JSON.parse(llama2.built.tokenizerJson);
    const meta = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false };
    const t = Tokenizer.fromJSON({ ...json, normalizer: null, pre_tokenizer: meta, decoder: meta });
    const v = json.model.vocab;
    assert.deepEqual(stream(t, [v['▁▁'], v['▁Hello']], false).chunks, ['', ' Hello']);
    assert.equal(t.decode([v['▁Hello'], v['▁world']]), 'Hello world');
    assert.equal(t.decode([t.bosId, v['▁Hello']]), '<s> Hello');
    assert.equal(t.decode([t.bosId, v['▁Hello']], { skipSpecialTokens: true }), 'Hello');
    assert.deepEqual(t.encode('Hello <s>.'), [1, 15043, 29871, 1, 29889]);
    const never = Tokenizer.fromJSON({ ...json, normalizer: null, pre_tokenizer: { ...meta, prepend_scheme: 'never' }, decoder: { ...meta, prepend_scheme: 'never' } });
    assert.equal(never.decode([v['▁▁'], v['▁Hello']]), '   Hello');
  });

  it('legacy from tokenizer_config.json: false prepends ▁ to the first section only (transformers\' documented example)', () => {
    const json = llama2.built.tokenizerJson, cfg = llama2.built.tokenizerConfig;
    assert.equal(cfg.legacy, false);
    // transformers' LlamaTokenizer docstring: "Hello <s>." -> legacy=False [1, 15043, 29871, 1, 29889], legacy=True [..., 869].
    assert.deepEqual(Tokenizer.fromJSON(json, cfg).encode('Hello <s>.'), [1, 15043, 29871, 1, 29889]);
    assert.deepEqual(Tokenizer.fromJSON(json, { ...cfg, legacy: true }).encode('Hello <s>.'), [1, 15043, 29871, 1, 869]);
    // add_prefix_space: false prepends nothing and strips nothing.
    const bare = Tokenizer.fromJSON(json, { ...cfg, add_prefix_space: false });
    const noSpecial = { addSpecialTokens: false };
    assert.deepEqual(Tokenizer.fromJSON(json, cfg).encode('Hello', noSpecial), [15043]); // "▁Hello"
    assert.notDeepEqual(bare.encode('Hello', noSpecial), [15043]);
    assert.equal(bare.decode(bare.encode('Hello', noSpecial)), 'Hello');
    assert.equal(bare.decode(bare.encode(' a', noSpecial)), ' a');
    // Without tokenizer_class the file is read as written: sentencepiece's dummy prefix always (alt_ids).
    const { tokenizer_class, ...asWritten } = cfg;
    assert.deepEqual(Tokenizer.fromJSON(json, asWritten).encode(' Hello world'), [1, 29871, 15043, 3186]);
  });

  it('add_bos_token / add_eos_token from tokenizer_config.json', () => {
    const { tokenizerJson: json, tokenizerConfig: cfg } = mistral.built;
    const t = Tokenizer.fromJSON(json, { ...cfg, add_eos_token: true });
    assert.deepEqual(t.encode('a'), [1, ...t.encode('a', { addSpecialTokens: false }), 32000]);
    assert.deepEqual(Tokenizer.fromJSON(json, { ...cfg, add_bos_token: false }).encode('a'), t.encode('a', { addSpecialTokens: false }));
  });

  it('ChatML added tokens (Mistral + <|im_start|> / <|im_end|>): one id each, special, skipped on request', () => {
    const { tok } = mistral;
    const ids = tok.encode('<|im_start|>user\nHi<|im_end|>', { addSpecialTokens: false });
    assert.equal(ids[0], 32001);
    assert.equal(ids.at(-1), 32000);
    assert.equal(tok.eosId, 32000);
    // legacy: true (this config): ▁ is prepended after a special token too, as in transformers.
    assert.equal(tok.decode(ids), '<|im_start|> user\nHi<|im_end|>');
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'user\nHi');
  });

  it('Llama-3: Split + ByteLevel with ignore_merges; <|begin_of_text|> through Sequence[ByteLevel, TemplateProcessing]', () => {
    const json = JSON.parse(llama3.built.tokenizerJson);
    assert.equal(json.post_processor.type, 'Sequence');
    assert.equal(json.model.ignore_merges, true);
    const { tok } = llama3;
    assert.equal(tok.bosId, 128000);
    assert.deepEqual(tok.encode('Hello world'), [128000, 9906, 1917]);
    assert.deepEqual(Tokenizer.fromJSON(json, { ...llama3.built.tokenizerConfig, add_bos_token: false }).encode('Hello world'), [9906, 1917]);
  });

  it('OPT from vocab.json + merges.txt: </s> prepended; only </s> and <pad> are special, a literal <s> is text', () => {
    const json = JSON.parse(opt.built.tokenizerJson);
    assert.deepEqual(json.added_tokens.map((t) => [t.id, t.content, t.special]), [[1, '<pad>', true], [2, '</s>', true]]);
    // Every line after "#version: 0.2" is a merge, "# #" and "## ##" included.
    const lines = readFileSync(join(DIR, 'opt-relu-bin-tiny', 'merges.txt'), 'utf8').split('\n').filter((l) => l !== '');
    assert.equal(lines[0], '#version: 0.2');
    assert.deepEqual(json.model.merges, lines.slice(1).map((l) => l.split(' ')));
    const { tok } = opt;
    assert.equal(tok.encode('a')[0], 2);
    assert.equal(tok.decode(tok.encode('<s> x</s>'), { skipSpecialTokens: true }), '<s> x');
  });

  it('SentencePiece tokenizer.model: the protobuf as read, and the tokenizer.json built from it', () => {
    const m = parseSentencePieceModel(new Uint8Array(readFileSync(join(DIR, 'spm-only-relu-tiny', 'tokenizer.model'))));
    assert.equal(m.pieces.length, 2000);
    assert.equal(m.modelType, 2);
    assert.equal(m.byteFallback, true);
    assert.equal(m.addDummyPrefix, true);
    assert.deepEqual([m.unkId, m.bosId, m.eosId, m.padId], [0, 1, 2, -1]);
    assert.deepEqual(m.pieces.slice(0, 4).map((p) => [p.piece, p.type]), [['<unk>', 2], ['<s>', 3], ['</s>', 3], ['<0x00>', 6]]);
    const json = JSON.parse(spm.built.tokenizerJson);
    assert.deepEqual(json.added_tokens.map((t) => t.content), ['<unk>', '<s>', '</s>']);
    assert.equal(json.model.byte_fallback, true);
    assert.equal(json.normalizer.normalizers[0].type, 'Prepend');
    assert.deepEqual(json.decoder.decoders.map((d) => d.type), ['Replace', 'ByteFallback', 'Fuse', 'Strip']);
    // Read as written (no tokenizer_class), it tokenizes as sentencepiece does: the golden alt_ids
    // wherever sentencepiece does not read a literal <s> as text.
    const { tokenizer_class, ...asWritten } = spm.built.tokenizerConfig;
    const t = Tokenizer.fromJSON(spm.built.tokenizerJson, asWritten);
    for (const e of readJSON(join(DIR, 'spm-only-relu-tiny', 'golden.json')).tokenizer) {
      if (!e.text.includes('<s>') && !e.text.includes('</s>')) assert.deepEqual(t.encode(e.text), e.alt_ids ?? e.ids, e.text);
    }
  });

  it('merges from scores: by the piece score, then the longer left half, each piece\'s splits by the halves\' ids', () => {
    const pieces = [['a', 0], ['b', 0], ['c', 0], ['ab', -1], ['bc', -2], ['abc', -3], ['▁😀', -4], ['▁', 0], ['😀', 0]].map(([piece, score]) => ({ piece, score }));
    // Python's len() counts code points: '▁😀' splits once, not inside the surrogate pair.
    assert.deepEqual(mergesFromScores(pieces), [['a', 'b'], ['b', 'c'], ['ab', 'c'], ['a', 'bc'], ['▁', '😀']]);
  });

  it('GGUF tokenizer.ggml.model "llama": the same tokenizer.json as the tokenizer.model, read as llama.cpp does', () => {
    const m = parseSentencePieceModel(new Uint8Array(readFileSync(join(DIR, 'spm-only-relu-tiny', 'tokenizer.model'))));
    const d = 8, vocab = m.pieces.length;
    const meta = [
      ['general.architecture', { type: 'string', value: 'llama' }],
      ['llama.embedding_length', { type: 'u32', value: d }], ['llama.block_count', { type: 'u32', value: 1 }],
      ['llama.attention.head_count', { type: 'u32', value: 2 }], ['llama.feed_forward_length', { type: 'u32', value: 16 }],
      ['llama.context_length', { type: 'u32', value: 64 }], ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: 1e-5 }],
      ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
      ['tokenizer.ggml.tokens', { type: 'array', of: 'string', value: m.pieces.map((p) => p.piece) }],
      // llama.cpp stores the scores as f32; these are whole numbers, which i32 (all writeGGUF writes) holds exactly.
      ['tokenizer.ggml.scores', { type: 'array', of: 'i32', value: m.pieces.map((p) => p.score) }],
      ['tokenizer.ggml.token_type', { type: 'array', of: 'i32', value: m.pieces.map((p) => p.type) }],
      ['tokenizer.ggml.bos_token_id', { type: 'u32', value: 1 }], ['tokenizer.ggml.eos_token_id', { type: 'u32', value: 2 }],
      ['tokenizer.ggml.unknown_token_id', { type: 'u32', value: 0 }], ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ];
    const file = (metadata) => {
      const chunks = [];
      writeGGUF((b, pos) => chunks.push([pos, Buffer.from(b)]), metadata, [{ name: 'token_embd.weight', dims: [d, vocab], dtype: 'f32', data: () => new Uint8Array(d * vocab * 4) }]);
      const out = Buffer.alloc(Math.max(...chunks.map(([p, b]) => p + b.length)));
      for (const [p, b] of chunks) b.copy(out, p);
      const path = join(tmpDir('tokgguf'), 'spm.gguf');
      writeFileSync(path, out);
      return path;
    };
    const ck = openGGUFCheckpoint(file(meta));
    try {
      assert.deepEqual(ck.tokenizerConfig, { add_bos_token: true, add_eos_token: false, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' });
      assert.equal(ck.tokenizerJson, sentencePieceTokenizerJson(m, ck.tokenizerConfig));
      const t = Tokenizer.fromJSON(ck.tokenizerJson, ck.tokenizerConfig);
      assert.deepEqual(t.encode(' Hello world'), [1, 259, 1973, 462, 1916, 795, 817]);
      assert.equal(t.decode(t.encode('Hello world'), { skipSpecialTokens: true }), 'Hello world');
    } finally { ck.close(); }
    const noScores = meta.filter(([k]) => k !== 'tokenizer.ggml.scores');
    assert.throws(() => openGGUFCheckpoint(file(noScores)), /tokenizer\.ggml\.model "llama" without tokens and scores: supported are/);
    const fewScores = meta.map(([k, v]) => (k === 'tokenizer.ggml.scores' ? [k, { ...v, value: v.value.slice(1) }] : [k, v]));
    assert.throws(() => openGGUFCheckpoint(file(fewScores)), /SentencePiece tokenizer: tokenizer\.ggml\.scores must give one score per token/);
  });

  it('direct use of the GGUF builder gives what its metadata says', () => {
    const meta = new Map([
      ['tokenizer.ggml.tokens', ['<unk>', '<s>', '</s>', '▁a', 'a', '▁']], ['tokenizer.ggml.scores', [0, 0, 0, -1, -2, -3]],
      ['tokenizer.ggml.add_space_prefix', false], ['tokenizer.ggml.add_eos_token', true],
    ]);
    const { tokenizerJson, tokenizerConfig } = ggufSentencePieceTokenizer((k) => meta.get(k));
    assert.deepEqual(tokenizerConfig, { add_bos_token: true, add_eos_token: true, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', add_prefix_space: false });
    const t = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
    assert.deepEqual(t.encode('a a'), [1, 4, 3, 2]);
  });
});

describe('tokenizer files: refusals and errors, one line naming what', () => {
  /** A protobuf message from [field, wire, value] (wire 0 varint, 2 bytes/message, 5 float). */
  const proto = (fields) => {
    const out = [];
    const varint = (n) => { do { out.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0)); n = Math.floor(n / 128); } while (n > 0); };
    for (const [f, w, v] of fields) {
      varint(f * 8 + w);
      if (w === 0) varint(v);
      else if (w === 5) { const b = Buffer.alloc(4); b.writeFloatLE(v); out.push(...b); }
      else { const b = typeof v === 'string' ? Buffer.from(v) : v; varint(b.length); out.push(...b); }
    }
    return Uint8Array.from(out);
  };
  const piece = (s, score, type = 1) => [1, 2, proto([[1, 2, s], [2, 5, score], [3, 0, type]])];
  const model = (modelType, extra = []) => proto([piece('<unk>', 0, 2), piece('<s>', 0, 3), piece('</s>', 0, 3), piece('a', -1), [2, 2, proto([[3, 0, modelType], ...extra])]]);
  const oneLine = (re) => (e) => !e.message.includes('\n') && re.test(e.message);

  it('a hand-made BPE model builds; UNIGRAM and treat_whitespace_as_suffix are named', () => {
    const m = parseSentencePieceModel(model(2));
    assert.deepEqual(m.pieces.map((p) => p.piece), ['<unk>', '<s>', '</s>', 'a']);
    const t = Tokenizer.fromJSON(sentencePieceTokenizerJson(m));
    assert.deepEqual(t.encode('a'), [1, 0, 3]); // "▁a": ▁ is <unk> here (no byte pieces to fall back on)
    assert.throws(() => tokenizerFromFiles({ tokenizerModel: model(1) }), oneLine(/tokenizer\.model: Unsupported tokenizer\.model feature: model_type UNIGRAM \(only BPE is converted\)/));
    assert.throws(() => tokenizerFromFiles({ tokenizerModel: model(2, [[24, 0, 1]]) }), oneLine(/treat_whitespace_as_suffix/));
  });

  it('a file that is not a SentencePiece model, and a folder with no tokenizer', () => {
    assert.throws(() => tokenizerFromFiles({ tokenizerModel: Uint8Array.from([0x0a, 0x40, 1, 2]) }), oneLine(/tokenizer\.model: not a SentencePiece model/));
    assert.throws(() => tokenizerFromFiles({ tokenizerModel: Uint8Array.from([0x0f]) }), oneLine(/not a SentencePiece model/));
    assert.throws(() => tokenizerFromFiles({}, (f) => `x/${f}`, 'x'),
      oneLine(/missing tokenizer\.json in x, and no vocab\.json \+ merges\.txt or tokenizer\.model to build one from/));
    assert.throws(() => tokenizerFromFiles({ vocabJson: '{}' }), /vocab\.json is there, merges\.txt is not/);
    assert.throws(() => tokenizerFromFiles({ vocabJson: '{}', mergesTxt: '#version: 0.2\na b c\n' }), oneLine(/merges\.txt: line 2 is not two tokens/));
    assert.throws(() => tokenizerFromFiles({ tokenizerJson: '{', tokenizerConfig: '{}' }), oneLine(/tokenizer\.json: not valid JSON/));
  });

  it('special_tokens_map.json is merged over tokenizer_config.json', () => {
    const b = tokenizerFromFiles({ tokenizerJson: '{}', tokenizerConfig: '{"eos_token": "a", "legacy": false}', specialTokensMap: '{"eos_token": "b"}' });
    assert.deepEqual(b.tokenizerConfig, { eos_token: 'b', legacy: false });
    assert.equal(tokenizerFromFiles({ tokenizerJson: '{}' }).tokenizerConfig, undefined);
  });
});
