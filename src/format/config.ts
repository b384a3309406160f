// The engine's view of a model: one flat config shared by the importer, the image and the wasm.

export type Arch = 'opt' | 'llama';
export type Activation = 'relu' | 'silu';
export type { DType } from './dtype.js';

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
