// Hugging Face config.json → ModelConfig: each architecture's keys, read as transformers (or,
// for architectures that ship their own code, that code) reads them. Custom class names map to
// what they compute only when their keys say so; anything the engine does not compute is a
// one-line CheckpointError naming the key and its value.

import type { Activation, ModelConfig, RopeScaling } from './config.js';
import { CheckpointError } from './safetensors.js';
import { LIMITS } from './check.js';

export const SUPPORTED_ARCHITECTURES = [
  'OPTForCausalLM', 'LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'SparseLlamaForCausalLM', 'BambooForCausalLM', 'FalconForCausalLM', 'PhiForCausalLM',
] as const;

/** Architecture a bare `model_type` implies when `architectures` is absent. */
const MODEL_TYPE_ARCH: Record<string, string> = {
  opt: 'OPTForCausalLM',
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  sparsellama: 'SparseLlamaForCausalLM',
  bamboo: 'BambooForCausalLM',
  falcon: 'FalconForCausalLM',
  phi: 'PhiForCausalLM',
};

/** The model_type the classes that ship their own code (auto_map) declare; another one is a different model. */
const CUSTOM_MODEL_TYPE: Record<string, string> = { SparseLlamaForCausalLM: 'sparsellama', BambooForCausalLM: 'bamboo', PhiForCausalLM: 'phi' };

/**
 * Activations whose transformers implementations are identical to ours
 * (ACT2FN: "relu" → nn.ReLU; "silu" and "swish" → SiLU). "relu2", "relu6", "leaky_relu", gelu
 * variants etc. are different functions and are rejected.
 */
const LLAMA_ACTS: Record<string, Activation> = { relu: 'relu', silu: 'silu', swish: 'silu' };
/** Phi-2's MLP: fc2(act(fc1 x)); gelu_new and gelu_pytorch_tanh are the same tanh approximation. */
const PHI_ACTS: Record<string, Activation> = { relu: 'relu', gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh' };

const unsupported = (msg: string) => new CheckpointError(msg, { file: 'config.json' });
const cfgErr = (msg: string) => new CheckpointError(`config.json: ${msg}`, { file: 'config.json' });
const show = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v));
const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/** Upper limit of a count key (check.ts LIMITS): it bounds the loops and allocations it drives. */
const KEY_LIMIT: Record<string, number> = {
  num_hidden_layers: LIMITS.layers, n_layer: LIMITS.layers, vocab_size: LIMITS.vocab, max_position_embeddings: LIMITS.context,
  num_attention_heads: LIMITS.heads, n_head: LIMITS.heads, num_key_value_heads: LIMITS.heads, num_kv_heads: LIMITS.heads, n_head_kv: LIMITS.heads,
};

function posInt(j: any, key: string, def?: number): number {
  const v = j[key] ?? def, max = KEY_LIMIT[key] ?? LIMITS.dim;
  if (v === undefined) throw cfgErr(`missing "${key}"`);
  if (!Number.isSafeInteger(v) || v <= 0 || v > max) throw cfgErr(`"${key}" must be a positive integer up to ${max}, got ${show(j[key] ?? v)}`);
  return v;
}

/** A positive number of at most `max` (an epsilon: at most 1). */
function posNum(j: any, key: string, def: number, max = 1): number {
  const v = j[key] ?? def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > max) throw cfgErr(`"${key}" must be a positive number up to ${max}, got ${show(j[key])}`);
  return v;
}

function bool(j: any, key: string, def: boolean): boolean {
  const v = j[key] ?? def;
  if (typeof v !== 'boolean') throw cfgErr(`"${key}" must be true or false, got ${show(j[key])}`);
  return v;
}

/** A token id: non-negative integer; null/absent → `def`. */
function tokenId(j: any, key: string, def: number): number {
  const v = j[key];
  if (v === undefined || v === null) return def;
  if (!Number.isSafeInteger(v) || v < 0) throw cfgErr(`"${key}" must be a non-negative integer token id, got ${show(v)}`);
  return v;
}

function eosIds(j: any, def: number[]): number[] {
  const v = j.eos_token_id;
  if (v === undefined || v === null) return def;
  const list = Array.isArray(v) ? v : [v];
  for (const x of list) {
    if (!Number.isSafeInteger(x) || x < 0) throw cfgErr(`"eos_token_id" must be a token id or a list of token ids, got ${show(v)}`);
  }
  return [...new Set<number>(list)];
}

