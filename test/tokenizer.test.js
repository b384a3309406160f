// Tokenizer: exact Hugging Face ids for both mini models, decoding, streaming, errors, speed.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../dist/src/core/tokenizer.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (p) => readFileSync(root + p, 'utf8');
const readJSON = (p) => JSON.parse(read(p));

for (const model of ['opt-relu-mini', 'llama-relu-mini']) {
  describe(`tokenizer: ${model}`, () => {
    const dir = `models/${model}/`;
    const tokJson = read(dir + 'tokenizer.json');
    const tokConfig = readJSON(dir + 'tokenizer_config.json');
    const golden = readJSON(dir + 'golden.json');
    /** @type {Tokenizer} */
    let tok;

    before(() => {
      tok = Tokenizer.fromJSON(tokJson, tokConfig);
    });

    it('covers the tricky golden texts', () => {
      const texts = golden.tokenizer.map((e) => e.text);
      for (const needle of ['🙂', '漢字', '“', '\t', '\n', '  leading', '<s>', '</s>', '<pad>']) {
        assert.ok(texts.some((t) => t.includes(needle)), `golden has a text with ${JSON.stringify(needle)}`);
      }
      assert.ok(texts.includes(''), 'golden has the empty string');
    });

    it('has the vocabulary size and BOS/EOS of the model', () => {
      const cfg = readJSON(dir + 'config.json');
      assert.equal(tok.vocabSize, cfg.vocab_size);
      assert.equal(tok.bosId, golden.tokenizer[0].ids[0]);
      assert.equal(tok.bosId, cfg.bos_token_id);
      assert.equal(tok.eosId, cfg.eos_token_id);
    });

    it('encodes every golden text exactly, with special tokens', () => {
      for (const e of golden.tokenizer) assert.deepEqual(tok.encode(e.text), e.ids, JSON.stringify(e.text));
      for (const e of golden.tokenizer) {
        assert.deepEqual(tok.encode(e.text, { addSpecialTokens: true }), e.ids, JSON.stringify(e.text));
      }
    });

    it('encodes every golden text exactly, without special tokens', () => {
      for (const e of golden.tokenizer) {
        assert.deepEqual(tok.encode(e.text, { addSpecialTokens: false }), e.ids_no_special, JSON.stringify(e.text));
      }
    });

    it('encodes the golden prompts exactly', () => {
      for (const p of golden.prompts) assert.deepEqual(tok.encode(p.text), p.ids, p.text);
    });

    it('works the same without tokenizer_config.json', () => {
      const bare = Tokenizer.fromJSON(JSON.parse(tokJson));
      assert.equal(bare.bosId, tok.bosId);
      assert.equal(bare.eosId, tok.eosId);
      for (const e of golden.tokenizer) assert.deepEqual(bare.encode(e.text), e.ids, JSON.stringify(e.text));
    });

    it('honours add_bos_token: false from tokenizer_config.json', () => {
      const noBos = Tokenizer.fromJSON(tokJson, { ...tokConfig, add_bos_token: false });
      for (const e of golden.tokenizer) assert.deepEqual(noBos.encode(e.text), e.ids_no_special);
    });

    it('decodes golden ids back to their text', () => {
      for (const e of golden.tokenizer) {
        assert.equal(tok.decode(e.ids_no_special), e.text);
        assert.equal(tok.decode(e.ids, { skipSpecialTokens: false }), tok.decode([e.ids[0]]) + e.text);
      }
    });

    it('decode(greedy_ids) equals greedy_text (special tokens skipped, as the golden was made)', () => {
      for (const p of golden.prompts) {
        assert.equal(tok.decode(p.greedy_ids, { skipSpecialTokens: true }), p.greedy_text, p.text);
      }
    });

    it('keeps special tokens in decode() unless asked to skip them', () => {
      const ids = tok.encode('<s> special </s> tokens <pad>');
      assert.equal(tok.decode(ids, { skipSpecialTokens: true }), ' special  tokens ');
      assert.equal(tok.decode(ids), tok.decode([tok.bosId]) + '<s> special </s> tokens <pad>');
    });

    it('streams: chunks concatenate to decode() and never split a character', () => {
      const texts = [...golden.tokenizer.map((e) => e.text), ...golden.prompts.map((p) => p.text + p.greedy_text)];
      let spanning = 0;
      for (const text of texts) {
        for (const skipSpecialTokens of [false, true]) {
          const ids = tok.encode(text);
          const d = tok.decoder({ skipSpecialTokens });
          const chunks = ids.map((id) => d.push(id));
          const rest = d.flush();
          assert.equal(chunks.join('') + rest, tok.decode(ids, { skipSpecialTokens }));
          assert.equal(rest, '');
          for (const c of chunks) assert.ok(!c.includes('\uFFFD'), `chunk ${JSON.stringify(c)} of ${JSON.stringify(text)}`);
        }
        // Count characters whose bytes span tokens (emoji, CJK): those must give empty chunks.
        const ids = tok.encode(text, { addSpecialTokens: false });
        for (const id of ids) if (new TextDecoder('utf-8', { fatal: false }).decode(tok.tokenBytes(id)).includes('\uFFFD')) spanning++;
      }
      assert.ok(spanning > 5, 'the golden texts include characters that span tokens');

      // The emoji entry: each character appears exactly once, in one chunk.
      const e = golden.tokenizer.find((x) => x.text.includes('🙂'));
      const d = tok.decoder();
      const chunks = e.ids_no_special.map((id) => d.push(id));
      for (const ch of ['🙂', '🚀', '漢', '字', 'か', 'な']) assert.equal(chunks.filter((c) => c.includes(ch)).length, 1, ch);
      assert.ok(chunks.some((c) => c === ''), 'some token completes no character');
      assert.equal(d.flush(), '');
    });

    it('streams random id sequences, partial and invalid UTF-8 included, chunk for chunk as a streaming TextDecoder', () => {
      // Tokens decoded whole skip the TextDecoder while it holds no bytes: every chunk must still
      // be what a streaming TextDecoder gives for the same bytes, whatever the ids around it.
      let seed = 7;
      const rand = (n) => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
      // Ids whose bytes are not whole characters (continuations, lead bytes) and plain ones.
      const partial = [], whole = [];
      for (let id = 0; id < tok.vocabSize; id++) {
        if (tok.decode([id]).includes('\uFFFD')) partial.push(id); else whole.push(id);
      }
      assert.ok(partial.length > 10, 'the vocabulary has tokens that are parts of characters');
      for (let trial = 0; trial < 200; trial++) {
        const ids = Array.from({ length: 1 + rand(12) }, () => (rand(3) ? partial : whole)[rand(rand(3) ? partial.length : whole.length)] ?? whole[0]);
        const d = tok.decoder(), ref = new TextDecoder('utf-8', { ignoreBOM: true });
        const first = tok.decode([ids[0]]) === ref.decode(tok.tokenBytes(ids[0]));
        ref.decode();
        if (!first) continue;   // a first token with its own bytes (Metaspace): covered above
        for (const id of ids) assert.equal(d.push(id), ref.decode(tok.tokenBytes(id), { stream: true }), JSON.stringify(ids));
        assert.equal(d.flush(), ref.decode(), JSON.stringify(ids));
      }
    });

    it('stream flush() turns an incomplete character into U+FFFD, and the decoder is reusable', () => {
      const ids = tok.encode('🙂', { addSpecialTokens: false });
      assert.ok(ids.length >= 2, 'the emoji spans several tokens');
      const d = tok.decoder();
      assert.equal(d.push(ids[0]), '');
      assert.equal(d.flush(), '\uFFFD');
      assert.equal(tok.decode([ids[0]]), '\uFFFD');
      assert.equal(ids.map((id) => d.push(id)).join('') + d.flush(), '🙂');
    });

    it('tokenBytes gives the raw bytes of tokens', () => {
      const enc = new TextEncoder();
      const ids = tok.encode('emoji 🙂🚀 and CJK 漢字かな', { addSpecialTokens: false });
      const all = ids.flatMap((id) => [...tok.tokenBytes(id)]);
      assert.deepEqual(all, [...enc.encode('emoji 🙂🚀 and CJK 漢字かな')]);
      const [space] = tok.encode(' ', { addSpecialTokens: false });
      assert.deepEqual([...tok.tokenBytes(space)], [0x20]);
      assert.deepEqual([...tok.tokenBytes(tok.eosId)], [...enc.encode('</s>')]);
      // Every id has bytes, and concatenated bytes decode like decode().
      for (let id = 0; id < tok.vocabSize; id++) assert.ok(tok.tokenBytes(id).length > 0, `id ${id}`);
      assert.throws(() => tok.tokenBytes(tok.vocabSize), RangeError);
      // The returned array is a copy.
      tok.tokenBytes(space)[0] = 0x41;
      assert.deepEqual([...tok.tokenBytes(space)], [0x20]);
    });

    it('round-trips text, including a leading BOM, NEL and odd spaces', () => {
      for (const s of ['\uFEFFhello', 'a\u0085b \u00a0c\u3000d\r\n', '  \t\n x', "don't I'LL", '']) {
        assert.equal(tok.decode(tok.encode(s, { addSpecialTokens: false })), s);
      }
    });
  });
}

