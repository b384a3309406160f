// Loading the engine's wasm: pick the SIMD build when the runtime validates it.
import { readFileSync } from 'node:fs';

const BUILD = new URL('../../build/', import.meta.url);

/** Exports of build/flashneuron*.wasm (assembly/index.ts). Pointers are byte offsets into memory. */
export interface EngineExports {
  memory: WebAssembly.Memory;
  _initialize(): void;
  alloc(size: number, align: number): number;
  memory_bytes(): number;
  [name: string]: any;
}

/** Exports returning an address or a byte count (usize). */
const UNSIGNED = /(_ptr|^alloc|^model_init|^flash_init|^predictor_init|^memory_bytes|^cache_pointers)$/

let simdBytes: Uint8Array<ArrayBuffer> | undefined;
let plainBytes: Uint8Array<ArrayBuffer> | undefined;

/** Supplies the wasm builds where there is no file system to read them from (browsers: fetch them). */
export function setEngineBinaries(simd: Uint8Array<ArrayBuffer>, plain: Uint8Array<ArrayBuffer>): void {
  simdBytes = simd; plainBytes = plain;
}

/** The wasm binary this runtime should run: SIMD when `WebAssembly.validate` accepts it. */
export function engineBinary(preferSimd = true): { bytes: Uint8Array<ArrayBuffer>; simd: boolean } {
  simdBytes ??= new Uint8Array(readFileSync(new URL("flashneuron.simd.wasm", BUILD)));
  if (preferSimd && WebAssembly.validate(simdBytes)) return { bytes: simdBytes, simd: true };
  plainBytes ??= new Uint8Array(readFileSync(new URL("flashneuron.wasm", BUILD)));
  return { bytes: plainBytes, simd: false };
}

/** Reads an AssemblyScript string (UTF-16, length at ptr-4) out of memory for abort messages. */
function asString(mem: WebAssembly.Memory, ptr: number): string {
  if (!ptr) return '';
  const len = new Uint32Array(mem.buffer, ptr - 4, 1)[0] >>> 1;
  return String.fromCharCode(...new Uint16Array(mem.buffer, ptr, len));
}

/**
 * Instantiates the engine. `wasiImports` supplies `wasi_snapshot_preview1` (see wasi/); without it
 * every WASI call fails with ENOSYS, which is enough for kernels alone.
 */
export function instantiateEngine(opts: { simd?: boolean; wasiImports?: Record<string, Function> } = {}): { exports: EngineExports; simd: boolean; instance: WebAssembly.Instance } {
  const { bytes, simd } = engineBinary(opts.simd ?? true);
  const module = new WebAssembly.Module(bytes);
  let memory: WebAssembly.Memory | undefined;
  const env = {
    now: () => performance.now(),
    abort(msg: number, file: number, line: number, col: number) {
      throw new Error(`wasm abort: ${memory ? asString(memory, msg) : msg} at ${memory ? asString(memory, file) : file}:${line}:${col}`);
    },
  };
  const enosys = () => 52;
  const wasi = new Proxy(opts.wasiImports ?? {}, { get: (t, k: string) => t[k] ?? enosys });
  const instance = new WebAssembly.Instance(module, { env, wasi_snapshot_preview1: wasi } as WebAssembly.Imports);
  // Addresses and sizes are usize (u32) in the wasm but arrive in JS as signed i32: past 2 GiB
  // they would turn negative. Exports that return them are wrapped to read them unsigned.
  const exports = { ...instance.exports } as unknown as EngineExports;
  for (const [name, f] of Object.entries(instance.exports)) {
    if (typeof f === 'function' && UNSIGNED.test(name)) exports[name] = (...a: unknown[]) => (f as (...a: unknown[]) => number)(...a) >>> 0;
  }
  memory = exports.memory;
  return { exports, simd, instance };
}
