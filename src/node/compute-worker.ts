// A compute worker (worker_threads): an instance of the engine's threads build on its shared
// memory, running its parts of the engine's matrix products until the engine closes.
import { workerData } from 'node:worker_threads';
import { instantiateWorker } from '../core/wasm.js';

const { module, memory, block } = workerData as { module: WebAssembly.Module; memory: WebAssembly.Memory; block: number };
instantiateWorker(module, memory).run(block);
