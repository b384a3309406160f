// Messages between the page's client (client.ts) and the engine's worker (worker.ts). Every
// request carries an id; the worker answers with progress and token events, then one result or
// one error, under that id.
import type { LoadOptions, GenerateOptions, PerplexityOptions, GeneratedToken } from '../core/model.js';
import type { ModelSpec } from './opfs.js';
import type { ChatMessage } from '../core/chat-template.js';

/** Load options that can travel to a worker (no functions, no tokenizer object). */
export type WorkerLoadOptions = Omit<LoadOptions, 'onProgress' | 'tokenizer' | 'predictor' | 'planner'>;

export type Request =
  | { id: number; op: 'init'; simd: ArrayBuffer; plain: ArrayBuffer; threads?: ArrayBuffer; relaxed?: ArrayBuffer; relaxedThreads?: ArrayBuffer }
  | { id: number; op: 'load'; spec: ModelSpec; options: WorkerLoadOptions }
  | { id: number; op: 'generate'; prompt: string | number[]; options: Omit<GenerateOptions, 'signal'> }
  | { id: number; op: 'tokenize'; text: string; options: { addSpecialTokens?: boolean } }
  | { id: number; op: 'perplexity'; text: string; options: Omit<PerplexityOptions, 'signal' | 'onProgress'> }
  | { id: number; op: 'session'; session: number; options: { system?: string; template?: string; messages?: ChatMessage[]; from?: number } }
  | { id: number; op: 'send'; session: number; content: string; options: Omit<GenerateOptions, 'signal'> }
  | { id: number; op: 'messages'; session: number }
  | { id: number; op: 'reset'; session: number }
  | { id: number; op: 'stop' }
  | { id: number; op: 'close' };

export type Reply =
  | { id: number; type: 'progress'; phase: string; done: number; total: number }
  | { id: number; type: 'token'; token: GeneratedToken; stats: { tokens: number; tokens_per_s: number; bytes_read: number; memory_bytes: number } }
  | { id: number; type: 'result'; value: unknown }
  | { id: number; type: 'error'; message: string };
