// A compute worker (worker_threads): an instance of the engine's threads build on its shared
// memory, running its parts of the engine's matrix products until the engine closes. Given the
// model file's path it opens the file and serves the wasm's fd_pread from it, so that it reads
// its share of the FFN's rounds (the wasm reads one file only: the fd it names is its WASI's, the
// same file).
import { closeSync, openSync, readSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { instantiateWorker } from '../core/wasm.js';
import { preadIovecs } from '../io/wasi-shim.js';

const { module, memory, block, readPath } = workerData as { module: WebAssembly.Module; memory: WebAssembly.Memory; block: number; readPath?: string };

// A failed read answers ENOSYS: the engine's thread then reads the same bytes itself and reports
// its own error, with its cause, if that fails too.
const ERRNO_NOSYS = 52;

/** wasi_snapshot_preview1's fd_pread over `fd`, whatever fd the wasm names. */
function preadImports(fd: number): Record<string, Function> {
  return {
    fd_pread(_fd: number, iovs: number, iovsLen: number, offset: bigint, nreadOut: number): number {
      try {
        preadIovecs(memory.buffer, iovs, iovsLen, offset, nreadOut, (dst, pos) => readSync(fd, dst, 0, dst.length, pos));
      } catch {
        return ERRNO_NOSYS;
      }
      return 0;
    },
  };
}

let fd: number | undefined;
try { if (readPath) fd = openSync(readPath, 'r'); } catch { /* no file: the engine's thread reads this worker's share */ }
try {
  instantiateWorker(module, memory, fd === undefined ? undefined : preadImports(fd)).run(block);
} finally {
  if (fd !== undefined) closeSync(fd);
}
