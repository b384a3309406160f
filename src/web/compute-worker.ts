// A compute worker in the browser (started by worker.ts): an instance of the engine's threads
// build on its shared memory, running its parts of the matrix products until the engine closes.
import { instantiateWorker } from '../core/wasm.js';

self.onmessage = (ev: MessageEvent<{ module: WebAssembly.Module; memory: WebAssembly.Memory; block: number }>) => {
  const { module, memory, block } = ev.data;
  instantiateWorker(module, memory).run(block);
};
