// The engine's view of a model: one flat config shared by the importer, the image and the wasm.
// Keys added after the first images (norm, parallelAttn, rotaryDim, actParam, slidingWindow,
// lmHeadBias, ropeScaling, attnOutBias) are optional: an image whose header lacks them runs as before
// (the defaults below), and the writer leaves them out where they hold their default.

export type Arch = 'opt' | 'llama' | 'falcon' | 'phi';
/**
 * The FFN's activation. relu, silu: act(gate) * up (Llama) or act(up + b) (OPT, Falcon, Phi).
 * fatrelu (ProSparse): gate if gate >= actParam else 0, times up. drelu (TurboSparse/Bamboo):
 * relu(gate) * relu(up). gelu_tanh: HF's gelu_new (Phi-2), dense only.
 */
export type Activation = 'relu' | 'silu' | 'fatrelu' | 'drelu' | 'gelu_tanh';
export type { DType } from './dtype.js';

/** Activations whose zeros are exact, so that an inactive neuron contributes nothing (sparse mode). */
export const RELU_FAMILY: ReadonlySet<Activation> = new Set<Activation>(['relu', 'fatrelu', 'drelu']);

/** HF's "llama3" rope scaling (Llama-3.1/3.2): inv_freq stretched by wavelength bands. */
export interface RopeScaling {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

export interface ModelConfig {
  /** Hugging Face class name, e.g. "OPTForCausalLM". */
  architecture: string;
  arch: Arch;
  nLayers: number;
  /** Model width d. */
  hidden: number;
  /** FFN width (neurons per layer). */
  ffn: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  vocab: number;
  maxPositions: number;
  normEps: number;
  act: Activation;
  /** Llama: RoPE base; 0 for learned positions. */
  ropeTheta: number;
  /** OPT: learned position ids are shifted by this offset (2). */
  posOffset: number;
  tieWordEmbeddings: boolean;
  attnBias: boolean;
  /** With attnBias: o_proj has one too (default). false: q, k and v only (Qwen2). */
  attnOutBias?: boolean;
  mlpBias: boolean;
  /** Llama has gate_proj; OPT does not. */
  hasGate: boolean;
  bosId: number;
  eosIds: number[];
  padId: number;
  /** LayerNorm (weight + bias) or RMSNorm (weight). Default: 'layer' for OPT, else 'rms'. */
  norm?: 'layer' | 'rms';
  /**
   * Attention and FFN side by side on the same residual, both added into it (Falcon, Phi-2):
   * 'one-norm' = one norm feeds both; 'two-norms' = each has its own (Falcon's ln_attn, ln_mlp).
   * Absent: the FFN follows attention (OPT, Llama).
   */
  parallelAttn?: 'one-norm' | 'two-norms';
  /** Rotary on the first rotaryDim dims of each head, the rest passes through (Phi-2). Default headDim. */
  rotaryDim?: number;
  /** fatrelu: the threshold. */
  actParam?: number;
  /** Attention over the last slidingWindow positions only (Mistral); absent when it cannot bind. */
  slidingWindow?: number;
  /** lm_head has a bias (Phi-2). */
  lmHeadBias?: boolean;
  ropeScaling?: RopeScaling;
}

/** The norm a config uses (images from before the key: LayerNorm for OPT, RMSNorm else). */
export const normOf = (c: ModelConfig): 'layer' | 'rms' => c.norm ?? (c.arch === 'opt' ? 'layer' : 'rms');
