// Hugging Face checkpoint import: real models, synthetic models and hostile inputs.
import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync, writeFileSync, mkdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  CheckpointError,
  bytesFile,
  parseSafetensorsHeader,
  readTensorBytes,
} from '../dist/src/format/safetensors.js';
import { openHFCheckpoint, openSafetensors } from '../dist/src/node/checkpoint-fs.js';
import { modelTensors, parseHFConfig, requiredTensors } from '../dist/src/format/hf.js';
import {
  cleanupTmp,
  copyModel,
  encodeRawSafetensors,
  encodeSafetensors,
  patchHeader,
  patchJson,
  readJson,
  readSafetensors,
  setHeaderLength,
  shardOf,
  tmpDir,
  truncateFile,
  writeSafetensors,
} from './helpers/hostile.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OPT = join(ROOT, 'models/opt-relu-mini');
const LLAMA = join(ROOT, 'models/llama-relu-mini');

/** Asserts `fn` throws a CheckpointError whose message matches every pattern. */
function throwsCk(fn, ...patterns) {
  let err;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'expected an error');
  checkErr(err, patterns);
  return err;
}

async function rejectsCk(promise, ...patterns) {
  let err;
  try {
    const ck = await promise;
    ck?.close?.();
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'expected openHFCheckpoint to fail');
  checkErr(err, patterns);
  return err;
}