/** The architecture named by config.json. */
function architectureOf(j: any): string {
  const a = j.architectures;
  if (a !== undefined && a !== null) {
    if (!Array.isArray(a) || a.length === 0 || !a.every((x) => typeof x === 'string')) {
      throw cfgErr(`"architectures" must be a non-empty list of class names, got ${show(a)}`);
    }
    return a[0];
  }
  const mt = j.model_type;
  if (typeof mt === 'string' && MODEL_TYPE_ARCH[mt]) return MODEL_TYPE_ARCH[mt];
  throw cfgErr(`no "architectures" (and model_type ${show(mt)} is not one of ${Object.keys(MODEL_TYPE_ARCH).join(', ')})`);
}

/**
 * Parses a config.json object. Throws a CheckpointError naming exactly what is unsupported
 * (architecture, activation, rope type, post-LN OPT, ...) or malformed.
 */
export function parseHFConfig(json: any): ModelConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw cfgErr('must be a JSON object');
  const architecture = architectureOf(json);
  if (json.quantization_config != null) {
    const m = json.quantization_config?.quant_method;
    throw unsupported(
      `unsupported quantized checkpoint${typeof m === 'string' ? ` (quant_method "${m}")` : ''} for ${architecture}: only unquantized F32/F16/BF16 weights are supported`,
    );
  }
  const mt = CUSTOM_MODEL_TYPE[architecture];
  if (mt && json.model_type != null && json.model_type !== mt) {
    throw unsupported(`unsupported model_type ${show(json.model_type)} for ${architecture} (expected "${mt}")`);
  }
  const cfg = parseArchitecture(json, architecture);
  // The attention width is heads × head dim (head_dim may be given apart from hidden_size).
  if (cfg.nHeads * cfg.headDim > LIMITS.dim) throw cfgErr(`${cfg.nHeads} heads of ${cfg.headDim} dimensions exceed ${LIMITS.dim}`);
  return cfg;
}

function parseArchitecture(json: any, architecture: string): ModelConfig {
  switch (architecture) {
    case 'OPTForCausalLM':
      return parseOPT(json, architecture);
    case 'LlamaForCausalLM':
    case 'MistralForCausalLM':
    case 'Qwen2ForCausalLM':
    case 'SparseLlamaForCausalLM':
    case 'BambooForCausalLM':
      return parseLlama(json, architecture);
    case 'FalconForCausalLM':
      return parseFalcon(json, architecture);
    case 'PhiForCausalLM':
      return parsePhi(json, architecture);
    default:
      throw unsupported(`unsupported architecture "${architecture}" (supported: ${SUPPORTED_ARCHITECTURES.join(', ')})`);
  }
}

function parseOPT(j: any, architecture: string): ModelConfig {
  const act = j.activation_function ?? 'relu';
  if (act !== 'relu') throw unsupported(`unsupported activation ${show(act)} for ${architecture} (supported: relu)`);
  if ((j.do_layer_norm_before ?? true) !== true) {
    throw unsupported(`unsupported do_layer_norm_before=${show(j.do_layer_norm_before)} for ${architecture}: only pre-LN OPT (do_layer_norm_before=true) is supported`);
  }
  if (j._remove_final_layer_norm === true) {
    throw unsupported(`unsupported _remove_final_layer_norm=true for ${architecture}: the final layer norm is required`);
  }
  if ((j.layer_norm_elementwise_affine ?? true) !== true) {
    throw unsupported(`unsupported layer_norm_elementwise_affine=${show(j.layer_norm_elementwise_affine)} for ${architecture}: layer norms must have weight and bias`);
  }
  const hidden = posInt(j, 'hidden_size');
  const proj = j.word_embed_proj_dim ?? hidden;
  if (proj !== hidden) {
    throw unsupported(`unsupported word_embed_proj_dim=${show(proj)} != hidden_size=${hidden} for ${architecture} (project_in/project_out are not supported)`);
  }
  const nHeads = posInt(j, 'num_attention_heads');
  if (hidden % nHeads !== 0) throw cfgErr(`hidden_size ${hidden} is not divisible by num_attention_heads ${nHeads}`);
  const bias = bool(j, 'enable_bias', true);
  const eos = eosIds(j, [2]);
  return {
    architecture,
    arch: 'opt',
    nLayers: posInt(j, 'num_hidden_layers'),
    hidden,
    ffn: posInt(j, 'ffn_dim'),
    nHeads,
    nKvHeads: nHeads,
    headDim: hidden / nHeads,
    vocab: posInt(j, 'vocab_size'),
    maxPositions: posInt(j, 'max_position_embeddings', 2048),
    normEps: 1e-5,
    act: 'relu',
    ropeTheta: 0,
    posOffset: 2,
    tieWordEmbeddings: bool(j, 'tie_word_embeddings', true),
    attnBias: bias,
    mlpBias: bias,
    hasGate: false,
    bosId: tokenId(j, 'bos_token_id', 2),
    eosIds: eos,
    padId: tokenId(j, 'pad_token_id', 1),
  };
}

