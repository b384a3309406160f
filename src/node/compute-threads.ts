// Compute workers for Node, Deno and Bun: worker_threads, each given the engine's wasm module and
// shared memory. They start in the background and join the engine's jobs once running (the
// engine counts them); one that fails to start is simply never counted. With `readPath` each
// opens the model file itself (descriptors are per thread in Deno) and reads its share of the
// FFN's rounds (compute-worker.ts).
import { Worker } from 'node:worker_threads';

/** How long a closed engine's workers get to stop by themselves (and close their file) before they are ended. */
const STOP_MS = 2000;

export function startComputeThreads(module: WebAssembly.Module, memory: WebAssembly.Memory, block: number, n: number, readPath?: string): { close(): void } {
  const workers: Worker[] = [];
  for (let i = 0; i < n; i++) {
    const w = new Worker(new URL('./compute-worker.js', import.meta.url), { workerData: { module, memory, block, readPath } });
    w.on('error', () => {});   // never started: the engine runs with the others
    w.unref();                 // a model left open does not keep the process alive
    workers.push(w);
  }
  return {
    // The engine has told the workers to stop (threads_stop): they return and close their file.
    close() {
      for (const w of workers) {
        const end = setTimeout(() => void w.terminate(), STOP_MS);
        end.unref();
        w.once('exit', () => clearTimeout(end));
      }
    },
  };
}
