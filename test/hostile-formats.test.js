// Hostile checkpoints in every format the importer reads — GGUF, safetensors (single and sharded),
// torch .bin (zip + pickle) and Hugging Face config.json: each is refused with one line naming the
// file and what is wrong, before any loop or allocation a header number drives; never a hang, a
// raw TypeError / RangeError, or a silently different model. Files are built at test time.
import assert from 'node:assert/strict';
import { closeSync, copyFileSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { exportGGUF, loadModel } from '../dist/src/index.js';
import { openGGUFCheckpoint as openGGUFBytes } from '../dist/src/format/gguf.js';
import { openGGUFCheckpoint, readGGUFPredictor } from '../dist/src/node/gguf-file.js';
import { requiredTensors } from '../dist/src/format/hf.js';
import { parseHFConfig } from '../dist/src/format/hf-config.js';
import { CheckpointError, bytesFile, parseSafetensorsHeader } from '../dist/src/format/safetensors.js';
import { openHFCheckpoint } from '../dist/src/node/checkpoint-fs.js';
import { TorchBinFile } from '../dist/src/format/torch.js';
import { imagePath, modelDir } from './helpers/models.js';
import { cleanupTmp, copyModel, encodeRawSafetensors, patchJson, readJson, setHeaderLength, shardOf, tmpDir } from './helpers/hostile.js';
import { GGUF_T as U, decodeGGUF, dropKV, encodeGGUF, kvOf, layoutGGUF, rewriteSafetensors, setKV, tensorBytesOf } from './helpers/mutate.js';
import { Pickle, encodeTorchBin, listZip, stateDictPickle, torchBinWithPickle } from './helpers/torchfiles.js';

after(cleanupTmp);

/** `fn`'s error: an Error (not a TypeError / RangeError), one line, naming `file`, matching `re`. */
function refused(fn, file, re) {
  let err;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  check(err, file, re);
}
async function rejected(promise, file, re) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  check(err, file, re);
}
function check(err, file, re) {
  assert.ok(err, `expected an error matching ${re}, nothing was thrown`);
  assert.ok(err instanceof Error && !(err instanceof TypeError) && !(err instanceof RangeError), `a raw ${err?.name}: ${err?.stack ?? err}`);
  assert.ok(!err.message.includes('\n'), `not one line: ${err.message}`);
  if (file) assert.ok(err.message.includes(file), `${JSON.stringify(err.message)} does not name ${file}`);
  assert.match(err.message, re);
}

// ---------------------------------------------------------------------------------------------