/** Keys a rope_scaling / rope_parameters object may hold, by rope type. */
const ROPE_KEYS: Record<string, string[]> = {
  default: ['rope_type', 'type', 'rope_theta', 'partial_rotary_factor'],
  llama3: ['rope_type', 'type', 'rope_theta', 'partial_rotary_factor', 'factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'],
};

/**
 * RoPE from transformers v5 `rope_parameters` or v4 `rope_theta` + `rope_scaling`: θ, the
 * partial rotary factor when one is given there, and HF's llama3 scaling where `llama3` allows it.
 * Other rope types, and keys the type does not have, are refused by name.
 */
function parseRope(j: any, architecture: string, llama3: boolean): { theta: number; partial?: number; scaling?: RopeScaling } {
  let theta: unknown = j.rope_theta;
  let partial: unknown;
  let scaling: RopeScaling | undefined;
  const supported = llama3 ? 'default, llama3' : 'default';
  for (const key of ['rope_parameters', 'rope_scaling']) {
    const o = j[key];
    if (o === undefined || o === null) continue;
    if (typeof o !== 'object' || Array.isArray(o)) throw cfgErr(`"${key}" must be an object or null, got ${show(o)}`);
    const t0 = o.rope_type ?? o.type ?? 'default';
    const t = typeof t0 === 'string' ? t0 : show(t0);
    if (!has(ROPE_KEYS, t) || (t === 'llama3' && !llama3)) throw unsupported(`unsupported rope type "${t}" (${key}) for ${architecture} (supported: ${supported})`);
    for (const k of Object.keys(o)) {
      if (!ROPE_KEYS[t].includes(k)) throw unsupported(`unsupported ${key} key "${k}" = ${show(o[k])} for ${architecture} (rope type "${t}")`);
    }
    if (t === 'llama3') {
      const num = (k: string) => {
        const v = o[k];
        if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
          throw unsupported(`unsupported rope type "llama3" (${key}) for ${architecture}: "${k}" must be a positive number, got ${show(v)}`);
        }
        return v;
      };
      scaling = { type: 'llama3', factor: num('factor'), lowFreqFactor: num('low_freq_factor'), highFreqFactor: num('high_freq_factor'),
        originalMaxPositions: num('original_max_position_embeddings') };
      if (!(scaling.highFreqFactor > scaling.lowFreqFactor)) {
        throw unsupported(`unsupported rope type "llama3" (${key}) for ${architecture}: high_freq_factor ${scaling.highFreqFactor} must exceed low_freq_factor ${scaling.lowFreqFactor}`);
      }
    }
    if (o.partial_rotary_factor != null) partial = o.partial_rotary_factor;
    if (o.rope_theta != null) theta = o.rope_theta;
  }
  theta ??= 10000;
  if (typeof theta !== 'number' || !Number.isFinite(theta) || theta <= 0) throw cfgErr(`rope_theta must be a positive number, got ${show(theta)}`);
  if (partial !== undefined && (typeof partial !== 'number' || !(partial > 0 && partial <= 1))) {
    throw cfgErr(`"partial_rotary_factor" must be a number in (0, 1], got ${show(partial)}`);
  }
  return { theta, ...(partial !== undefined ? { partial: partial as number } : {}), ...(scaling ? { scaling } : {}) };
}

/** Mistral-style `sliding_window`: the window when it can bind (shorter than the context), else undefined. */
function slidingWindow(j: any, maxPositions: number): number | undefined {
  const sw = j.sliding_window;
  if (sw === undefined || sw === null || sw === 0) return undefined;
  if (!Number.isSafeInteger(sw) || sw < 0) throw cfgErr(`"sliding_window" must be a non-negative integer or null, got ${show(sw)}`);
  return sw < maxPositions ? sw : undefined;
}

