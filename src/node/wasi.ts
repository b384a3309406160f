// Node, Deno and Bun: the runtime's own node:wasi, with the model's directory preopened as fd 3.
// Reads then go through the runtime's WASI fd_pread straight into wasm memory.
import { createRequire } from 'node:module';
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
let WASI: (typeof import('node:wasi'))['WASI'] | undefined;

/**
 * node:wasi, loaded on first use: Node prints "WASI is an experimental feature" when the module
 * loads, which says nothing a user of this package can act on, so that one warning is dropped.
 */
function wasiClass(): (typeof import('node:wasi'))['WASI'] {
  if (WASI) return WASI;
  const emit = process.emitWarning;
  process.emitWarning = function (this: unknown, warning: string | Error, ...rest: unknown[]) {
    const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type ?? (warning as Error).name;
    if (type === 'ExperimentalWarning' && String(warning).includes('WASI')) return;
    return (emit as (...a: unknown[]) => void).call(process, warning, ...rest);
  } as typeof process.emitWarning;
  try {
    return WASI = (createRequire(import.meta.url)('node:wasi') as typeof import('node:wasi')).WASI;
  } finally {
    process.emitWarning = emit;
  }
}

/** Deno preopens read-write, so without --allow-write for `dir` its node:wasi refuses to start. */
function denoMayNotWrite(dir: string): boolean {
  const deno = (globalThis as { Deno?: { permissions: { querySync(d: { name: 'write'; path: string }): { state: string } } } }).Deno;
  return deno !== undefined && deno.permissions.querySync({ name: 'write', path: dir }).state !== 'granted';
}

/**
 * node:wasi with the directory of `file` preopened; undefined where it cannot open it (Deno
 * without write permission there), and the engine reads through the built-in shim instead.
 */
export function createNodeWasi(file: string): NodeWasi | undefined {
  if (denoMayNotWrite(dirname(resolve(file)))) return undefined;
  // Node 20's WASI reports uvwasi's mallocs to V8 from inside V8 "fast API" calls; a GC started
  // there collects the WASI object in use and aborts the process. Plain calls are safe.
  if (!fastCallsOff && typeof process !== 'undefined' && process.versions?.node && !process.versions.bun && !(globalThis as any).Deno) {
    setFlagsFromString('--no-turbo-fast-api-calls');
    fastCallsOff = true;
  }
  const wasi = new (wasiClass())({ version: 'preview1', preopens: { '/flash': dirname(resolve(file)) }, returnOnExit: true } as any);
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