describe('hostile GGUF files', function () {
  let base, dir, gguf;
  before(async () => {
    dir = tmpDir('hgguf');
    gguf = join(dir, 'llama.gguf');
    exportGGUF(await imagePath('llama-relu-mini'), gguf);
    base = readFileSync(gguf);
  });
  let n = 0;
  /** The export with `mutate(decoded)` applied, as a file. */
  const variant = (mutate) => {
    const g = decodeGGUF(base);
    mutate(g);
    const p = join(dir, `v${n++}.gguf`);
    writeFileSync(p, encodeGGUF(g));
    return p;
  };
  /** Opens as a conversion does: the checkpoint, then every tensor the model needs. */
  const open = (path) => {
    const ck = openGGUFCheckpoint(path);
    try {
      for (const s of requiredTensors(ck.tensors)) ck.tensor(s.name);
      return ck.config;
    } finally { ck.close(); }
  };
  const refusedKV = (key, type, value, re, arrayType) => {
    const p = variant((g) => setKV(g, key, type, value, arrayType));
    refused(() => open(p), p, re);
  };

  it('the export opens, every tensor with the ne its metadata implies; a padding id outside the vocabulary means none', () => {
    const c = open(variant(() => {}));
    assert.deepEqual([c.nLayers, c.hidden, c.nHeads, c.nKvHeads, c.headDim, c.ffn, c.vocab, c.padId], [6, 384, 6, 2, 64, 1024, 8192, 1]);
    assert.equal(open(variant((g) => setKV(g, 'tokenizer.ggml.padding_token_id', U.U32, 2 ** 32 - 1))).padId, -1);
  });

  describe('header numbers: bounded before any loop or allocation', () => {
    const cases = [
      ['llama.block_count', 2 ** 31 - 1, /GGUF metadata llama\.block_count is 2147483647 \(expected an integer from 1 to 1024\)/],
      ['llama.block_count', 2 ** 32 - 1, /llama\.block_count is 4294967295 \(expected an integer from 1 to 1024\)/],
      ['llama.block_count', 0, /llama\.block_count is 0 \(expected an integer from 1 to 1024\)/],
      ['llama.attention.head_count', 2 ** 31 - 1, /llama\.attention\.head_count is 2147483647 \(expected an integer from 1 to 384\)/],
      ['llama.attention.head_count_kv', 2 ** 32 - 1, /llama\.attention\.head_count_kv is 4294967295 \(expected an integer from 1 to 6\)/],
      ['llama.rope.dimension_count', 2 ** 31 - 1, /llama\.rope\.dimension_count is 2147483647 \(expected an integer from 1 to 1048576\)/],
      ['llama.rope.dimension_count', 2 ** 32 - 1, /llama\.rope\.dimension_count is 4294967295/],
      ['llama.embedding_length', 2 ** 31 - 1, /llama\.embedding_length is 2147483647 \(expected an integer from 1 to 1048576\)/],
      ['llama.feed_forward_length', 2 ** 32 - 1, /llama\.feed_forward_length is 4294967295/],
      ['llama.context_length', 2 ** 32 - 1, /llama\.context_length is 4294967295 \(expected an integer from 1 to 16777216\)/],
    ];
    for (const [key, value, re] of cases) it(`${key} = ${value}`, () => refusedKV(key, U.U32, value, re));
    it('a 64-bit count', () => refusedKV('llama.block_count', U.U64, 2n ** 40n, /llama\.block_count is 1099511627776 \(expected/));
  });

  describe('header numbers: consistent with one another', () => {
    it('heads that do not divide the width, KV heads that do not divide the heads', () => {
      refusedKV('llama.attention.head_count', U.U32, 5, /llama\.embedding_length 384 is not divisible by llama\.attention\.head_count 5/);
      refusedKV('llama.attention.head_count_kv', U.U32, 4, /llama\.attention\.head_count 6 is not a multiple of llama\.attention\.head_count_kv 4/);
    });
    it('rotary dimensions beyond the head, or a part of it', () => {
      refusedKV('llama.rope.dimension_count', U.U32, 128, /rope\.dimension_count 128 exceeds the head dimension 64/);
      refusedKV('llama.rope.dimension_count', U.U32, 32, /rope\.dimension_count 32 is less than the head dimension 64 \(partial rotary embeddings are not supported\)/);
      refusedKV('llama.attention.value_length', U.U32, 32, /value_length 32 differs from the key length 64/);
    });
    it('the vocabulary: llama.vocab_size, the token list and the embedding agree', () => {
      refusedKV('llama.vocab_size', U.U32, 8000, /llama\.vocab_size 8000 differs from the 8192 tokens of tokenizer\.ggml\.tokens/);
      const fewer = variant((g) => { kvOf(g, 'tokenizer.ggml.tokens').value.pop(); kvOf(g, 'tokenizer.ggml.token_type').value.pop(); dropKV(g, 'llama.vocab_size'); });
      refused(() => open(fewer), fewer, /tensor token_embd\.weight has ne \[384,8192\], expected \[384,8191\]/);
      const types = variant((g) => kvOf(g, 'tokenizer.ggml.token_type').value.pop());
      refused(() => open(types), types, /tokenizer\.ggml\.token_type has 8191 elements \(expected one per token: 8192\)/);
      refusedKV('tokenizer.ggml.bos_token_id', U.U32, 8192, /bos_token_id is 8192 \(expected an integer from 0 to 8191\)/);
      refusedKV('tokenizer.ggml.eos_token_id', U.U32, 2 ** 32 - 1, /eos_token_id is 4294967295/);
    });
    it('what the engine does not compute is named: rope scaling, experts', () => {
      refusedKV('llama.rope.scaling.type', U.STRING, 'yarn', /rope scaling \(llama\.rope\.scaling\.type "yarn", factor 0\) is not supported/);
      refusedKV('llama.expert_count', U.U32, 8, /llama\.expert_count is 8: mixture-of-experts models are not supported/);
    });
  });

  describe('value types', () => {
    it('an epsilon stored as u32 is not read as 9e8; non-finite or out-of-range floats', () => {
      const bits = new Uint32Array(new Float32Array([1e-5]).buffer)[0];
      refusedKV('llama.attention.layer_norm_rms_epsilon', U.U32, bits, /llama\.attention\.layer_norm_rms_epsilon is u32 \(expected f32\)/);
      refusedKV('llama.attention.layer_norm_rms_epsilon', U.F32, NaN, /layer_norm_rms_epsilon is NaN \(expected a number between 0 and 1\)/);
      refusedKV('llama.attention.layer_norm_rms_epsilon', U.F32, 0, /layer_norm_rms_epsilon is 0 \(expected a number between 0 and 1\)/);
      refusedKV('llama.rope.freq_base', U.U32, 10000, /llama\.rope\.freq_base is u32 \(expected f32\)/);
      refusedKV('llama.rope.freq_base', U.F32, -1, /freq_base is -1 \(expected a positive number\)/);
    });
    it('counts as floats, strings or per-layer arrays; strings as numbers; token lists of numbers', () => {
      refusedKV('llama.block_count', U.F32, 6, /llama\.block_count is f32 \(expected an integer\)/);
      refusedKV('llama.block_count', U.STRING, '6', /llama\.block_count is string \(expected an integer\)/);
      refusedKV('llama.attention.head_count', U.ARRAY, [6, 6, 6, 6, 6, 6], /llama\.attention\.head_count is array\[i32\] \(expected an integer\)/, U.I32);
      refusedKV('general.architecture', U.U32, 1, /general\.architecture is u32 \(expected a string\)/);
      refusedKV('tokenizer.ggml.tokens', U.ARRAY, [...Array(8192).keys()], /tokenizer\.ggml\.tokens is array\[u32\] \(expected an array of strings\)/, U.U32);
      refusedKV('tokenizer.ggml.merges', U.ARRAY, [1, 2], /tokenizer\.ggml\.merges is array\[u8\] \(expected an array of strings\)/, U.U8);
      refusedKV('tokenizer.ggml.add_bos_token', U.U8, 1, /add_bos_token is u8 \(expected a bool\)/);
      refusedKV('general.alignment', U.BOOL, true, /not a valid GGUF file \(general\.alignment is bool \(expected u32\)\)/);
    });
  });

  describe('tensors against the metadata', () => {
    const tensor = (g, name) => g.tensors.find((t) => t.name === name);
    it('a shrunk ne is refused (it used to convert into a model that emits garbage ids)', () => {
      const p = variant((g) => { const t = tensor(g, 'blk.0.attn_q.weight'); t.dims = [t.dims[0], t.dims[1] / 2]; });
      refused(() => open(p), p, /tensor blk\.0\.attn_q\.weight has ne \[384,192\], expected \[384,384\]/);
      const v = variant((g) => { tensor(g, 'blk.2.attn_v.weight').dims = [384, 64]; });
      refused(() => open(v), v, /tensor blk\.2\.attn_v\.weight has ne \[384,64\], expected \[384,128\]/);
      const norm = variant((g) => { tensor(g, 'output_norm.weight').dims = [192]; });
      refused(() => open(norm), norm, /tensor output_norm\.weight has ne \[192\], expected \[384\]/);
      const flat = variant((g) => { const t = tensor(g, 'output.weight'); t.dims = [t.dims[0] * t.dims[1]]; });
      refused(() => open(flat), flat, /tensor output\.weight has ne \[3145728\], expected \[384,8192\]/);
    });
    it('layers past llama.block_count, or missing from it; a missing tensor is named', () => {
      const fewer = variant((g) => setKV(g, 'llama.block_count', U.U32, 5));
      refused(() => open(fewer), fewer, /tensor blk\.5\.\w+\.weight belongs to no layer \(llama\.block_count is 5\)/);
      const more = variant((g) => setKV(g, 'llama.block_count', U.U32, 7));
      refused(() => open(more), more, /tensor blk\.6\.attn_norm\.weight is missing/);
      const gone = variant((g) => { g.tensors = g.tensors.filter((t) => t.name !== 'blk.3.ffn_up.weight'); });
      refused(() => open(gone), gone, /tensor blk\.3\.ffn_up\.weight is missing/);
    });
    it('tensors the llama graph does not use are refused, as llama.cpp refuses them', () => {
      const add = (g, name, dims) => {
        const offset = Math.ceil(g.data.length / 32) * 32;
        g.data = Buffer.concat([g.data, Buffer.alloc(offset - g.data.length + dims.reduce((a, b) => a * b, 4))]);
        g.tensors.push({ name, dims, type: 0, offset });
      };
      const rope = variant((g) => add(g, 'rope_freqs.weight', [32]));
      refused(() => open(rope), rope, /tensor rope_freqs\.weight is not one the llama graph uses \(rope frequency factors are not supported\)/);
      const both = variant((g) => add(g, 'blk.1.ffn_down_t.weight', [384, 1024]));
      refused(() => open(both), both, /tensor blk\.1\.ffn_down_t\.weight is not one the llama graph uses/);
      // A predictor's tensors are allowed (read by readGGUFPredictor), whose loop is bounded as well.
      const pred = variant((g) => { add(g, 'blk.0.fc1.weight', [384, 8]); setKV(g, 'llama.block_count', U.U32, 2 ** 31 - 1); });
      refused(() => readGGUFPredictor(pred, 'x'), pred, /llama\.block_count is 2147483647/);
    });
    it('through loadModel: refused before any conversion, nothing cached', async () => {
      const p = variant((g) => setKV(g, 'llama.block_count', U.U32, 2 ** 32 - 1));
      await rejected(loadModel(p, { cacheDir: tmpDir('hggufcache') }), p, /llama\.block_count is 4294967295/);
      const q = variant((g) => { const t = tensor(g, 'blk.4.ffn_gate.weight'); t.dims = [t.dims[0], t.dims[1] - 1]; });
      await rejected(loadModel(q, { cacheDir: tmpDir('hggufcache') }), q, /tensor blk\.4\.ffn_gate\.weight has ne \[384,1023\], expected \[384,1024\]/);
    });
  });

  describe('raw header fields: counts, lengths and offsets against the file', () => {
    /** The export with `patch(bytes, layout)` applied in place (or the bytes it returns). The
     *  patches touch the header only: the tensor data after it is copied by the kernel. */
    const raw = (patch) => {
      const L = layoutGGUF(base), b = Buffer.from(base.subarray(0, L.headerEnd));
      const p = join(dir, `r${n++}.gguf`);
      const out = patch(b, L);
      if (out instanceof Uint8Array) writeFileSync(p, out);
      else {
        copyFileSync(gguf, p);
        const fd = openSync(p, 'r+');
        try { writeSync(fd, b, 0, b.length, 0); } finally { closeSync(fd); }
      }
      return p;
    };
    const kvAt = (L, key) => L.kv.find((e) => e.key === key);
    const tAt = (L, name) => L.tensors.find((t) => t.name === name);
    const cases = [
      ['a tensor count of 2^64 - 1', (b, L) => b.writeBigUInt64LE(2n ** 64n - 1n, L.nTensorsAt), /tensor count of 18446744073709551615 is too large/],
      ['a tensor count past the limit', (b, L) => b.writeBigUInt64LE(2n ** 20n + 1n, L.nTensorsAt), /1048577 tensors and \d+ metadata entries \(at most 1048576 each\)/],
      ['a tensor count the file cannot hold', (b, L) => b.writeBigUInt64LE(2n ** 20n, L.nTensorsAt), /header runs past the end of the file: 1048576 tensors and \d+ metadata entries do not fit its \d+ bytes/],
      ['an array of 2^40 tokens', (b, L) => b.writeBigUInt64LE(2n ** 40n, kvAt(L, 'tokenizer.ggml.tokens').countAt), /tokenizer\.ggml\.tokens: array of 1099511627776 elements at byte \d+ does not fit the file/],
      ['an array of 2^32 - 1 merges', (b, L) => b.writeBigUInt64LE(2n ** 32n - 1n, kvAt(L, 'tokenizer.ggml.merges').countAt), /tokenizer\.ggml\.merges: array of 4294967295 elements/],
      ['a string of 2^40 bytes', (b, L) => b.writeBigUInt64LE(2n ** 40n, kvAt(L, 'general.name').valueAt), /general\.name: string at byte \d+ of 1099511627776 bytes \(at most 16777216\)/],
      ['a string longer than the rest of the file', (b, L) => { b.writeBigUInt64LE(2n ** 20n, kvAt(L, 'general.name').valueAt); return b.subarray(0, L.headerEnd); }, /header runs past the end of the file at byte \d+/],
      ['a key of 2^32 - 1 bytes', (b, L) => b.writeBigUInt64LE(2n ** 32n - 1n, kvAt(L, 'general.name').typeAt - 8 - 'general.name'.length), /key at byte \d+ of 4294967295 bytes/],
      ['an unknown value type', (b, L) => b.writeUInt32LE(13, kvAt(L, 'general.name').typeAt), /general\.name: metadata value type 13/],
      ['an array of arrays', (b, L) => b.writeUInt32LE(U.ARRAY, kvAt(L, 'tokenizer.ggml.merges').countAt - 4), /tokenizer\.ggml\.merges: arrays of type array are not supported/],
      ['a bool of 2', (b, L) => { const e = kvAt(L, 'tokenizer.ggml.add_bos_token'); b[e.valueAt] = 2; }, /add_bos_token: bool value 2/],
      ['a tensor name of 100 bytes', (b, L) => b.writeBigUInt64LE(100n, tAt(L, 'blk.0.attn_q.weight').nameLenAt), /tensor name at byte \d+ of 100 bytes \(at most 63\)/],
      ['five dimensions', (b, L) => b.writeUInt32LE(5, tAt(L, 'blk.0.attn_q.weight').ndAt), /tensor blk\.0\.attn_q\.weight has 5 dimensions \(1 to 4\)/],
      ['ne of 2^40 × 2^40', (b, L) => { const t = tAt(L, 'blk.0.attn_q.weight'); b.writeBigUInt64LE(2n ** 40n, t.dimsAt); b.writeBigUInt64LE(2n ** 40n, t.dimsAt + 8); }, /tensor blk\.0\.attn_q\.weight of ne \[1099511627776,1099511627776\] is larger than the file/],
      ['an unaligned offset', (b, L) => { const t = tAt(L, 'blk.0.attn_q.weight'); b.writeBigUInt64LE(b.readBigUInt64LE(t.offsetAt) + 1n, t.offsetAt); }, /tensor blk\.0\.attn_q\.weight is not aligned/],
      ['an offset past the end', (b, L) => b.writeBigUInt64LE(2n ** 40n, tAt(L, 'blk.0.attn_q.weight').offsetAt), /tensor blk\.0\.attn_q\.weight lies past the end of the file/],
      ['two tensors on the same bytes', (b, L) => b.writeBigUInt64LE(b.readBigUInt64LE(tAt(L, 'blk.0.attn_k.weight').offsetAt), tAt(L, 'blk.0.attn_q.weight').offsetAt), /tensors blk\.0\.attn_\w\.weight and blk\.0\.attn_\w\.weight overlap/],
      ['an unknown ggml type', (b, L) => b.writeUInt32LE(12, tAt(L, 'blk.0.attn_q.weight').typeAt), /tensor blk\.0\.attn_q\.weight has ggml type 12 \(F32, F16, BF16, Q8_0 and Q4_0 are supported\)/],
    ];
    for (const [what, patch, re] of cases) {
      it(what, () => {
        const p = raw(patch);
        refused(() => open(p), p, re);
      });
    }

    it('random corruptions of the header: a clean refusal or a model, never a raw error', () => {
      const L = layoutGGUF(base);
      // The numeric fields (counts, lengths, types, ne, offsets) and bytes anywhere in the header.
      const fields = [L.nTensorsAt, L.nKvAt, ...L.kv.flatMap((e) => [e.typeAt, e.valueAt, ...(e.countAt ? [e.countAt] : [])]),
        ...L.tensors.flatMap((t) => [t.nameLenAt, t.ndAt, t.dimsAt, t.dimsAt + 8, t.typeAt, t.offsetAt])];
      let seed = 7;
      const rnd = (k) => ((seed = (seed * 1103515245 + 12345) >>> 0) % k);
      const special = [0, 1, 0x7f, 0x80, 0xff];
      let opened = 0, refusedCount = 0;
      // One copy of the export; the bytes a case corrupts are put back before the next one.
      const b = Buffer.from(base), touched = [];
      for (let i = 0; i < 300; i++) {
        for (const at of touched.splice(0)) b[at] = base[at];
        for (let k = 1 + rnd(3); k > 0; k--) {
          const at = rnd(2) ? fields[rnd(fields.length)] + rnd(8) : rnd(L.headerEnd);
          b[at] = rnd(2) ? special[rnd(special.length)] : rnd(256);
          touched.push(at);
        }
        const src = { ...bytesFile(b), close() {} };
        try {
          const ck = openGGUFBytes(src, 'fuzz.gguf');
          for (const s of requiredTensors(ck.tensors)) ck.tensor(s.name);
          opened++;
        } catch (e) {
          check(e, 'fuzz.gguf', /./);
          refusedCount++;
        }
      }
      assert.ok(refusedCount > 100, `${refusedCount} refused, ${opened} opened`);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('hostile safetensors files', () => {
  const parse = (bytes) => parseSafetensorsHeader(bytesFile(bytes), 'x.safetensors');
  const refusedST = (bytes, re) => refused(() => parse(bytes), 'x.safetensors', re);
  const f32 = (n) => new Uint8Array(4 * n);
  /** A header with the trailing spaces the reference writer pads with. */
  const padded = (obj) => JSON.stringify(obj) + '       ';

  it('a header length one byte short (its JSON padded with spaces still parses) is refused', () => {
    const header = { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [2], data_offsets: [16, 24] } };
    const ok = encodeRawSafetensors(padded(header), f32(6));
    assert.equal(parse(ok).tensors.size, 2);
    const len = Number(ok.readBigUInt64LE(0));
    for (const [delta, re] of [[-1, /the tensors end at byte 24 of the data region, which holds 25 bytes \(header length \d+: wrong, or bytes follow the last tensor\)/],
      [-3, /holds 27 bytes/]]) {
      const b = Buffer.from(ok);
      b.writeBigUInt64LE(BigInt(len + delta), 0);
      refusedST(b, re);
    }
  });

  it('on a real shard: refused naming it (it used to give ids 0, 0, 0, 0 and exit 0)', async () => {
    const dir = copyModel(modelDir('llama-relu-mini'));
    const p = join(dir, 'model-00001-of-00003.safetensors');
    setHeaderLength(p, Number(readFileSync(p).readBigUInt64LE(0)) - 1);
    await rejected(openHFCheckpoint(dir), p, /the tensors end at byte \d+ of the data region, which holds \d+ bytes/);
    await rejected(loadModel(dir, { cacheDir: tmpDir('hstcache') }), p, /tensors must tile the data region/);
  });

  it('offsets must tile the data region: no gap, none before the first, nothing after the last', () => {
    const h = (entries, n) => encodeRawSafetensors(entries, f32(n));
    refusedST(h({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, 3),
      /bytes \[4,8\) of the data region belong to no tensor \("b" begins at 8\); tensors must tile the data region/);
    refusedST(h({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 2), /bytes \[0,4\) of the data region belong to no tensor/);
    refusedST(h({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 2), /the tensors end at byte 4 of the data region, which holds 8 bytes/);
    refusedST(h({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, e: { dtype: 'F32', shape: [0], data_offsets: [4, 4] } }, 2),
      /tensor "e" \(data_offsets \[4,4\]\) lies inside another tensor's bytes/);
    // Empty tensors at the boundaries are fine, as are empty files of empty tensors.
    assert.equal(parse(h({ e: { dtype: 'F32', shape: [0], data_offsets: [0, 0] }, a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, z: { dtype: 'F16', shape: [0, 5], data_offsets: [8, 8] } }, 2)).tensors.size, 3);
    assert.equal(parse(encodeRawSafetensors({})).tensors.size, 0);
  });

  it('duplicate keys are refused (JSON.parse would keep the last silently)', () => {
    const t = '{"dtype":"F32","shape":[1],"data_offsets":[0,4]}', u = '{"dtype":"F32","shape":[1],"data_offsets":[4,8]}';
    refusedST(encodeRawSafetensors(`{"a":${t},"a":${u}}`, f32(2)), /header has the key "a" twice \(each key once\)/);
    refusedST(encodeRawSafetensors(`{"a":${t},"\\u0061":${u}}`, f32(2)), /header has the key "a" twice/);
    refusedST(encodeRawSafetensors(`{"a":{"dtype":"F16","dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32(1)), /header has the key "a"\."dtype" twice/);
    refusedST(encodeRawSafetensors(`{"__metadata__":{"format":"pt","format":"np"},"a":${t}}`, f32(1)), /the key "__metadata__"\."format" twice/);
    // Equal keys in different objects, and key-like strings among values, are not duplicates.
    assert.equal(parse(encodeRawSafetensors(`{"__metadata__":{"a":"\\"a\\":"},"a":${t},"b":${u}}`, f32(2))).tensors.size, 2);
  });

  it('__metadata__ maps strings to strings; the header begins with "{"', () => {
    const t = { dtype: 'F32', shape: [1], data_offsets: [0, 4] };
    refusedST(encodeRawSafetensors({ __metadata__: { format: 1 }, t }, f32(1)), /"__metadata__" entry "format" is 1 \(the format maps strings to strings\)/);
    refusedST(encodeRawSafetensors({ __metadata__: { nested: { a: 'b' } }, t }, f32(1)), /"__metadata__" entry "nested"/);
    assert.equal(parse(encodeRawSafetensors({ __metadata__: null, t }, f32(1))).tensors.size, 1);
    refusedST(encodeRawSafetensors(' ' + JSON.stringify({ t }), f32(1)), /header must begin with "\{"/);
  });

  it('negative, fractional and huge numbers', () => {
    const h = (entry, n = 4) => encodeRawSafetensors({ t: entry }, f32(n));
    for (const shape of [[-4], [1.5], [1e300], [2 ** 53], ['4'], [true]]) {
      refusedST(h({ dtype: 'F32', shape, data_offsets: [0, 16] }), /"shape" must be an array of non-negative integers/);
    }
    for (const off of [[0, -16], [0, 16.5], [0, 1e300], [0, 2 ** 53], [2 ** 64, 2 ** 64 + 16]]) {
      refusedST(h({ dtype: 'F32', shape: [4], data_offsets: off }), /"data_offsets" must be two non-negative integers/);
    }
    refusedST(h({ dtype: 'F32', shape: [2 ** 26, 2 ** 26, 2 ** 26], data_offsets: [0, 16] }), /does not match shape/);
  });

  describe('sharded checkpoints', () => {
    const LLAMA = modelDir('llama-relu-mini');
    it('a tensor stored in two shards is refused', async () => {
      const dir = copyModel(LLAMA);
      const name = 'model.layers.3.mlp.up_proj.weight', other = 'model-00001-of-00003.safetensors';
      assert.notEqual(shardOf(dir, name), join(dir, other));
      const copy = tensorBytesOf(shardOf(dir, name), name);
      rewriteSafetensors(join(dir, other), (t) => { t[name] = copy; });
      await rejected(openHFCheckpoint(dir), name, /tensor "model\.layers\.3\.mlp\.up_proj\.weight" is stored in two shards, .*model-0000\d-of-00003\.safetensors and .*model-0000\d-of-00003\.safetensors/);
    });
    it('an index naming a missing shard, a shard lacking the tensor, or holding a key twice', async () => {
      let dir = copyModel(LLAMA);
      const idx = join(dir, 'model.safetensors.index.json');
      patchJson(idx, (j) => { j.weight_map['model.norm.weight'] = 'model-00009-of-00003.safetensors'; });
      await rejected(openHFCheckpoint(dir), 'model-00009-of-00003.safetensors', /missing shard file .* \(listed in .*model\.safetensors\.index\.json for tensor "model\.norm\.weight"\)/);
      dir = copyModel(LLAMA);
      const name = 'model.layers.0.self_attn.q_proj.weight';
      rewriteSafetensors(shardOf(dir, name), (t) => { delete t[name]; });
      await rejected(openHFCheckpoint(dir), name, /is listed in .* as stored in model-0000\d-of-00003\.safetensors, but that shard does not contain it/);
      dir = copyModel(LLAMA);
      const text = readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8');
      writeFileSync(join(dir, 'model.safetensors.index.json'), text.replace('"weight_map": {', '"weight_map": {\n    "lm_head.weight": "model-00001-of-00003.safetensors",'));
      await rejected(openHFCheckpoint(dir), 'model.safetensors.index.json', /the key "weight_map"\."lm_head\.weight" appears twice/);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('hostile Hugging Face folders: config.json and the tensors it implies', () => {
  const LLAMA = modelDir('llama-relu-mini');
  const cfg = () => readJson(join(LLAMA, 'config.json'));
  const refusedCfg = (patch, re) => refused(() => parseHFConfig({ ...cfg(), ...patch }), 'config.json', re);

  it('counts are bounded integers: no loop or allocation runs on 2^31 layers', () => {
    refusedCfg({ num_hidden_layers: 2 ** 31 - 1 }, /"num_hidden_layers" must be a positive integer up to 1024, got 2147483647/);
    refusedCfg({ hidden_size: 2 ** 32 }, /"hidden_size" must be a positive integer up to 1048576/);
    refusedCfg({ vocab_size: 2 ** 30 }, /"vocab_size" must be a positive integer up to 16777216/);
    refusedCfg({ num_attention_heads: 2 ** 20 }, /"num_attention_heads" must be a positive integer up to 4096/);
    refusedCfg({ max_position_embeddings: 2 ** 40 }, /"max_position_embeddings" must be a positive integer up to 16777216/);
    refusedCfg({ head_dim: 2 ** 19 }, /6 heads of 524288 dimensions exceed 1048576/);
  });

  it('value types: strings, fractions, booleans and out-of-range floats are refused by key', () => {
    refusedCfg({ hidden_size: '384' }, /"hidden_size" must be a positive integer up to 1048576, got "384"/);
    refusedCfg({ intermediate_size: 1024.5 }, /"intermediate_size" must be a positive integer/);
    refusedCfg({ num_key_value_heads: true }, /"num_key_value_heads" must be a positive integer/);
    refusedCfg({ rms_norm_eps: 2 }, /"rms_norm_eps" must be a positive number up to 1, got 2/);
    refusedCfg({ rms_norm_eps: '1e-5' }, /"rms_norm_eps" must be a positive number/);
    refusedCfg({ tie_word_embeddings: 'false' }, /"tie_word_embeddings" must be true or false/);
  });

  it('a config.json with a key twice is refused', async () => {
    const dir = copyModel(LLAMA);
    const text = readFileSync(join(dir, 'config.json'), 'utf8');
    writeFileSync(join(dir, 'config.json'), text.replace('"hidden_size": 384,', '"hidden_size": 384,\n  "hidden_size": 512,'));
    await rejected(openHFCheckpoint(dir), 'config.json', /config\.json: the key "hidden_size" appears twice/);
  });

  it('every tensor the engine uses is checked: embeddings, norms, lm_head, biases; a missing one is named', async () => {
    const drop = async (name, re) => {
      const dir = copyModel(LLAMA);
      rewriteSafetensors(shardOf(dir, name), (t) => { delete t[name]; });
      patchJson(join(dir, 'model.safetensors.index.json'), (j) => { delete j.weight_map[name]; });
      await rejected(openHFCheckpoint(dir), name, re);
    };
    await drop('model.norm.weight', /tensor model\.norm\.weight \(normW\) is missing from the checkpoint/);
    await drop('model.embed_tokens.weight', /tensor model\.embed_tokens\.weight \(tokEmbed\) is missing/);
    await drop('lm_head.weight', /tensor lm_head\.weight \(lmHead\) is missing/);
    await drop('model.layers.5.post_attention_layernorm.weight', /\(layers\.5\.ln2W\) is missing/);
    let dir = copyModel(LLAMA);
    patchJson(join(dir, 'config.json'), (j) => { j.attention_bias = true; });
    await rejected(openHFCheckpoint(dir), 'q_proj.bias', /tensor model\.layers\.0\.self_attn\.q_proj\.bias \(layers\.0\.qB\) is missing/);
    dir = copyModel(LLAMA);
    rewriteSafetensors(shardOf(dir, 'lm_head.weight'), (t) => { t['lm_head.weight'].shape = [384, 8192]; });
    await rejected(openHFCheckpoint(dir), 'lm_head.weight', /tensor lm_head\.weight has shape \[384,8192\], expected \[8192,384\]/);
    dir = copyModel(LLAMA);
    patchJson(join(dir, 'config.json'), (j) => { j.vocab_size = 8000; });
    await rejected(openHFCheckpoint(dir), 'embed_tokens', /tensor model\.embed_tokens\.weight has shape \[8192,384\], expected \[8000,384\]/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('hostile torch .bin files', () => {
  const openBin = (bytes) => new TorchBinFile('test.bin', bytesFile(bytes));
  const refusedBin = (bytes, re) => refused(() => openBin(bytes), 'test.bin', re);
  const good = () => Buffer.from(encodeTorchBin({ w: { dtype: 'F32', shape: [4, 4] }, b: { dtype: 'F32', shape: [4] } }));

  /** A state dict of one F32 tensor "w" of 4 elements, the tail of its _rebuild_tensor_v2 call given. */
  const onePickle = ({ grad = (p) => p.bool(false), hooks = (p) => p.binget(0).emptyTuple().reduce(), metadata } = {}) => {
    const p = new Pickle().proto(2).global('collections', 'OrderedDict').binput(0).emptyTuple().reduce().binput(1).mark();
    p.str('w').global('torch._utils', '_rebuild_tensor_v2').mark();
    p.mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(4).tuple().binpersid();
    p.int(0).intTuple([4]).intTuple([1]);
    grad(p); hooks(p);
    if (metadata) metadata(p);
    return p.tuple().reduce().setitems().stop().bytes();
  };
  const withPickle = (pkl) => torchBinWithPickle(pkl, { 0: Buffer.alloc(16) });

  it('the plain one reads; storages sized exactly; a storage entry longer than its storage is refused', () => {
    assert.deepEqual(openBin(withPickle(onePickle())).tensor('w').shape, [4]);
    const long = stateDictPickle([{ name: 'w', dtype: 'F32', shape: [4], key: 0, numel: 4 }]);
    refusedBin(torchBinWithPickle(long, { 0: Buffer.alloc(24) }), /tensor "w": storage archive\/data\/0 holds 24 bytes, longer than its 4 × FloatStorage \(16 bytes\)/);
  });

  it('zip records that disagree: local header names, entry counts, overlapping entries', () => {
    let b = good();
    const z = listZip(b);
    const e = z.entries[1];
    b[e.lfhOffset + 30 + 2] ^= 0x01;   // a byte of the name in the local header
    refusedBin(b, /entry "archive\/byteorder": its local header names another entry/);
    b = good();
    b.writeUInt16LE(b.readUInt16LE(z.eocdOffset + 10) + 1, z.eocdOffset + 8);
    refusedBin(b, /end record counts \d+ entries on its disk and \d+ in all/);
    b = good();
    b.writeBigUInt64LE(b.readBigUInt64LE(z.z64Offset + 32) - 1n, z.z64Offset + 24);
    refusedBin(b, /zip64 end record counts \d+ entries on its disk and \d+ in all/);
    b = good();
    // The byteorder entry claims bytes that run into the next entry's local header.
    const bo = listZip(b).entries[1], next = listZip(b).entries[2];
    const size = next.lfhOffset - bo.dataOffset + 8;
    b.writeUInt32LE(size, bo.cdhOffset + 20);
    b.writeUInt32LE(size, bo.cdhOffset + 24);
    refusedBin(b, /entries "archive\/byteorder" and "archive\/data\/0" overlap/);
  });

  it('a state dict key set twice', () => {
    const pkl = stateDictPickle([{ name: 'w', dtype: 'F32', shape: [4], key: 0, numel: 4 }, { name: 'w', dtype: 'F32', shape: [4], key: 1, numel: 4 }]);
    refusedBin(torchBinWithPickle(pkl, { 0: Buffer.alloc(16), 1: Buffer.alloc(16) }), /SETITEMS at offset \d+ sets the dict key "w" twice/);
  });

  it('what _rebuild_tensor_v2 is given beyond storage, offset, size and stride must be what torch.save writes', () => {
    refusedBin(withPickle(onePickle({ grad: (p) => p.int(1) })), /_rebuild_tensor_v2: requires_grad is an int, not a bool/);
    refusedBin(withPickle(onePickle({ hooks: (p) => p.none() })), /backward hooks are None, not an empty OrderedDict/);
    refusedBin(withPickle(onePickle({ hooks: (p) => p.binget(0).emptyTuple().reduce().str('h').int(1).raw(0x73) })), /backward hooks are a dict of 1, not an empty OrderedDict/);
    refusedBin(withPickle(onePickle({ metadata: (p) => p.emptyDict().str('_is_neg').bool(true).raw(0x73) })), /the tensor carries metadata \{_is_neg\} \(a conjugate or negative view\)/);
    assert.ok(openBin(withPickle(onePickle({ metadata: (p) => p.emptyDict().str('_is_conj').bool(false).raw(0x73) }))).tensors.has('w'));
  });
});