function checkErr(err, patterns) {
  assert.ok(err instanceof CheckpointError, `expected a CheckpointError, got ${err?.name}: ${err?.message}`);
  for (const p of patterns) {
    if (typeof p === 'string') assert.ok(err.message.includes(p), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(p)}`);
    else assert.match(err.message, p);
  }
}

const OPT_CFG = () => readJson(join(OPT, 'config.json'));
const LLAMA_CFG = () => readJson(join(LLAMA, 'config.json'));

after(() => cleanupTmp());

describe('import: real checkpoints', () => {
  it('opens opt-relu-mini (F16, 3 shards) with the right config', async () => {
    const ck = await openHFCheckpoint(OPT);
    try {
      const c = ck.config;
      assert.equal(c.architecture, 'OPTForCausalLM');
      assert.equal(c.arch, 'opt');
      assert.equal(c.hidden, 384);
      assert.equal(c.ffn, 1536);
      assert.equal(c.nLayers, 6);
      assert.equal(c.nHeads, 6);
      assert.equal(c.nKvHeads, 6);
      assert.equal(c.headDim, 64);
      assert.equal(c.vocab, 8192);
      assert.equal(c.maxPositions, 512);
      assert.equal(c.posOffset, 2);
      assert.equal(c.ropeTheta, 0);
      assert.equal(c.normEps, 1e-5);
      assert.equal(c.act, 'relu');
      assert.equal(c.tieWordEmbeddings, true);
      assert.equal(c.attnBias, true);
      assert.equal(c.mlpBias, true);
      assert.equal(c.hasGate, false);
      assert.equal(c.bosId, 2);
      assert.deepEqual(c.eosIds, [2]);
      assert.equal(c.padId, 1);
      assert.equal(ck.rawConfig.model_type, 'opt');
      assert.equal(ck.tensors.globals.lmHead, undefined);
      assert.deepEqual(ck.tensors.globals.posEmbed, { name: 'model.decoder.embed_positions.weight', shape: [514, 384] });
      assert.equal(ck.tensors.layers.length, 6);
      assert.equal(ck.tensors.layers[3].up.name, 'model.decoder.layers.3.fc1.weight');
      assert.equal(ck.tensors.layers[3].ln2W.name, 'model.decoder.layers.3.final_layer_norm.weight');
      assert.equal(ck.tensors.layers[3].o.name, 'model.decoder.layers.3.self_attn.out_proj.weight');
      assert.equal(ck.tensors.layers[3].gate, undefined);
      assert.ok(JSON.parse(ck.tokenizerJson).model);
      assert.equal(ck.tokenizerConfig?.model_type, 'opt');

      // Every required tensor: f16, and its bytes are exactly the file's bytes at offset.
      const specs = requiredTensors(ck.tensors);
      assert.equal(specs.length, 4 + 6 * 16);
      for (const s of specs) {
        const t = ck.tensor(s.name);
        assert.equal(t.dtype, 'f16');
        assert.deepEqual(t.shape, s.shape);
      }
      const t = ck.tensor('model.decoder.layers.5.fc2.weight');
      assert.equal(t.length, 384 * 1536 * 2);
      const bytes = ck.readTensor(t.name);
      const raw = readFileSync(t.file).subarray(t.offset, t.offset + t.length);
      assert.ok(Buffer.from(bytes).equals(raw));
      // Into a larger destination: the filled prefix is returned.
      const dst = new Uint8Array(t.length + 16);
      const got = ck.readTensor(t.name, dst);
      assert.equal(got.buffer, dst.buffer);
      assert.equal(got.length, t.length);
      assert.ok(Buffer.from(got).equals(raw));
      throwsCk(() => ck.readTensor(t.name, new Uint8Array(10)), 'too small', t.name);
      throwsCk(() => ck.tensor('nope.weight'), 'tensor "nope.weight" not found');
      // Layer-norm weights decode to finite values.
      const ln = ck.readTensor('model.decoder.final_layer_norm.weight');
      const f16 = new Uint16Array(ln.buffer, ln.byteOffset, ln.length / 2);
      for (const h of f16) assert.notEqual(h & 0x7c00, 0x7c00, 'non-finite f16');
    } finally {
      ck.close();
    }
    throwsCk(() => ck.readTensor('model.decoder.final_layer_norm.weight'), 'closed');
  });

  it('opens llama-relu-mini (BF16, 3 shards, GQA, rope_parameters) with the right config', async () => {
    const ck = await openHFCheckpoint(LLAMA);
    try {
      const c = ck.config;
      assert.equal(c.architecture, 'LlamaForCausalLM');
      assert.equal(c.arch, 'llama');
      assert.equal(c.hidden, 384);
      assert.equal(c.ffn, 1024);
      assert.equal(c.nLayers, 6);
      assert.equal(c.nHeads, 6);
      assert.equal(c.nKvHeads, 2);
      assert.equal(c.headDim, 64);
      assert.equal(c.ropeTheta, 10000);
      assert.equal(c.posOffset, 0);
      assert.equal(c.normEps, 1e-5);
      assert.equal(c.act, 'relu');
      assert.equal(c.tieWordEmbeddings, false);
      assert.equal(c.attnBias, false);
      assert.equal(c.mlpBias, false);
      assert.equal(c.hasGate, true);
      assert.equal(c.bosId, 0);
      assert.deepEqual(c.eosIds, [2]);
      assert.equal(c.padId, 1);
      const g = ck.tensors.globals;
      assert.deepEqual(g.lmHead, { name: 'lm_head.weight', shape: [8192, 384] });
      assert.equal(g.posEmbed, undefined);
      assert.equal(g.normB, undefined);
      const L = ck.tensors.layers[2];
      assert.deepEqual(L.k, { name: 'model.layers.2.self_attn.k_proj.weight', shape: [128, 384] });
      assert.deepEqual(L.q.shape, [384, 384]);
      assert.deepEqual(L.o.shape, [384, 384]);
      assert.deepEqual(L.gate, { name: 'model.layers.2.mlp.gate_proj.weight', shape: [1024, 384] });
      assert.deepEqual(L.down.shape, [384, 1024]);
      assert.equal(L.qB, undefined);
      for (const s of requiredTensors(ck.tensors)) assert.equal(ck.tensor(s.name).dtype, 'bf16');
      const t = ck.tensor('lm_head.weight');
      assert.match(t.file, /model-00003-of-00003\.safetensors$/);
      const raw = readFileSync(t.file).subarray(t.offset, t.offset + t.length);
      assert.ok(Buffer.from(ck.readTensor(t.name)).equals(raw));
      assert.equal(ck.tokenizerConfig?.model_type, 'llama');
    } finally {
      ck.close();
    }
  });
});

describe('import: synthetic checkpoints', () => {
  /** Writes a tiny single-file checkpoint from modelTensors(cfg) (F32 zeros unless overridden). */
  function synth(rawCfg, { extra = {}, prefix, drop = [] } = {}) {
    const dir = tmpDir('synth');
    writeFileSync(join(dir, 'config.json'), JSON.stringify(rawCfg));
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab: { a: 0, b: 1 }, merges: [] } }));
    const cfg = parseHFConfig(rawCfg);
    const tensors = {};
    for (const s of requiredTensors(modelTensors(cfg, prefix))) if (!drop.includes(s.name)) tensors[s.name] = { dtype: 'F32', shape: s.shape };
    Object.assign(tensors, extra);
    writeSafetensors(join(dir, 'model.safetensors'), tensors);
    return dir;
  }
  const tinyOpt = () => ({
    architectures: ['OPTForCausalLM'], activation_function: 'relu', hidden_size: 8, ffn_dim: 16, num_hidden_layers: 2,
    num_attention_heads: 2, vocab_size: 10, max_position_embeddings: 6, word_embed_proj_dim: 8, do_layer_norm_before: true,
  });
  const tinyLlama = () => ({
    architectures: ['LlamaForCausalLM'], hidden_act: 'silu', hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 10, max_position_embeddings: 16, rms_norm_eps: 1e-6,
    rope_theta: 500000, attention_bias: true, mlp_bias: true, eos_token_id: [2, 3],
  });

  it('opens a single-file OPT checkpoint; a shipped lm_head is ignored when tied; extra I8 tensors are fine', async () => {
    const dir = synth(tinyOpt(), {
      extra: { 'lm_head.weight': { dtype: 'F32', shape: [10, 8] }, 'some.quant.buffer': { dtype: 'I8', shape: [4] } },
    });
    const ck = await openHFCheckpoint(dir);
    try {
      assert.equal(ck.config.tieWordEmbeddings, true);
      assert.equal(ck.tensors.globals.lmHead, undefined);
      assert.equal(ck.tokenizerConfig, undefined);
      assert.deepEqual(ck.tensors.globals.posEmbed.shape, [8, 8]);
      assert.equal(ck.tensor('model.decoder.layers.1.fc2.bias').length, 8 * 4);
      throwsCk(() => ck.tensor('some.quant.buffer'), 'unsupported dtype I8 for tensor "some.quant.buffer"');
      throwsCk(() => ck.readTensor('some.quant.buffer'), 'unsupported dtype I8 for tensor "some.quant.buffer"');
    } finally {
      ck.close();
    }
  });

  it('accepts OPT checkpoints saved without the "model." prefix', async () => {
    const dir = synth(tinyOpt(), { prefix: 'decoder.' });
    const ck = await openHFCheckpoint(dir);
    try {
      assert.equal(ck.tensors.globals.tokEmbed.name, 'decoder.embed_tokens.weight');
      assert.equal(ck.tensors.layers[1].down.name, 'decoder.layers.1.fc2.weight');
    } finally {
      ck.close();
    }
  });

  it('opens a Llama checkpoint with biases, GQA and an explicit head_dim', async () => {
    const raw = { ...tinyLlama(), head_dim: 3 };
    const dir = synth(raw);
    const ck = await openHFCheckpoint(dir);
    try {
      const c = ck.config;
      assert.equal(c.act, 'silu');
      assert.equal(c.ropeTheta, 500000);
      assert.equal(c.headDim, 3);
      assert.deepEqual(c.eosIds, [2, 3]);
      assert.equal(c.padId, -1);
      const L = ck.tensors.layers[0];
      assert.deepEqual(L.q.shape, [12, 8]);
      assert.deepEqual(L.k.shape, [6, 8]);
      assert.deepEqual(L.o.shape, [8, 12]);
      assert.deepEqual(L.kB.shape, [6]);
      assert.deepEqual(L.oB.shape, [8]);
      assert.deepEqual(L.gateB.shape, [12]);
      assert.deepEqual(L.downB.shape, [8]);
    } finally {
      ck.close();
    }
  });

  it('rejects an untied Llama checkpoint without lm_head', async () => {
    const dir = synth(tinyLlama(), { drop: ['lm_head.weight'] });
    await rejectsCk(openHFCheckpoint(dir), 'tensor lm_head.weight (lmHead) is missing');
  });

  it('rejects a folder with neither model.safetensors nor an index', async () => {
    const dir = synth(tinyOpt());
    unlinkSync(join(dir, 'model.safetensors'));
    await rejectsCk(openHFCheckpoint(dir), 'no weights found', 'model.safetensors.index.json');
  });
});

describe('import: parseHFConfig', () => {
  it('rejects unknown architectures by name', () => {
    throwsCk(() => parseHFConfig({ ...OPT_CFG(), architectures: ['GPT2LMHeadModel'] }),
      /^unsupported architecture "GPT2LMHeadModel" \(supported: OPTForCausalLM, LlamaForCausalLM/);
  });
  it('rejects other activations', () => {
    throwsCk(() => parseHFConfig({ ...OPT_CFG(), activation_function: 'gelu' }), 'unsupported activation "gelu" for OPTForCausalLM (supported: relu)');
    throwsCk(() => parseHFConfig({ ...LLAMA_CFG(), hidden_act: 'gelu' }), 'unsupported activation "gelu" for LlamaForCausalLM');
    throwsCk(() => parseHFConfig({ ...LLAMA_CFG(), hidden_act: 'relu2' }), 'unsupported activation "relu2"');
    throwsCk(() => parseHFConfig({ ...LLAMA_CFG(), hidden_act: 'constructor' }), 'unsupported activation "constructor"');
    assert.equal(parseHFConfig({ ...LLAMA_CFG(), hidden_act: 'swish' }).act, 'silu');
    assert.equal(parseHFConfig({ ...LLAMA_CFG(), hidden_act: 'silu' }).act, 'silu');
  });
  it('rejects OPT variants the engine does not run', () => {
    throwsCk(() => parseHFConfig({ ...OPT_CFG(), do_layer_norm_before: false }), 'do_layer_norm_before=false', 'pre-LN');
    throwsCk(() => parseHFConfig({ ...OPT_CFG(), word_embed_proj_dim: 256 }), 'word_embed_proj_dim=256', 'project_in');
    throwsCk(() => parseHFConfig({ ...OPT_CFG(), _remove_final_layer_norm: true }), '_remove_final_layer_norm');
    throwsCk(() => parseHFConfig({ ...OPT_CFG(), num_attention_heads: 5 }), 'not divisible');
    const noBias = parseHFConfig({ ...OPT_CFG(), enable_bias: false, tie_word_embeddings: undefined });
    assert.equal(noBias.attnBias, false);
    assert.equal(noBias.mlpBias, false);
    assert.equal(noBias.tieWordEmbeddings, true);
    const mt = modelTensors(noBias);
    assert.equal(mt.layers[0].qB, undefined);
    assert.equal(mt.layers[0].upB, undefined);
    assert.ok(mt.layers[0].ln1B, 'layer norms keep their bias');
  });
  it('handles rope settings', () => {
    throwsCk(() => parseHFConfig({ ...LLAMA_CFG(), rope_parameters: { rope_type: 'llama3', rope_theta: 5e5, factor: 8 } }),
      'unsupported rope type "llama3"');
    throwsCk(() => parseHFConfig({ ...LLAMA_CFG(), rope_parameters: undefined, rope_scaling: { type: 'linear', factor: 2 } }),
      'unsupported rope type "linear"');
    const { rope_parameters, ...v4 } = LLAMA_CFG();
    assert.equal(parseHFConfig({ ...v4, rope_theta: 1e6, rope_scaling: null }).ropeTheta, 1e6);
    assert.equal(parseHFConfig(v4).ropeTheta, 10000);
    assert.equal(parseHFConfig({ ...v4, rope_scaling: { rope_type: 'default' } }).ropeTheta, 10000);
    assert.equal(parseHFConfig(LLAMA_CFG()).ropeTheta, 10000);
  });
  it('defaults GQA and head_dim, reads eos lists', () => {
    const { num_key_value_heads, head_dim, ...c } = LLAMA_CFG();
    const cfg = parseHFConfig({ ...c, eos_token_id: [2, 7, 2], tie_word_embeddings: undefined });
    assert.equal(cfg.nKvHeads, 6);
    assert.equal(cfg.headDim, 64);
    assert.deepEqual(cfg.eosIds, [2, 7]);
    assert.equal(cfg.tieWordEmbeddings, false);
    throwsCk(() => parseHFConfig({ ...LLAMA_CFG(), num_key_value_heads: 4 }), 'not a multiple');
    throwsCk(() => parseHFConfig({ ...LLAMA_CFG(), eos_token_id: 'x' }), '"eos_token_id"');
    throwsCk(() => parseHFConfig({ ...LLAMA_CFG(), hidden_size: -3 }), '"hidden_size" must be a positive integer');
    throwsCk(() => parseHFConfig({ ...LLAMA_CFG(), vocab_size: undefined }), 'missing "vocab_size"');
  });
  it('keeps a Mistral sliding window where it binds (shorter than the context), else none', () => {
    const m = { ...LLAMA_CFG(), architectures: ['MistralForCausalLM'], hidden_act: 'silu' };
    assert.equal(parseHFConfig({ ...m, sliding_window: 256 }).slidingWindow, 256);
    throwsCk(() => parseHFConfig({ ...m, sliding_window: -1 }), '"sliding_window"');
    assert.equal(parseHFConfig({ ...m, sliding_window: null }).arch, 'llama');
    assert.equal(parseHFConfig({ ...m, sliding_window: null }).slidingWindow, undefined);
    assert.equal(parseHFConfig({ ...m, sliding_window: m.max_position_embeddings }).slidingWindow, undefined);
    assert.equal(parseHFConfig({ ...m, sliding_window: 4096 }).architecture, 'MistralForCausalLM');
    assert.equal(parseHFConfig({ ...m, sliding_window: null, attention_bias: true }).attnBias, false);
  });
  it('rejects quantized checkpoints and non-objects; falls back on model_type', () => {
    throwsCk(() => parseHFConfig({ ...LLAMA_CFG(), quantization_config: { quant_method: 'gptq' } }), 'quantized', '"gptq"');
    throwsCk(() => parseHFConfig([]), 'must be a JSON object');
    throwsCk(() => parseHFConfig({ ...OPT_CFG(), architectures: 'OPTForCausalLM' }), '"architectures"');
    const { architectures, ...noArch } = OPT_CFG();
    assert.equal(parseHFConfig(noArch).architecture, 'OPTForCausalLM');
    throwsCk(() => parseHFConfig({ ...noArch, model_type: 'gpt2' }), 'no "architectures"');
  });
});

describe('import: safetensors parsing (in memory)', () => {
  const parse = (bytes) => parseSafetensorsHeader(bytesFile(bytes), 'x.safetensors');
  const ok = () => encodeSafetensors({ a: { dtype: 'F32', shape: [2, 2] }, b: { dtype: 'F16', shape: [3] } });

  it('parses a valid file', () => {
    const h = parse(ok());
    assert.deepEqual([...h.tensors.keys()], ['a', 'b']);
    const b = h.tensors.get('b');
    assert.equal(b.offset, h.dataStart + 16);
    assert.equal(b.length, 6);
    assert.deepEqual(h.metadata, { format: 'pt' });
    const f = bytesFile(ok());
    assert.equal(readTensorBytes(f, h.tensors.get('a')).length, 16);
  });
  it('rejects tiny files and bad header lengths', () => {
    throwsCk(() => parse(new Uint8Array(5)), 'x.safetensors', 'too small');
    const bytes = ok();
    bytes.writeBigUInt64LE(10n ** 12n, 0);
    throwsCk(() => parse(bytes), 'absurd');
    bytes.writeBigUInt64LE(BigInt(bytes.length), 0);
    throwsCk(() => parse(bytes), 'runs past the end of the file');
  });
  it('rejects headers that are not JSON objects', () => {
    throwsCk(() => parse(encodeRawSafetensors('{"a": ')), 'not valid JSON');
    throwsCk(() => parse(encodeRawSafetensors('[1,2]')), 'must be a JSON object', 'array');
    throwsCk(() => parse(encodeRawSafetensors('null')), 'must be a JSON object');
    const bad = encodeRawSafetensors('{"a":1}');
    bad[10] = 0xff;
    throwsCk(() => parse(bad), 'UTF-8');
    throwsCk(() => parse(encodeRawSafetensors({ a: 3 })), 'tensor "a": entry must be an object');
  });
  it('rejects bad dtypes, shapes and offsets', () => {
    const h = (entry) => encodeRawSafetensors({ t: entry }, new Uint8Array(64));
    throwsCk(() => parse(h({ dtype: 'Q4', shape: [4], data_offsets: [0, 4] })), 'unsupported dtype "Q4" for tensor "t"');
    throwsCk(() => parse(h({ dtype: 7, shape: [4], data_offsets: [0, 4] })), '"dtype" must be a string');
    throwsCk(() => parse(h({ dtype: 'F32', shape: [-1], data_offsets: [0, 4] })), '"shape" must be an array of non-negative integers');
    throwsCk(() => parse(h({ dtype: 'F32', shape: 4, data_offsets: [0, 16] })), '"shape"');
    for (const off of [[0], [0, 4, 8], [-4, 0], [0.5, 4], [8, 4], ['0', '4'], null]) {
      throwsCk(() => parse(h({ dtype: 'F32', shape: [1], data_offsets: off })), 'tensor "t"', '"data_offsets" must be two non-negative integers');
    }
    throwsCk(() => parse(h({ dtype: 'F32', shape: [4], data_offsets: [60, 76] })),
      'tensor "t": tensor data is not within the file bounds, model is corrupted or incomplete');
    throwsCk(() => parse(h({ dtype: 'F32', shape: [4], data_offsets: [0, 8] })), 'byte length 8 does not match shape [4]');
    throwsCk(() => parse(h({ dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] })), 'does not match shape');
    // Known but unsupported dtypes parse; reading them is refused.
    const parsed = parse(encodeRawSafetensors({ t: { dtype: 'F64', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(16)));
    assert.equal(parsed.tensors.get('t').dtype, null);
    throwsCk(() => readTensorBytes(bytesFile(new Uint8Array(0)), parsed.tensors.get('t')), 'unsupported dtype F64 for tensor "t"');
  });
  it('rejects overlapping tensors and gaps, allows empty tensors', () => {
    throwsCk(() => parse(encodeRawSafetensors({
      a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
      b: { dtype: 'F32', shape: [2], data_offsets: [12, 20] },
    }, new Uint8Array(32))), 'tensors "a" and "b" overlap');
    throwsCk(() => parse(encodeRawSafetensors({
      big: { dtype: 'F32', shape: [8], data_offsets: [0, 32] },
      small: { dtype: 'F32', shape: [1], data_offsets: [20, 24] },
    }, new Uint8Array(32))), 'overlap');
    const h = parse(encodeRawSafetensors({
      e: { dtype: 'F32', shape: [0, 3], data_offsets: [4, 4] },
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      c: { dtype: 'BF16', shape: [2], data_offsets: [4, 8] },
    }, new Uint8Array(8)));
    assert.equal(h.tensors.size, 3);
    // The tensors tile the data region: a gap, or bytes after the last, shift nothing silently.
    throwsCk(() => parse(encodeRawSafetensors({
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      c: { dtype: 'BF16', shape: [2], data_offsets: [8, 12] },
    }, new Uint8Array(12))), 'belong to no tensor');
    throwsCk(() => parse(encodeRawSafetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(8))), 'tile the data region');
  });
  it('never throws anything but CheckpointError on corrupted headers', () => {
    const base = ok();
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    let parsed = 0;
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.from(base);
      const flips = 1 + Math.floor(rnd() * 3);
      for (let k = 0; k < flips; k++) b[Math.floor(rnd() * (8 + Number(base.readBigUInt64LE(0))))] = Math.floor(rnd() * 256);
      const cut = rnd() < 0.2 ? Math.floor(rnd() * b.length) : b.length;
      try {
        const h = parse(b.subarray(0, cut));
        for (const t of h.tensors.values()) if (t.dtype) readTensorBytes(bytesFile(b.subarray(0, cut)), t);
        parsed++;
      } catch (e) {
        assert.ok(e instanceof CheckpointError, `unexpected ${e?.name}: ${e?.message}`);
      }
    }
    assert.ok(parsed > 0);
  });
});

describe('import: hostile checkpoint folders', () => {
  const OPT_S1 = 'model-00001-of-00003.safetensors';
  const OPT_S2 = 'model-00002-of-00003.safetensors';

  it('truncated in the header', async () => {
    const dir = copyModel(OPT);
    truncateFile(join(dir, OPT_S1), 100);
    await rejectsCk(openHFCheckpoint(dir), OPT_S1, 'header length 3368 runs past the end of the file (file is 100 bytes)');
    truncateFile(join(dir, OPT_S1), 5);
    await rejectsCk(openHFCheckpoint(dir), OPT_S1, 'too small');
  });

  it('truncated in the data', async () => {
    const dir = copyModel(OPT);
    truncateFile(join(dir, OPT_S2), -1000);
    await rejectsCk(openHFCheckpoint(dir), OPT_S2, 'tensor data is not within the file bounds, model is corrupted or incomplete');
  });

  it('header length past the end of the file, or absurd', async () => {
    const dir = copyModel(OPT);
    const p = join(dir, OPT_S2);
    setHeaderLength(p, statSync(p).size + 10);
    await rejectsCk(openHFCheckpoint(dir), OPT_S2, 'runs past the end of the file');
    setHeaderLength(p, 2n ** 63n);
    await rejectsCk(openHFCheckpoint(dir), OPT_S2, 'absurd');
  });

  it('header that is not JSON', async () => {
    const dir = copyModel(LLAMA);
    const p = join(dir, 'model-00002-of-00003.safetensors');
    const b = readFileSync(p);
    b[8] = 0x5b; // '{' → '['
    writeFileSync(p, b);
    await rejectsCk(openHFCheckpoint(dir), 'model-00002-of-00003.safetensors', 'header is not valid JSON');
  });

  it('tensor offsets out of range', async () => {
    const dir = copyModel(OPT);
    const name = 'model.decoder.layers.1.fc1.weight';
    const p = shardOf(dir, name);
    const { data } = readSafetensors(p);
    patchHeader(p, (h) => {
      const [b, e] = h[name].data_offsets;
      h[name].data_offsets = [data.length - (e - b) + 2, data.length + 2];
    });
    await rejectsCk(openHFCheckpoint(dir), OPT_S2, `tensor "${name}": tensor data is not within the file bounds`);
  });

  it('overlapping tensors', async () => {
    const dir = copyModel(OPT);
    const p = join(dir, OPT_S2);
    // Two tensors of the same shape in the same shard: b is moved to start 2 bytes into a.
    const names = Object.keys(readSafetensors(p).header).filter((n) => n.endsWith('layer_norm.bias'));
    const [a, b] = names;
    assert.ok(a && b);
    patchHeader(p, (h) => {
      assert.deepEqual(h[a].shape, h[b].shape);
      h[b].data_offsets = [h[a].data_offsets[0] + 2, h[a].data_offsets[1] + 2];
    });
    await rejectsCk(openHFCheckpoint(dir), OPT_S2, 'overlap', a, b);
  });

  it('wrong dtype for a required tensor', async () => {
    const dir = copyModel(OPT);
    const name = 'model.decoder.layers.1.fc1.bias';
    patchHeader(shardOf(dir, name), (h) => {
      const [b] = h[name].data_offsets;
      h[name] = { dtype: 'I8', shape: [3072], data_offsets: [b, b + 3072] };
    });
    await rejectsCk(openHFCheckpoint(dir), `tensor ${name} has dtype I8, supported: F32, F16, BF16`);
  });

  it('wrong shape for a required tensor', async () => {
    const dir = copyModel(LLAMA);
    const name = 'model.layers.4.self_attn.k_proj.weight';
    patchHeader(shardOf(dir, name), (h) => {
      h[name].shape = [384, 128];
    });
    await rejectsCk(openHFCheckpoint(dir), `tensor ${name} has shape [384,128], expected [128,384]`);
  });

  it('shape inconsistent with its byte length', async () => {
    const dir = copyModel(LLAMA);
    const name = 'model.layers.4.self_attn.k_proj.weight';
    patchHeader(shardOf(dir, name), (h) => {
      h[name].shape = [129, 384];
    });
    await rejectsCk(openHFCheckpoint(dir), `tensor "${name}"`, 'does not match shape [129,384] × BF16');
  });

  it('missing shard file', async () => {
    const dir = copyModel(OPT, { skip: ['model-00003-of-00003.safetensors'] });
    await rejectsCk(openHFCheckpoint(dir), 'missing shard file', 'model-00003-of-00003.safetensors');
  });

  it('tensor listed in the index but absent from its shard', async () => {
    const dir = copyModel(LLAMA);
    patchJson(join(dir, 'model.safetensors.index.json'), (j) => {
      j.weight_map['model.layers.0.mlp.up_proj.weight'] = 'model-00003-of-00003.safetensors';
    });
    await rejectsCk(openHFCheckpoint(dir), 'tensor "model.layers.0.mlp.up_proj.weight" is listed in', 'does not contain it');
  });

  it('required tensor missing from the index', async () => {
    const dir = copyModel(LLAMA);
    patchJson(join(dir, 'model.safetensors.index.json'), (j) => {
      delete j.weight_map['model.layers.5.mlp.gate_proj.weight'];
    });
    await rejectsCk(openHFCheckpoint(dir), 'tensor model.layers.5.mlp.gate_proj.weight (layers.5.gate) is missing');
  });

  it('path traversal in shard names', async () => {
    const dir = copyModel(OPT);
    const outside = tmpDir('outside');
    writeSafetensors(join(outside, 'x.safetensors'), { 'model.decoder.embed_tokens.weight': { dtype: 'F16', shape: [8192, 384] } });
    const rel = join('..', outside.split(/[\\/]/).pop(), 'x.safetensors');
    for (const bad of [rel, '../x.safetensors', join(outside, 'x.safetensors'), 'a/../../x.safetensors']) {
      patchJson(join(dir, 'model.safetensors.index.json'), (j) => {
        j.weight_map['model.decoder.embed_tokens.weight'] = bad;
      });
      await rejectsCk(openHFCheckpoint(dir), 'path traversal', 'model.decoder.embed_tokens.weight');
    }
  });

  it('malformed index', async () => {
    const dir = copyModel(OPT);
    const idx = join(dir, 'model.safetensors.index.json');
    patchJson(idx, (j) => ({ ...j, weight_map: [] }));
    await rejectsCk(openHFCheckpoint(dir), '"weight_map" must be an object');
    writeFileSync(idx, '{"weight_map": {');
    await rejectsCk(openHFCheckpoint(dir), 'model.safetensors.index.json', 'not valid JSON');
  });

  it('unknown architecture', async () => {
    const dir = copyModel(OPT);
    patchJson(join(dir, 'config.json'), (j) => {
      j.architectures = ['GPT2LMHeadModel'];
    });
    await rejectsCk(openHFCheckpoint(dir), 'config.json', 'unsupported architecture "GPT2LMHeadModel" (supported: OPTForCausalLM, LlamaForCausalLM');
  });

  it('unknown activation', async () => {
    const dir = copyModel(OPT);
    patchJson(join(dir, 'config.json'), (j) => {
      j.activation_function = 'gelu';
    });
    await rejectsCk(openHFCheckpoint(dir), 'unsupported activation "gelu" for OPTForCausalLM (supported: relu)');
  });

  it('unsupported rope type', async () => {
    const dir = copyModel(LLAMA);
    patchJson(join(dir, 'config.json'), (j) => {
      j.rope_parameters = { rope_type: 'yarn', rope_theta: 10000, factor: 4 };
    });
    await rejectsCk(openHFCheckpoint(dir), 'unsupported rope type "yarn"', 'LlamaForCausalLM');
  });

  it('config shape disagreeing with the weights', async () => {
    const dir = copyModel(OPT);
    patchJson(join(dir, 'config.json'), (j) => {
      j.ffn_dim = 2048;
    });
    await rejectsCk(openHFCheckpoint(dir), 'tensor model.decoder.layers.0.fc1.weight has shape [1536,384], expected [2048,384]');
  });

  it('missing or broken config.json / tokenizer files', async () => {
    const dir = copyModel(OPT, { skip: ['config.json'] });
    await rejectsCk(openHFCheckpoint(dir), 'missing config.json');
    writeFileSync(join(dir, 'config.json'), 'not json');
    await rejectsCk(openHFCheckpoint(dir), 'config.json', 'not valid JSON');
    writeFileSync(join(dir, 'config.json'), readFileSync(join(OPT, 'config.json')));
    rmSync(join(dir, 'tokenizer.json'));
    await rejectsCk(openHFCheckpoint(dir), 'missing tokenizer.json');
    mkdirSync(join(dir, 'tokenizer.json'));
    await rejectsCk(openHFCheckpoint(dir), 'tokenizer.json', 'directory');
    rmSync(join(dir, 'tokenizer.json'), { recursive: true });
    writeFileSync(join(dir, 'tokenizer.json'), readFileSync(join(OPT, 'tokenizer.json')));
    writeFileSync(join(dir, 'tokenizer_config.json'), '{');
    await rejectsCk(openHFCheckpoint(dir), 'tokenizer_config.json', 'not valid JSON');
    rmSync(join(dir, 'tokenizer_config.json'));
    const ck = await openHFCheckpoint(dir);
    assert.equal(ck.tokenizerConfig, undefined);
    ck.close();
    await rejectsCk(openHFCheckpoint(join(dir, 'nope')), 'does not exist');
    await rejectsCk(openHFCheckpoint(join(dir, 'config.json')), 'not a directory');
  });

  it('openSafetensors names the file', () => {
    const dir = tmpDir('st');
    throwsCk(() => openSafetensors(join(dir, 'missing.safetensors')), 'missing.safetensors', 'not found');
    const p = join(dir, 'ok.safetensors');
    writeSafetensors(p, { w: { dtype: 'BF16', shape: [2, 3], data: new Uint16Array([1, 2, 3, 4, 5, 6]) } });
    const f = openSafetensors(p);
    try {
      assert.deepEqual([...f.readTensor('w')], [1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0]);
      assert.equal(f.tensor('w').dtype, 'bf16');
    } finally {
      f.close();
    }
  });
});
