// Hugging Face checkpoint folders: config.json → ModelConfig, the tensors each architecture
// needs, and a validated view of the (possibly sharded) safetensors weights.

import type { Activation, ModelConfig } from './config.js';
import {
  CheckpointError,
  SUPPORTED_DTYPE_LIST,
  type CheckpointFS,
  openSafetensorsCheckpoint,
  type SafetensorsCheckpoint,
  type SafetensorsEntry,
  type TensorInfo,
} from './safetensors.js';

export { CheckpointError } from './safetensors.js';
export type { TensorInfo, SafetensorsEntry } from './safetensors.js';

export const SUPPORTED_ARCHITECTURES = ['OPTForCausalLM', 'LlamaForCausalLM', 'MistralForCausalLM'] as const;

/** Architecture a bare `model_type` implies when `architectures` is absent. */
const MODEL_TYPE_ARCH: Record<string, string> = {
  opt: 'OPTForCausalLM',
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
};

/**
 * Activations whose transformers implementations are identical to ours
 * (ACT2FN: "relu" → nn.ReLU; "silu" and "swish" → SiLU). "relu2", "relu6", "leaky_relu", gelu
 * variants etc. are different functions and are rejected.
 */
const LLAMA_ACTS: Record<string, Activation> = { relu: 'relu', silu: 'silu', swish: 'silu' };

const unsupported = (msg: string) => new CheckpointError(msg, { file: 'config.json' });
const cfgErr = (msg: string) => new CheckpointError(`config.json: ${msg}`, { file: 'config.json' });
const show = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v));

function posInt(j: any, key: string, def?: number): number {
  const v = j[key] ?? def;
  if (v === undefined) throw cfgErr(`missing "${key}"`);
  if (!Number.isSafeInteger(v) || v <= 0) throw cfgErr(`"${key}" must be a positive integer, got ${show(j[key])}`);
  return v;
}

