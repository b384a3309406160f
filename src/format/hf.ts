// Hugging Face checkpoint folders: config.json → ModelConfig (hf-config.ts), the tensors each
// architecture needs (parts of fused tensors included), and a validated view of the weights.

import type { ModelConfig } from './config.js';
import {
  CheckpointError,
  SUPPORTED_DTYPE_LIST,
  type CheckpointFS,
  type SafetensorsCheckpoint,
  type SafetensorsEntry,
  type TensorInfo,
} from './safetensors.js';
import { openWeights } from './weights.js';
import { readCheckpointTokenizer } from './tokenizer-files.js';
import { duplicateKey } from './check.js';

export { CheckpointError } from './safetensors.js';
export type { TensorInfo, SafetensorsEntry } from './safetensors.js';

import { parseHFConfig } from './hf-config.js';
export { parseHFConfig, SUPPORTED_ARCHITECTURES } from './hf-config.js';

// ---------------------------------------------------------------------------------------------
// Tensor roles.

export interface TensorSpec {
  name: string;
  shape: number[];
  /**
   * Part of a fused tensor (Falcon's query_key_value): runs [start, count] of `name`'s rows
   * (its elements, for a vector), concatenated; `of` is the fused tensor's shape. readSpec
   * and specInfo give the part as if it were a tensor of `shape`.
   */
  slice?: { of: number[]; rows: Array<[number, number]> };
}

export interface GlobalTensors {
  tokEmbed: TensorSpec;
  /** OPT learned positions, [maxPositions + 2, d]. */
  posEmbed?: TensorSpec;
  normW: TensorSpec;
  normB?: TensorSpec;
  /** Absent when the head is tied to tokEmbed. */
  lmHead?: TensorSpec;
  /** [vocab], Phi-2. */
  lmHeadB?: TensorSpec;
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
  /** The FFN's own norm; absent where one norm feeds attention and the FFN (parallelAttn 'one-norm'). */
  ln2W?: TensorSpec;
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

/** Decoder prefixes a checkpoint may use, the usual first (HF also saves base-model checkpoints without it). */
function prefixes(cfg: ModelConfig): string[] {
  return cfg.arch === 'opt' ? ['model.decoder.', 'decoder.'] : cfg.arch === 'falcon' ? ['transformer.', ''] : ['model.', ''];
}

/** Default name prefix of the decoder tensors ("model.decoder." for OPT, "transformer." for Falcon, "model." else). */
export function defaultPrefix(cfg: ModelConfig): string {
  return prefixes(cfg)[0];
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
      : cfg.arch === 'falcon'
        ? { tokEmbed: t('word_embeddings.weight', cfg.vocab, d), normW: t('ln_f.weight', d), normB: t('ln_f.bias', d) }
        : cfg.arch === 'phi'
          ? { tokEmbed: t('embed_tokens.weight', cfg.vocab, d), normW: t('final_layernorm.weight', d), normB: t('final_layernorm.bias', d) }
          : { tokEmbed: t('embed_tokens.weight', cfg.vocab, d), normW: t('norm.weight', d) };
  if (!cfg.tieWordEmbeddings) globals.lmHead = { name: 'lm_head.weight', shape: [cfg.vocab, d] };
  if (cfg.lmHeadBias) globals.lmHeadB = { name: 'lm_head.bias', shape: [cfg.vocab] };
  const layers: LayerTensors[] = [];
  for (let i = 0; i < cfg.nLayers; i++) {
    const p = cfg.arch === 'falcon' ? `h.${i}.` : `layers.${i}.`;
    // Per architecture: [norm1, norm2 (none: shared), attention prefix, q, k, v, o, up, gate, down] names.
    const n =
      cfg.arch === 'opt' ? ['self_attn_layer_norm', 'final_layer_norm', 'self_attn.', 'q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', '', 'fc2']
        : cfg.arch === 'phi' ? ['input_layernorm', '', 'self_attn.', 'q_proj', 'k_proj', 'v_proj', 'dense', 'mlp.fc1', '', 'mlp.fc2']
          : cfg.arch === 'falcon' ? [...falconNorms(cfg), 'self_attention.', '', '', '', 'dense', 'mlp.dense_h_to_4h', '', 'mlp.dense_4h_to_h']
            : ['input_layernorm', 'post_attention_layernorm', 'self_attn.', 'q_proj', 'k_proj', 'v_proj', 'o_proj', 'mlp.up_proj', 'mlp.gate_proj', 'mlp.down_proj'];
    const [n1, n2, a, nq, nk, nv, no, nup, ngate, ndown] = n;
    const layerNorm = cfg.arch !== 'llama';
    const qkv = cfg.arch === 'falcon' ? falconQkv(cfg, prefix + p + a + 'query_key_value.') : undefined;
    const L: LayerTensors = {
      ln1W: t(p + n1 + '.weight', d),
      ...(layerNorm ? { ln1B: t(p + n1 + '.bias', d) } : {}),
      q: qkv?.q ?? t(p + a + nq + '.weight', qd, d),
      k: qkv?.k ?? t(p + a + nk + '.weight', kvd, d),
      v: qkv?.v ?? t(p + a + nv + '.weight', kvd, d),
      o: t(p + a + no + '.weight', d, qd),
      ...(n2 ? { ln2W: t(p + n2 + '.weight', d), ...(layerNorm ? { ln2B: t(p + n2 + '.bias', d) } : {}) } : {}),
      up: t(p + nup + '.weight', f, d),
      ...(ngate ? { gate: t(p + ngate + '.weight', f, d) } : {}),
      down: t(p + ndown + '.weight', d, f),
    };
    if (cfg.attnBias) {
      L.qB = qkv?.qB ?? t(p + a + nq + '.bias', qd);
      L.kB = qkv?.kB ?? t(p + a + nk + '.bias', kvd);
      L.vB = qkv?.vB ?? t(p + a + nv + '.bias', kvd);
      if (cfg.attnOutBias !== false) L.oB = t(p + a + no + '.bias', d);
    }
    if (cfg.mlpBias) {
      L.upB = t(p + nup + '.bias', f);
      if (ngate) L.gateB = t(p + ngate + '.bias', f);
      L.downB = t(p + ndown + '.bias', d);
    }
    layers.push(L);
  }
  return { globals, layers };
}

/** Falcon's layer norms: ln_attn + ln_mlp (new_decoder_architecture), input_layernorm (+ post_attention_layernorm when sequential). */
function falconNorms(cfg: ModelConfig): [string, string] {
  if (cfg.parallelAttn === 'two-norms') return ['ln_attn', 'ln_mlp'];
  return ['input_layernorm', cfg.parallelAttn ? '' : 'post_attention_layernorm'];
}

/**
 * q, k, v (and with `bias` their biases) as parts of Falcon's fused query_key_value: per KV
 * group g, rows [the group's nHeads/nKv query heads, its key head, its value head] of headDim
 * each. This one layout covers all three of Falcon's: grouped (new_decoder_architecture),
 * multi-query (one group: [all q, k, v]) and one KV head per query head (per head [q, k, v]).
 */
function falconQkv(cfg: ModelConfig, base: string): Partial<LayerTensors> {
  const hd = cfg.headDim, groups = cfg.nKvHeads, per = cfg.nHeads / groups, d = cfg.hidden;
  const fusedRows = (cfg.nHeads + 2 * groups) * hd;
  const runs = (which: 'q' | 'k' | 'v') => Array.from({ length: groups }, (_, g): [number, number] => {
    const at = g * (per + 2) * hd;
    return which === 'q' ? [at, per * hd] : which === 'k' ? [at + per * hd, hd] : [at + (per + 1) * hd, hd];
  });
  const part = (kind: 'weight' | 'bias', which: 'q' | 'k' | 'v'): TensorSpec => {
    const rows = (which === 'q' ? cfg.nHeads : groups) * hd;
    return { name: base + kind, shape: kind === 'weight' ? [rows, d] : [rows], slice: { of: kind === 'weight' ? [fusedRows, d] : [fusedRows], rows: runs(which) } };
  };
  const out: Partial<LayerTensors> = { q: part('weight', 'q'), k: part('weight', 'k'), v: part('weight', 'v') };
  if (cfg.attnBias) Object.assign(out, { qB: part('bias', 'q'), kB: part('bias', 'k'), vB: part('bias', 'v') });
  return out;
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
  // JSON.parse keeps the last of two equal keys; transformers would read the same, but a file
  // that says two things is not trusted to mean either.
  const dup = duplicateKey(text);
  if (dup !== undefined) throw new CheckpointError(`${path}: the key ${dup} appears twice (each key once)`, { file: path });
  return j;
}

/** Picks the decoder prefix the checkpoint actually uses (HF also loads base-model checkpoints). */
function detectPrefix(cfg: ModelConfig, ck: SafetensorsCheckpoint): string {
  const candidates = prefixes(cfg), embed = modelTensors(cfg, '').globals.tokEmbed.name;
  for (const p of candidates) if (ck.entry(p + embed)) return p;
  return candidates[0];
}

/** Checks one required tensor: present, supported dtype, expected shape (a fused tensor's, for a part of one). */
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
  const want = spec.slice?.of ?? spec.shape;
  if (e.shape.length !== want.length || e.shape.some((x, i) => x !== want[i])) {
    throw new CheckpointError(`tensor ${spec.name} has shape ${fmtShape(e.shape)}, expected ${fmtShape(want)} (in ${e.file})`, {
      file: e.file,
      tensor: spec.name,
    });
  }
}

