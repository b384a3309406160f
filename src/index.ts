// flashneuron: run ReLU-family language models from flash with a WebAssembly SIMD engine.
export { loadModel, Model, DEFAULT_MODEL, cachedImage, cacheDir, parseMemory } from './model.js';
export type { LoadOptions, GenerateOptions, GeneratedToken, Completion, GenerationStats, FlashStats, PerplexityOptions } from './model.js';
export { Engine, shareRows } from './engine.js';
export type { EngineOptions, FfnMode, MemoryReport, EnginePredictor } from './engine.js';
export { convertHF, readImageHeader } from './image.js';
export type { ImageHeader } from './image.js';
export { openHFCheckpoint, parseHFConfig } from './hf.js';
export { Tokenizer } from './tokenizer.js';
export { Sampler } from './sampler.js';
export type { SamplingOptions } from './sampler.js';
export { FileSource, MemorySource } from './flash.js';
export type { FlashSource } from './flash.js';
export type { ModelConfig } from './config.js';
export { ParallelReader } from './reader.js';
export { probeDevice, loadProfile, saveProfile, defaultProfile, estimateUs, mergeGapBytes } from './probe.js';
export type { DeviceProfile } from './probe.js';
export { trainPredictor, loadPredictor, savePredictor, predictorPath, evaluatePredictor, truncatePredictor, predictorBytesAt } from './predictor.js';
export type { Predictor, PredictorRung } from './predictor.js';
