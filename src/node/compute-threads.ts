// Compute workers for Node, Deno and Bun: worker_threads, each given the engine's wasm module and
// shared memory. They start in the background and join the engine's jobs once running (the
// engine counts them); one that fails to start is simply never counted.
import { Worker } from 'node:worker_threads';

export function startComputeThreads(module: WebAssembly.Module, memory: WebAssembly.Memory, block: number, n: number): { close(): void } {
  const workers: Worker[] = [];
  for (let i = 0; i < n; i++) {
    const w = new Worker(new URL('./compute-worker.js', import.meta.url), { workerData: { module, memory, block } });
    w.on('error', () => {});   // never started: the engine runs with the others
    w.unref();                 // a model left open does not keep the process alive
    workers.push(w);
  }
  return { close() { for (const w of workers) void w.terminate(); } };
}
