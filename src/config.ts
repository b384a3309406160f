// The engine's view of a model: one flat config shared by the importer, the image and the wasm.

export type Arch = 'opt' | 'llama';
export type DType = 'f32' | 'f16' | 'bf16';
export type Activation = 'relu' | 'silu';

/** Numeric codes used in the image and by assembly/dtype.ts. */
export const DTYPE_CODE: Record<DType, number> = { f32: 0, f16: 1, bf16: 2 };
export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, bf16: 2 };

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
  mlpBias: boolean;
  /** Llama has gate_proj; OPT does not. */
  hasGate: boolean;
  bosId: number;
  eosIds: number[];
  padId: number;
}
