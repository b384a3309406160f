// Node, Deno and Bun: the runtime's own node:wasi, with the model's directory preopened as fd 3.
// Reads then go through the runtime's WASI fd_pread straight into wasm memory.
import { WASI } from 'node:wasi';
import { setFlagsFromString } from 'node:v8';
import { dirname, resolve } from 'node:path';
import { PREOPEN_FD, type WasiProvider } from '../io/wasi-shim.js';

export interface NodeWasi extends WasiProvider {
  /** fd of the preopened directory that holds `file`. */
  dirfd: number;
  /** The WASI object itself: whoever runs the instance must keep it reachable, or the GC destroys
   *  the fd table (and Node aborts) while the wasm still calls into it. */
  wasi: unknown;
}

let fastCallsOff = false;

/** node:wasi with the directory of `file` preopened. */
export function createNodeWasi(file: string): NodeWasi {
  // Node 20's WASI reports uvwasi's mallocs to V8 from inside V8 "fast API" calls; a GC started
  // there collects the WASI object in use and aborts the process. Plain calls are safe.
  if (!fastCallsOff && typeof process !== 'undefined' && process.versions?.node && !process.versions.bun && !(globalThis as any).Deno) {
    setFlagsFromString('--no-turbo-fast-api-calls');
    fastCallsOff = true;
  }
  const wasi = new WASI({ version: 'preview1', preopens: { '/flash': dirname(resolve(file)) }, returnOnExit: true } as any);
  const w = wasi as any;
  return {
    imports: w.wasiImport,
    dirfd: PREOPEN_FD,
    wasi,
    start(instance) {
      const exports = instance.exports as { memory: WebAssembly.Memory; _initialize(): void };
      // Bun's node:wasi has no initialize(): give it the memory and run _initialize ourselves.
      if (typeof w.initialize === 'function') w.initialize(instance);
      else { w.setMemory?.(exports.memory); exports._initialize(); }
    },
  };
}