/** Mistral-style window keys as Qwen2 reads them: layers from max_window_layers on (or as layer_types says) get it when use_sliding_window. */
function qwen2Window(j: any, architecture: string, nLayers: number, maxPositions: number): number | undefined {
  if (!bool(j, 'use_sliding_window', false)) return undefined;
  const sw = slidingWindow(j, maxPositions);
  if (sw === undefined) return undefined;
  const types = j.layer_types;
  let windowed: boolean[];
  if (types != null) {
    if (!Array.isArray(types) || types.length !== nLayers || !types.every((t) => t === 'full_attention' || t === 'sliding_attention')) {
      throw cfgErr(`"layer_types" must list "full_attention" or "sliding_attention" for each of the ${nLayers} layers, got ${show(types)}`);
    }
    windowed = types.map((t: string) => t === 'sliding_attention');
  } else {
    const from = j.max_window_layers ?? 28;
    if (!Number.isSafeInteger(from) || from < 0) throw cfgErr(`"max_window_layers" must be a non-negative integer, got ${show(j.max_window_layers)}`);
    windowed = Array.from({ length: nLayers }, (_, l) => l >= from);
  }
  if (windowed.every((w) => !w)) return undefined;
  if (windowed.every((w) => w)) return sw;
  const first = windowed.indexOf(true);
  throw unsupported(`unsupported use_sliding_window=true for ${architecture}: a ${sw}-token window on some layers only (layer ${first} on); supported: on every layer or none`);
}

/**
 * The Llama family: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (q, k, v with biases,
 * o_proj without, whatever attention_bias says), ProSparse's SparseLlamaForCausalLM
 * (hidden_act "fatrelu" with hidden_act_param t: gate if gate >= t else 0) and TurboSparse's
 * BambooForCausalLM (Mistral with act(gate) * act(up), act = relu: dReLU).
 */
function parseLlama(j: any, architecture: string): ModelConfig {
  const actName = j.hidden_act ?? 'silu';
  let act: Activation | undefined = typeof actName === 'string' && has(LLAMA_ACTS, actName) ? LLAMA_ACTS[actName] : undefined;
  let actParam: number | undefined;
  if (architecture === 'SparseLlamaForCausalLM' && actName === 'fatrelu') {
    const t = j.hidden_act_param;
    if (typeof t !== 'number' || !Number.isFinite(t)) throw cfgErr(`"hidden_act_param" (the FATReLU threshold) must be a number, got ${show(t)}`);
    act = 'fatrelu';
    actParam = t;
  }
  if (architecture === 'BambooForCausalLM') {
    // Bamboo's MLP applies hidden_act to the gate and to up: only relu (dReLU) is a ReLU pair we compute.
    act = typeof actName === 'string' && (actName === 'relu' || actName.toLowerCase() === 'drelu') ? 'drelu' : undefined;
    if (!act) throw unsupported(`unsupported activation ${show(actName)} for ${architecture} (supported: relu, i.e. dReLU: relu(gate) * relu(up))`);
  }
  if (!act) {
    const list = architecture === 'SparseLlamaForCausalLM' ? 'fatrelu, relu, silu, swish' : 'relu, silu, swish';
    throw unsupported(`unsupported activation ${show(actName)} for ${architecture} (supported: ${list})`);
  }
  const hidden = posInt(j, 'hidden_size');
  const nHeads = posInt(j, 'num_attention_heads');
  const nKvHeads = posInt(j, 'num_key_value_heads', nHeads);
  if (nHeads % nKvHeads !== 0) throw cfgErr(`num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`);
  if (j.head_dim == null && hidden % nHeads !== 0) throw cfgErr(`hidden_size ${hidden} is not divisible by num_attention_heads ${nHeads} and no head_dim is given`);
  const headDim = posInt(j, 'head_dim', hidden / nHeads);
  const mistral = architecture === 'MistralForCausalLM' || architecture === 'BambooForCausalLM';
  const qwen2 = architecture === 'Qwen2ForCausalLM';
  if (qwen2 && j.use_mrope === true) throw unsupported(`unsupported use_mrope=true for ${architecture} (multimodal rotary sections)`);
  const maxPositions = posInt(j, 'max_position_embeddings', mistral ? 4096 * 32 : qwen2 ? 32768 : 2048);
  const rope = parseRope(j, architecture, true);
  if (rope.partial !== undefined && rope.partial !== 1) {
    throw unsupported(`unsupported partial_rotary_factor ${show(rope.partial)} for ${architecture} (supported: 1)`);
  }
  // Mistral's projections never have biases; a sliding window that can bind changes attention.
  const nLayers = posInt(j, 'num_hidden_layers');
  const sw = mistral ? slidingWindow(j, maxPositions) : qwen2 ? qwen2Window(j, architecture, nLayers, maxPositions) : undefined;
  return {
    architecture,
    arch: 'llama',
    nLayers,
    hidden,
    ffn: posInt(j, 'intermediate_size'),
    nHeads,
    nKvHeads,
    headDim,
    vocab: posInt(j, 'vocab_size'),
    maxPositions,
    normEps: posNum(j, 'rms_norm_eps', 1e-6),
    act,
    ropeTheta: rope.theta,
    posOffset: 0,
    tieWordEmbeddings: bool(j, 'tie_word_embeddings', false),
    attnBias: qwen2 ? true : mistral ? false : bool(j, 'attention_bias', false),
    ...(qwen2 ? { attnOutBias: false } : {}),
    mlpBias: mistral || qwen2 ? false : bool(j, 'mlp_bias', false),
    hasGate: true,
    bosId: tokenId(j, 'bos_token_id', qwen2 ? -1 : 1),
    eosIds: eosIds(j, [2]),
    padId: tokenId(j, 'pad_token_id', -1),
    ...(actParam !== undefined ? { actParam } : {}),
    ...(sw !== undefined ? { slidingWindow: sw } : {}),
    ...(rope.scaling ? { ropeScaling: rope.scaling } : {}),
  };
}