/** dtype and shape of the tensor a spec names (a part of a fused tensor has the part's shape). */
export function specInfo(ckpt: Pick<HFCheckpoint, 'tensor'>, spec: TensorSpec): { dtype: TensorInfo['dtype']; shape: number[] } {
  const t = ckpt.tensor(spec.name);
  return spec.slice ? { dtype: t.dtype, shape: spec.shape } : t;
}

/**
 * The bytes of the tensor a spec names: a part of a fused tensor is gathered from its row runs.
 * `memo` keeps the last fused tensor read, so that q, k and v read it once.
 */
export function readSpec(ckpt: Pick<HFCheckpoint, 'readTensor'>, spec: TensorSpec, memo: { name?: string; bytes?: Uint8Array } = {}): Uint8Array {
  if (!spec.slice) return ckpt.readTensor(spec.name);
  if (memo.name !== spec.name || !memo.bytes) { memo.bytes = ckpt.readTensor(spec.name); memo.name = spec.name; }
  const all = memo.bytes, rowBytes = all.length / spec.slice.of[0];
  const out = new Uint8Array((all.length / spec.slice.of.reduce((a, b) => a * b, 1)) * spec.shape.reduce((a, b) => a * b, 1));
  let at = 0;
  for (const [start, count] of spec.slice.rows) {
    out.set(all.subarray(start * rowBytes, (start + count) * rowBytes), at);
    at += count * rowBytes;
  }
  if (at !== out.length) throw new Error(`internal error: the parts of ${spec.name} cover ${at} of ${out.length} bytes`);
  return out;
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

  // tokenizer.json, else one built from vocab.json + merges.txt or from tokenizer.model;
  // tokenizer_config.json with special_tokens_map.json over it (src/format/tokenizer-files.ts).
  const { tokenizerJson, tokenizerConfig } = readCheckpointTokenizer(fs, dir);

  const ck = openWeights(fs);
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
