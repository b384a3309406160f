// The engine's view of a model: one flat config shared by the importer, the image and the wasm.

export type Arch = 'opt' | 'llama';
export type DType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0';
export type Activation = 'relu' | 'silu';

/** Numeric codes used in the image and by assembly/dtype.ts. */
export const DTYPE_CODE: Record<DType, number> = { f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_0: 4 };
/** Bytes per element (quantized types: per element on average; their rows come in 32-element blocks). */
export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, bf16: 2, q8_0: 34 / 32, q4_0: 18 / 32 };
/** Block-quantized types (GGUF Q8_0 / Q4_0 layout, src/quant.ts): rows of a multiple of 32 elements. */
export const QUANTIZED: ReadonlySet<DType> = new Set(['q8_0', 'q4_0']);

/** Bytes of a row of n elements. */
export function rowBytes(dt: DType, n: number): number {
  if (QUANTIZED.has(dt)) {
    if (n % 32) throw new Error(`a ${dt} row needs a multiple of 32 elements (got ${n})`);
    return (n / 32) * (dt === 'q8_0' ? 34 : 18);
  }
  return n * DTYPE_BYTES[dt];
}

/** Bytes of a tensor stored row by row (the last dimension is the row). */
export function tensorBytes(dt: DType, shape: readonly number[]): number {
  const n = shape.length ? shape[shape.length - 1] : 1;
  return shape.slice(0, -1).reduce((a, b) => a * b, 1) * rowBytes(dt, n);
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
  mlpBias: boolean;
  /** Llama has gate_proj; OPT does not. */
  hasGate: boolean;
  bosId: number;
  eosIds: number[];
  padId: number;
}