function posNum(j: any, key: string, def: number): number {
  const v = j[key] ?? def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw cfgErr(`"${key}" must be a positive number, got ${show(j[key])}`);
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
  switch (architecture) {
    case 'OPTForCausalLM':
      return parseOPT(json, architecture);
    case 'LlamaForCausalLM':
    case 'MistralForCausalLM':
      return parseLlama(json, architecture);
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

/** rope_type of a rope_scaling / rope_parameters object ("default" when absent). */
function ropeType(o: any): string {
  const t = o.rope_type ?? o.type ?? 'default';
  return typeof t === 'string' ? t : show(t);
}

function parseLlama(j: any, architecture: string): ModelConfig {
  const actName = j.hidden_act ?? 'silu';
  const act = typeof actName === 'string' ? LLAMA_ACTS[actName] : undefined;
  if (!act || !Object.prototype.hasOwnProperty.call(LLAMA_ACTS, actName)) {
    throw unsupported(`unsupported activation ${show(actName)} for ${architecture} (supported: relu, silu, swish)`);
  }
  const hidden = posInt(j, 'hidden_size');
  const nHeads = posInt(j, 'num_attention_heads');
  const nKvHeads = posInt(j, 'num_key_value_heads', nHeads);
  if (nHeads % nKvHeads !== 0) throw cfgErr(`num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`);
  if (j.head_dim == null && hidden % nHeads !== 0) throw cfgErr(`hidden_size ${hidden} is not divisible by num_attention_heads ${nHeads} and no head_dim is given`);
  const headDim = posInt(j, 'head_dim', hidden / nHeads);
  const maxPositions = posInt(j, 'max_position_embeddings', architecture === 'MistralForCausalLM' ? 4096 * 32 : 2048);

  // RoPE: transformers v5 `rope_parameters` or v4 `rope_theta` + `rope_scaling`.
  let theta: unknown = j.rope_theta;
  for (const key of ['rope_parameters', 'rope_scaling']) {
    const o = j[key];
    if (o === undefined || o === null) continue;
    if (typeof o !== 'object' || Array.isArray(o)) throw cfgErr(`"${key}" must be an object or null, got ${show(o)}`);
    const t = ropeType(o);
    if (t !== 'default') throw unsupported(`unsupported rope type "${t}" (${key}) for ${architecture} (supported: default)`);
    if (o.partial_rotary_factor != null && o.partial_rotary_factor !== 1) {
      throw unsupported(`unsupported partial_rotary_factor ${show(o.partial_rotary_factor)} (${key}) for ${architecture} (supported: 1)`);
    }
    if (o.rope_theta != null) theta = o.rope_theta;
  }
  theta ??= 10000;
  if (typeof theta !== 'number' || !Number.isFinite(theta) || theta <= 0) throw cfgErr(`rope_theta must be a positive number, got ${show(theta)}`);

  let attnBias = false;
  let mlpBias = false;
  if (architecture === 'MistralForCausalLM') {
    // Mistral's projections never have biases; a sliding window that can bind changes attention.
    const sw = j.sliding_window;
    if (sw !== undefined && sw !== null && sw !== 0) {
      if (!Number.isSafeInteger(sw) || sw < 0) throw cfgErr(`"sliding_window" must be a non-negative integer or null, got ${show(sw)}`);
      if (sw < maxPositions) {
        throw unsupported(
          `unsupported sliding_window=${sw} for ${architecture}: sliding-window attention is not supported (only null or >= max_position_embeddings ${maxPositions})`,
        );
      }
    }
  } else {
    attnBias = bool(j, 'attention_bias', false);
    mlpBias = bool(j, 'mlp_bias', false);
  }
  return {
    architecture,
    arch: 'llama',
    nLayers: posInt(j, 'num_hidden_layers'),
    hidden,
    ffn: posInt(j, 'intermediate_size'),
    nHeads,
    nKvHeads,
    headDim,
    vocab: posInt(j, 'vocab_size'),
    maxPositions,
    normEps: posNum(j, 'rms_norm_eps', 1e-6),
    act,
    ropeTheta: theta,
    posOffset: 0,
    tieWordEmbeddings: bool(j, 'tie_word_embeddings', false),
    attnBias,
    mlpBias,
    hasGate: true,
    bosId: tokenId(j, 'bos_token_id', 1),
    eosIds: eosIds(j, [2]),
    padId: tokenId(j, 'pad_token_id', -1),
  };
}

// ---------------------------------------------------------------------------------------------
// Tensor roles.

export interface TensorSpec {
  name: string;
  shape: number[];
}

export interface GlobalTensors {
  tokEmbed: TensorSpec;
  /** OPT learned positions, [maxPositions + 2, d]. */
  posEmbed?: TensorSpec;
  normW: TensorSpec;
  normB?: TensorSpec;
  /** Absent when the head is tied to tokEmbed. */
  lmHead?: TensorSpec;
}

export interface LayerTensors {
  ln1W: TensorSpec;
  ln1B?: TensorSpec;
  q: TensorSpec;
  k: TensorSpec;
  v: TensorSpec;
  o: TensorSpec;
  qB?: TensorSpec;
  kB?: TensorSpec;
  vB?: TensorSpec;
  oB?: TensorSpec;
  ln2W: TensorSpec;
  ln2B?: TensorSpec;
  /** [ffn, d] (OPT fc1). */
  up: TensorSpec;
  /** [ffn, d], Llama only. */
  gate?: TensorSpec;
  /** [d, ffn] (OPT fc2). */
  down: TensorSpec;
  upB?: TensorSpec;
  /** Llama with mlp_bias. */
  gateB?: TensorSpec;
  downB?: TensorSpec;
}

export interface ModelTensors {
  globals: GlobalTensors;
  layers: LayerTensors[];
}

/** Default name prefix of the decoder tensors ("model.decoder." for OPT, "model." for Llama). */
export function defaultPrefix(cfg: ModelConfig): string {
  return cfg.arch === 'opt' ? 'model.decoder.' : 'model.';
}

/**
 * The tensors `cfg` needs, by role, with HF names and expected shapes. `prefix` replaces the
 * decoder prefix (e.g. "decoder." for OPT checkpoints saved from OPTModel); lm_head is unprefixed.
 */
export function modelTensors(cfg: ModelConfig, prefix = defaultPrefix(cfg)): ModelTensors {
  const d = cfg.hidden;
  const qd = cfg.nHeads * cfg.headDim;
  const kvd = cfg.nKvHeads * cfg.headDim;
  const f = cfg.ffn;
  const t = (name: string, ...shape: number[]): TensorSpec => ({ name: prefix + name, shape });
  const globals: GlobalTensors =
    cfg.arch === 'opt'
      ? {
          tokEmbed: t('embed_tokens.weight', cfg.vocab, d),
          posEmbed: t('embed_positions.weight', cfg.maxPositions + cfg.posOffset, d),
          normW: t('final_layer_norm.weight', d),
          normB: t('final_layer_norm.bias', d),
        }
      : { tokEmbed: t('embed_tokens.weight', cfg.vocab, d), normW: t('norm.weight', d) };
  if (!cfg.tieWordEmbeddings) globals.lmHead = { name: 'lm_head.weight', shape: [cfg.vocab, d] };
  const layers: LayerTensors[] = [];
  for (let i = 0; i < cfg.nLayers; i++) {
    const p = `layers.${i}.`;
    if (cfg.arch === 'opt') {
      const L: LayerTensors = {
        ln1W: t(p + 'self_attn_layer_norm.weight', d),
        ln1B: t(p + 'self_attn_layer_norm.bias', d),
        q: t(p + 'self_attn.q_proj.weight', qd, d),
        k: t(p + 'self_attn.k_proj.weight', kvd, d),
        v: t(p + 'self_attn.v_proj.weight', kvd, d),
        o: t(p + 'self_attn.out_proj.weight', d, qd),
        ln2W: t(p + 'final_layer_norm.weight', d),
        ln2B: t(p + 'final_layer_norm.bias', d),
        up: t(p + 'fc1.weight', f, d),
        down: t(p + 'fc2.weight', d, f),
      };
      if (cfg.attnBias) {
        L.qB = t(p + 'self_attn.q_proj.bias', qd);
        L.kB = t(p + 'self_attn.k_proj.bias', kvd);
        L.vB = t(p + 'self_attn.v_proj.bias', kvd);
        L.oB = t(p + 'self_attn.out_proj.bias', d);
      }
      if (cfg.mlpBias) {
        L.upB = t(p + 'fc1.bias', f);
        L.downB = t(p + 'fc2.bias', d);
      }
      layers.push(L);
    } else {
      const L: LayerTensors = {
        ln1W: t(p + 'input_layernorm.weight', d),
        q: t(p + 'self_attn.q_proj.weight', qd, d),
        k: t(p + 'self_attn.k_proj.weight', kvd, d),
        v: t(p + 'self_attn.v_proj.weight', kvd, d),
        o: t(p + 'self_attn.o_proj.weight', d, qd),
        ln2W: t(p + 'post_attention_layernorm.weight', d),
        up: t(p + 'mlp.up_proj.weight', f, d),
        gate: t(p + 'mlp.gate_proj.weight', f, d),
        down: t(p + 'mlp.down_proj.weight', d, f),
      };
      if (cfg.attnBias) {
        L.qB = t(p + 'self_attn.q_proj.bias', qd);
        L.kB = t(p + 'self_attn.k_proj.bias', kvd);
        L.vB = t(p + 'self_attn.v_proj.bias', kvd);
        L.oB = t(p + 'self_attn.o_proj.bias', d);
      }
      if (cfg.mlpBias) {
        L.upB = t(p + 'mlp.up_proj.bias', f);
        L.gateB = t(p + 'mlp.gate_proj.bias', f);
        L.downB = t(p + 'mlp.down_proj.bias', d);
      }
      layers.push(L);
    }
  }
  return { globals, layers };
}

/** Flat list of every required tensor with a role label ("tokEmbed", "layers.3.q", ...). */
export function requiredTensors(mt: ModelTensors): Array<TensorSpec & { role: string }> {
  const out: Array<TensorSpec & { role: string }> = [];
  for (const [role, s] of Object.entries(mt.globals)) if (s) out.push({ role, ...s });
  mt.layers.forEach((L, i) => {
    for (const [role, s] of Object.entries(L)) if (s) out.push({ role: `layers.${i}.${role}`, ...s });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Opening a folder.

export interface HFCheckpoint {
  dir: string;
  config: ModelConfig;
  /** config.json as parsed. */
  rawConfig: any;
  /** The required tensors with the names actually found in this checkpoint. */
  tensors: ModelTensors;
  /** Text of tokenizer.json. */
  tokenizerJson: string;
  /** tokenizer_config.json, when present. */
  tokenizerConfig?: Record<string, unknown>;
  /** Tensor `name` (any tensor of the checkpoint with a supported dtype). */
  tensor(name: string): TensorInfo;
  /** Reads tensor `name` into `dst` (returns the filled prefix) or into a new array. */
  readTensor(name: string, dst?: Uint8Array): Uint8Array;
  close(): void;
  /** Where the weights come from, recorded in the image (default "huggingface"). */
  origin?: string;
}

const fmtShape = (s: readonly number[]) => `[${s.join(',')}]`;

function parseJsonObject(text: string, path: string): any {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${path}: not valid JSON (${(e as Error).message})`, { file: path });
  }
  if (j === null || typeof j !== 'object' || Array.isArray(j)) throw new CheckpointError(`${path}: must be a JSON object`, { file: path });
  return j;
}

/** Picks the decoder prefix the checkpoint actually uses (HF also loads base-model checkpoints). */
function detectPrefix(cfg: ModelConfig, ck: SafetensorsCheckpoint): string {
  const candidates = cfg.arch === 'opt' ? ['model.decoder.', 'decoder.'] : ['model.', ''];
  for (const p of candidates) if (ck.entry(p + 'embed_tokens.weight')) return p;
  return candidates[0];
}

/** Checks one required tensor: present, supported dtype, expected shape. */
function checkTensor(spec: TensorSpec & { role: string }, e: SafetensorsEntry | undefined): void {
  if (!e) {
    throw new CheckpointError(`tensor ${spec.name} (${spec.role}) is missing from the checkpoint`, { tensor: spec.name });
  }
  if (e.dtype === null) {
    throw new CheckpointError(`tensor ${spec.name} has dtype ${e.stDtype}, supported: ${SUPPORTED_DTYPE_LIST} (in ${e.file})`, {
      file: e.file,
      tensor: spec.name,
    });
  }
  if (e.shape.length !== spec.shape.length || e.shape.some((x, i) => x !== spec.shape[i])) {
    throw new CheckpointError(`tensor ${spec.name} has shape ${fmtShape(e.shape)}, expected ${fmtShape(spec.shape)} (in ${e.file})`, {
      file: e.file,
      tensor: spec.name,
    });
  }
}

/**
 * Reads a Hugging Face checkpoint folder: config.json, tokenizer.json (+ optional
 * tokenizer_config.json) and the safetensors weights, validating every tensor the architecture
 * needs. Errors are CheckpointErrors that name the file / tensor / setting at fault.
 */
export async function readHFCheckpoint(fs: CheckpointFS, dir = fs.label('')): Promise<HFCheckpoint> {
  const where = (name: string) => fs.label(name);
  const readOptional = async (name: string): Promise<string | undefined> => fs.readText(name);

  const cfgPath = where('config.json');
  const cfgText = await readOptional('config.json');
  if (cfgText === undefined) throw new CheckpointError(`missing config.json in ${dir}`, { file: cfgPath });
  const rawConfig = parseJsonObject(cfgText, cfgPath);
  let config: ModelConfig;
  try {
    config = parseHFConfig(rawConfig);
  } catch (e) {
    if (e instanceof CheckpointError) {
      const msg = e.message.startsWith('config.json: ') ? e.message.slice('config.json: '.length) : e.message;
      throw new CheckpointError(`${cfgPath}: ${msg}`, { file: cfgPath });
    }
    throw e;
  }

  const tokPath = where('tokenizer.json');
  const tokenizerJson = await readOptional('tokenizer.json');
  if (tokenizerJson === undefined) throw new CheckpointError(`missing tokenizer.json in ${dir}`, { file: tokPath });
  parseJsonObject(tokenizerJson, tokPath);
  const tcPath = where('tokenizer_config.json');
  const tcText = await readOptional('tokenizer_config.json');
  const tokenizerConfig = tcText === undefined ? undefined : (parseJsonObject(tcText, tcPath) as Record<string, unknown>);

  const ck = openSafetensorsCheckpoint(fs);
  try {
    const tensors = modelTensors(config, detectPrefix(config, ck));
    for (const spec of requiredTensors(tensors)) checkTensor(spec, ck.entry(spec.name));
    return {
      dir,
      config,
      rawConfig,
      tensors,
      tokenizerJson,
      tokenizerConfig,
      tensor: (name) => ck.tensor(name),
      readTensor: (name, dst) => ck.readTensor(name, dst),
      close: () => ck.close(),
    };
  } catch (e) {
    ck.close();
    throw e;
  }
}