/** posInt of `key`, or of its legacy RefinedWeb spelling `alias` when only that is present. */
const posIntOr = (j: any, key: string, alias: string, def: number) => (j[key] == null && j[alias] != null ? posInt(j, alias) : posInt(j, key, def));

/**
 * FalconForCausalLM: 7B's "RW" layout (one input_layernorm, multi-query, parallel attention)
 * and 40B/180B's new_decoder_architecture (ln_attn + ln_mlp, grouped KV); LayerNorm with bias,
 * rotary (rotate_half), biases per the `bias` key, MLP dense_4h_to_h(act(dense_h_to_4h x)).
 */
function parseFalcon(j: any, architecture: string): ModelConfig {
  if (j.alibi === true) throw unsupported(`unsupported alibi=true for ${architecture}: ALiBi attention is not supported (rotary only)`);
  if (j.apply_residual_connection_post_layernorm === true) {
    throw unsupported(`unsupported apply_residual_connection_post_layernorm=true for ${architecture} (the residual must be the block input)`);
  }
  const act = j.activation ?? 'gelu';
  if (act !== 'relu') throw unsupported(`unsupported activation ${show(act)} for ${architecture} (supported: relu)`);
  const hidden = posInt(j, 'hidden_size', 4544);
  const nHeads = posIntOr(j, 'num_attention_heads', 'n_head', 71);
  if (hidden % nHeads !== 0) throw cfgErr(`hidden_size ${hidden} is not divisible by num_attention_heads ${nHeads}`);
  const newArch = bool(j, 'new_decoder_architecture', false);
  const multiQuery = bool(j, 'multi_query', true);
  const parallel = bool(j, 'parallel_attn', true);
  // As FalconAttention: grouped KV heads in the new layout, one for multi-query, else one per head.
  const nKvHeads = newArch ? posIntOr(j, 'num_kv_heads', 'n_head_kv', nHeads) : multiQuery ? 1 : nHeads;
  if (nHeads % nKvHeads !== 0) throw cfgErr(`num_attention_heads ${nHeads} is not a multiple of num_kv_heads ${nKvHeads}`);
  const nLn = j.num_ln_in_parallel_attn ?? (newArch ? 2 : null);
  if (nLn !== null && nLn !== 1 && nLn !== 2) throw cfgErr(`"num_ln_in_parallel_attn" must be 1, 2 or null, got ${show(nLn)}`);
  let parallelAttn: ModelConfig['parallelAttn'];
  if (newArch && nLn === 2) parallelAttn = 'two-norms';
  else if (parallel) parallelAttn = 'one-norm';
  else if (newArch) throw unsupported(`unsupported parallel_attn=false with new_decoder_architecture and num_ln_in_parallel_attn=1 for ${architecture}`);
  const rope = parseRope(j, architecture, false);
  if (rope.partial !== undefined && rope.partial !== 1) throw unsupported(`unsupported partial_rotary_factor ${show(rope.partial)} for ${architecture} (supported: 1)`);
  const bias = bool(j, 'bias', false);
  return {
    architecture,
    arch: 'falcon',
    nLayers: posIntOr(j, 'num_hidden_layers', 'n_layer', 32),
    hidden,
    ffn: posInt(j, 'ffn_hidden_size', 4 * hidden),
    nHeads,
    nKvHeads,
    headDim: hidden / nHeads,
    vocab: posInt(j, 'vocab_size', 65024),
    maxPositions: posInt(j, 'max_position_embeddings', 2048),
    normEps: posNum(j, 'layer_norm_epsilon', 1e-5),
    act: 'relu',
    ropeTheta: rope.theta,
    posOffset: 0,
    tieWordEmbeddings: bool(j, 'tie_word_embeddings', true),
    attnBias: bias,
    mlpBias: bias,
    hasGate: false,
    bosId: tokenId(j, 'bos_token_id', 11),
    eosIds: eosIds(j, [11]),
    padId: tokenId(j, 'pad_token_id', -1),
    norm: 'layer',
    ...(parallelAttn ? { parallelAttn } : {}),
  };
}