describe('tokenizer: errors', () => {
  const base = () => readJSON('models/opt-relu-mini/tokenizer.json');
  const throwsNaming = (mutate, pattern) => {
    const j = base();
    mutate(j);
    assert.throws(() => Tokenizer.fromJSON(j), (e) => e instanceof Error && pattern.test(e.message));
    assert.throws(() => Tokenizer.fromJSON(JSON.stringify(j)), (e) => e instanceof Error && pattern.test(e.message));
  };

  it('names an unsupported model type', () => {
    throwsNaming((j) => (j.model.type = 'Unigram'), /Unsupported tokenizer\.json feature: model type "Unigram"/);
    throwsNaming((j) => (j.model.type = 'WordPiece'), /model type "WordPiece"/);
  });

  it('names an unsupported normalizer, pre-tokenizer, decoder or post-processor', () => {
    throwsNaming((j) => (j.normalizer = { type: 'NFKC' }), /Unsupported tokenizer\.json feature: normalizer type "NFKC"/);
    throwsNaming((j) => (j.pre_tokenizer = { type: 'Metaspace', replacement: '▁' }), /pre_tokenizer type "Metaspace"/);
    throwsNaming((j) => (j.pre_tokenizer = null), /pre_tokenizer/);
    throwsNaming((j) => (j.decoder = { type: 'WordPiece' }), /decoder type "WordPiece"/);
    throwsNaming((j) => (j.post_processor = { type: 'Fancy' }), /post_processor type "Fancy"/);
  });

  it('names unsupported BPE options and added-token flags', () => {
    throwsNaming((j) => (j.model.dropout = 0.1), /BPE dropout/);
    throwsNaming((j) => (j.model.end_of_word_suffix = '</w>'), /BPE end_of_word_suffix/);
    throwsNaming((j) => (j.model.continuing_subword_prefix = '##'), /continuing_subword_prefix/);
    throwsNaming((j) => (j.added_tokens[0].single_word = true), /single_word/);
  });

  it('names what stays unsupported in the SentencePiece-style pipelines, in one line', () => {
    // byte_fallback, Prepend / Replace normalizers, Metaspace, Split and the Llama decoders are
    // implemented (test/tokenizer-replicas.test.js); these variants of them are not.
    const llama = (j) => {
      j.pre_tokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false };
      j.decoder = { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }] };
    };
    const cases = [
      [(j) => { llama(j); j.pre_tokenizer.split = true; }, /pre_tokenizer type "Metaspace" with split: true/],
      [(j) => (j.normalizer = { type: 'Replace', pattern: { Regex: ' +' }, content: '▁' }), /normalizer "Replace" with a Regex pattern/],
      [(j) => (j.pre_tokenizer = { type: 'Split', pattern: { Regex: '\\s' }, behavior: 'MergedWithNext', invert: false }), /pre_tokenizer Split behavior "MergedWithNext"/],
      [(j) => { llama(j); j.decoder.decoders.push({ type: 'Strip', content: ' ', start: 0, stop: 1 }); }, /decoder Strip with stop > 0/],
      [(j) => { llama(j); j.decoder.decoders.unshift({ type: 'Strip', content: ' ', start: 1, stop: 0 }); }, /decoder Strip before Fuse/],
      [(j) => { llama(j); j.decoder.decoders.push({ type: 'Replace', pattern: { String: 'a' }, content: 'b' }); }, /decoder Replace after ByteFallback/],
      [(j) => (j.decoder = null), /no decoder/],
      [(j) => (j.pre_tokenizer = { type: 'Metaspace', replacement: '▁', split: false }), /decoder ByteLevel without a ByteLevel pre_tokenizer/],
    ];
    for (const [mutate, pattern] of cases) {
      throwsNaming(mutate, pattern);
      const j = base();
      mutate(j);
      assert.throws(() => Tokenizer.fromJSON(j), (e) => !e.message.includes('\n') && /^Unsupported tokenizer\.json feature: /.test(e.message));
    }
  });

  it('rejects malformed JSON clearly', () => {
    assert.throws(() => Tokenizer.fromJSON('{"model": '), /Malformed tokenizer\.json: not valid JSON/);
    assert.throws(() => Tokenizer.fromJSON('[1, 2]'), /Malformed tokenizer\.json: top level/);
    assert.throws(() => Tokenizer.fromJSON({}), /Malformed tokenizer\.json: missing "model"/);
    const j = base();
    delete j.model.merges;
    assert.throws(() => Tokenizer.fromJSON(j), /Malformed tokenizer\.json: model\.merges/);
  });
});

describe('tokenizer: speed', function () {
  // A pathological (say quadratic) encoder would not finish within the suite's timeout; the times
  // are printed, not asserted, so a busy machine cannot fail the test.
  this.timeout(60000);
  it('encodes and decodes models/calibration.txt (~350 KB) exactly, printing the times', () => {
    const text = read('models/calibration.txt');
    const tok = Tokenizer.fromJSON(read('models/llama-relu-mini/tokenizer.json'), readJSON('models/llama-relu-mini/tokenizer_config.json'));
    let t0 = performance.now();
    const ids = tok.encode(text, { addSpecialTokens: false });
    const encodeMs = performance.now() - t0;
    t0 = performance.now();
    const back = tok.decode(ids);
    const decodeMs = performance.now() - t0;
    console.log(`      calibration.txt: ${text.length} chars -> ${ids.length} tokens; encode ${encodeMs.toFixed(0)} ms (${(text.length / 1024 / (encodeMs / 1000)).toFixed(0)} KB/s), decode ${decodeMs.toFixed(0)} ms`);
    assert.equal(back, text);
    assert.ok(ids.length > text.length / 8 && ids.length < text.length, `${ids.length} tokens for ${text.length} characters`);
  });
});
