// A compute worker (worker_threads): an instance of the engine's threads build on its shared
// memory, running its parts of the engine's matrix products until the engine closes. Given the
// model file's path it opens the file and serves the wasm's fd_pread from it, so that it reads
// its share of the FFN's rounds (the wasm reads one file only: the fd it names is its WASI's, the
// same file).
import { closeSync, openSync, readSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { instantiateWorker } from '../core/wasm.js';

const { module, memory, block, readPath } = workerData as { module: WebAssembly.Module; memory: WebAssembly.Memory; block: number; readPath?: string };

// A failed read answers ENOSYS: the engine's thread then reads the same bytes itself and reports
// its own error, with its cause, if that fails too.
const ERRNO_NOSYS = 52;

/** wasi_snapshot_preview1's fd_pread over `fd` (iovecs into the shared memory, which grows but never moves). */
function preadImports(fd: number): Record<string, Function> {
  let bytes = new Uint8Array(memory.buffer), view = new DataView(memory.buffer);
  return {
    fd_pread(_fd: number, iovs: number, iovsLen: number, offset: bigint, nreadOut: number): number {
      if (bytes.buffer !== memory.buffer) { bytes = new Uint8Array(memory.buffer); view = new DataView(memory.buffer); }
      let pos = Number(offset), total = 0;
      try {
        for (let i = 0; i < iovsLen; i++) {
          const ptr = view.getUint32(iovs + i * 8, true), len = view.getUint32(iovs + i * 8 + 4, true);
          const n = readSync(fd, bytes, ptr, len, pos);
          total += n; pos += n;
          if (n < len) break;
        }
      } catch {
        return ERRNO_NOSYS;
      }
      view.setUint32(nreadOut, total, true);
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
