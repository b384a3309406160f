// flashneuron in a browser page: the engine runs in a dedicated worker (flashneuron/worker) over
// a model kept in OPFS; WorkerModel talks to it with the Node API's Model interface. Nothing
// here imports a Node module, so any bundler takes it as it is.
export { WorkerModel, WorkerSession } from './client.js';
export { probeStorage, listStored, removeStored, SLOW_READ_US, type StorageReport } from './storage.js';
export type { ModelInfo } from './client.js';
export type { ModelSpec } from './opfs.js';
export type { WorkerLoadOptions } from './protocol.js';
export type { Completion, GenerateOptions, GeneratedToken, GenerationStats, FlashStats, PerplexityOptions } from '../core/model.js';
export type { RunOptions, ResolvedOptions, FfnMode, Device } from '../core/options.js';
export { resolveOptions, parseMemory } from '../core/options.js';
export { applyChatTemplate, chatTemplateOf, chatTemplateVariables, ChatTemplateError, NO_CHAT_TEMPLATE, strftimeNow, type ChatMessage, type ChatTemplateOptions } from '../core/chat-template.js';
