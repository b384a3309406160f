// Runs independent CPU-bound work (plain JS on one thread: a predictor's PCA, its scalar
// evaluation) in worker threads, so that on a machine of several cores it runs beside other such
// work. What it computes does not depend on where or when it runs; only the wall time does.
//
//   inWorker(fn, ...args)  → fn(...args) in a fresh worker thread (fn: a name in ./work.js;
//                            args and result are structured-cloned)
import { Worker } from 'node:worker_threads';

const BOOT = new URL('./work.js', import.meta.url);

export function inWorker(fn, ...args) {
  return new Promise((resolve, reject) => {
    const w = new Worker(BOOT, { workerData: { fn, args } });
    let done = false;
    w.once('message', (m) => { done = true; if ('error' in m) reject(m.error); else resolve(m.result); });
    w.once('error', (e) => { done = true; reject(e); });
    w.once('exit', (code) => { if (!done) reject(new Error(`worker for ${fn} exited with code ${code} before answering`)); });
  });
}