/**
 * PhiForCausalLM (Phi-1/1.5/2): one LayerNorm feeding attention and the MLP side by side,
 * rotary on the first int(head_dim × partial_rotary_factor) dims of each head, biases on every
 * projection, fc2(act(fc1 x)), final_layernorm, lm_head with a bias.
 */
function parsePhi(j: any, architecture: string): ModelConfig {
  if (j.qk_layernorm === true) throw unsupported(`unsupported qk_layernorm=true for ${architecture}`);
  const actName = j.hidden_act ?? 'gelu_new';
  const act = typeof actName === 'string' && has(PHI_ACTS, actName) ? PHI_ACTS[actName] : undefined;
  if (!act) throw unsupported(`unsupported activation ${show(actName)} for ${architecture} (supported: relu, gelu_new, gelu_pytorch_tanh)`);
  const hidden = posInt(j, 'hidden_size', 2048);
  const nHeads = posInt(j, 'num_attention_heads', 32);
  const nKvHeads = posInt(j, 'num_key_value_heads', nHeads);
  if (nHeads % nKvHeads !== 0) throw cfgErr(`num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`);
  if (j.head_dim == null && hidden % nHeads !== 0) throw cfgErr(`hidden_size ${hidden} is not divisible by num_attention_heads ${nHeads} and no head_dim is given`);
  const headDim = posInt(j, 'head_dim', hidden / nHeads);
  const rope = parseRope(j, architecture, false);
  const factor = j.partial_rotary_factor ?? rope.partial ?? 0.5;
  if (typeof factor !== 'number' || !(factor > 0 && factor <= 1)) throw cfgErr(`"partial_rotary_factor" must be a number in (0, 1], got ${show(factor)}`);
  const rotaryDim = Math.trunc(headDim * factor);
  if (rotaryDim < 2 || rotaryDim % 2) throw unsupported(`unsupported partial_rotary_factor ${factor} for ${architecture}: rotary dims ${rotaryDim} of ${headDim} (must be even and at least 2)`);
  return {
    architecture,
    arch: 'phi',
    nLayers: posInt(j, 'num_hidden_layers', 24),
    hidden,
    ffn: posInt(j, 'intermediate_size', 8192),
    nHeads,
    nKvHeads,
    headDim,
    vocab: posInt(j, 'vocab_size', 51200),
    maxPositions: posInt(j, 'max_position_embeddings', 2048),
    normEps: posNum(j, 'layer_norm_eps', 1e-5),
    act,
    ropeTheta: rope.theta,
    posOffset: 0,
    tieWordEmbeddings: bool(j, 'tie_word_embeddings', false),
    attnBias: true,
    mlpBias: true,
    hasGate: false,
    bosId: tokenId(j, 'bos_token_id', 1),
    eosIds: eosIds(j, [2]),
    padId: tokenId(j, 'pad_token_id', -1),
    norm: 'layer',
    parallelAttn: 'one-norm',
    ...(rotaryDim !== headDim ? { rotaryDim } : {}),
    lmHeadBias: true,
  };
}
