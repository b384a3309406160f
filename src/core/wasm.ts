// The wasm modules: the engine (the relaxed-SIMD build where the runtime validates it, else SIMD,
// else scalar; the SIMD ones with a threads twin) and the predictor-training kernels. Their bytes
// come from the host (src/node reads build/*.wasm, a browser fetches them); the exports are typed
// by the generated ABI (abi.ts).
import { ENGINE_UNSIGNED, type EngineExports, TRAIN_UNSIGNED, type TrainExports } from './abi.js';
import { relaxedSimd } from './relaxed.js';

export type { EngineExports, TrainExports } from './abi.js';
export type WasmName = 'simd' | 'plain' | 'threads' | 'relaxed' | 'relaxed-threads' | 'train';
/**
 * Which engine build runs: 'auto' the fastest this runtime validates (relaxed SIMD, SIMD, scalar);
 * a named one (benchmarks, tests) is used, or refused in one line where the runtime rejects it.
 */
export type WasmBuild = 'auto' | 'relaxed' | 'simd' | 'plain';
export const WASM_BUILDS: readonly WasmBuild[] = ['auto', 'relaxed', 'simd', 'plain'];
let build: string = 'auto';

type Binaries = Partial<Record<WasmName, Uint8Array<ArrayBuffer>>>;
let binaries: Binaries = {};
let loader: ((name: WasmName) => Uint8Array<ArrayBuffer>) | undefined;

/**
 * Supplies the wasm builds (browsers: fetched bytes); `threads` enables compute threads where
 * shared memory exists; `more` the relaxed-SIMD builds, used where the runtime validates them.
 */
export function setEngineBinaries(simd: Uint8Array<ArrayBuffer>, plain: Uint8Array<ArrayBuffer>, train?: Uint8Array<ArrayBuffer>, threads?: Uint8Array<ArrayBuffer>,
  more: { relaxed?: Uint8Array<ArrayBuffer>; 'relaxed-threads'?: Uint8Array<ArrayBuffer> } = {}): void {
  binaries = { ...binaries, simd, plain, ...(train ? { train } : {}), ...(threads ? { threads } : {}), ...more };
  valid.clear();
}

/** Picks the engine build (WasmBuild; checked when an engine starts); Node, Deno and Bun take it from FLASHNEURON_WASM. */
export function setWasmBuild(b: WasmBuild): void {
  build = b;
}

/** Where a host finds a build on first use (src/node: the package's build/ folder). */
export function setWasmLoader(load: (name: WasmName) => Uint8Array<ArrayBuffer>): void {
  loader = load;
}

/** Whether a build was supplied (or found) and this runtime validates it (relaxed: and runs it as standardised); remembered. */
const valid = new Map<WasmName, boolean>();
function validates(name: WasmName): boolean {
  let ok = valid.get(name);
  if (ok === undefined) {
    try { ok = (!name.startsWith('relaxed') || relaxedSimd()) && WebAssembly.validate(wasmBinary(name)); } catch { ok = false; }
    valid.set(name, ok);
  }
  return ok;
}

/** The single-thread engine build to run, and its threads twin ('plain' has none). */
function chosen(preferSimd: boolean, asked: string = build): { single: WasmName; threads?: WasmName } {
  if (!(WASM_BUILDS as readonly string[]).includes(asked)) throw new Error(`FLASHNEURON_WASM=${asked}: unknown wasm build (${WASM_BUILDS.join(', ')})`);
  const want = preferSimd ? asked : 'plain';
  const refuse = (what: string, flag: string) => new Error(`the ${what} wasm build was asked for (FLASHNEURON_WASM=${want}) but this runtime rejects it${flag}`);
  if (want === 'relaxed' || (want === 'auto' && validates('relaxed'))) {
    if (!validates('relaxed')) throw refuse('relaxed SIMD', ' (Node ≥ 22, Deno, Bun and Chromium run it; Node 20 has no standard relaxed SIMD)');
    // a host that supplied the relaxed build alone still gets threads, from the SIMD twin
    return { single: 'relaxed', threads: validates('relaxed-threads') ? 'relaxed-threads' : 'threads' };
  }
  if (want === 'simd' || (want === 'auto' && validates('simd'))) {
    if (!validates('simd')) throw refuse('SIMD', '');
    return { single: 'simd', threads: 'threads' };
  }
  return { single: 'plain' };
}

/** The bytes of a wasm build. */
export function wasmBinary(name: WasmName): Uint8Array<ArrayBuffer> {
  const b = binaries[name] ?? (binaries[name] = loader?.(name));
  if (!b) throw new Error(`the ${name} wasm build was not supplied (setEngineBinaries, or import flashneuron's Node entry)`);
  return b;
}

/**
 * Whether compute threads can run here: shared wasm memory (SharedArrayBuffer — in browsers only
 * cross-origin isolated pages have it) and the threads build, validated.
 */
export function threadsSupported(): boolean {
  if (typeof SharedArrayBuffer === 'undefined' || (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === false) return false;
  const t = chosen(true).threads;
  return t !== undefined && validates(t);
}

/**
 * The engine binary this runtime should run (`WebAssembly.validate` decides, see WasmBuild):
 * `simd` whether it is a SIMD build, `relaxed` whether the relaxed-SIMD one.
 */
export function engineBinary(preferSimd = true, threaded = false, asked?: WasmBuild): { bytes: Uint8Array<ArrayBuffer>; simd: boolean; relaxed: boolean; name: WasmName } {
  const c = chosen(preferSimd, asked);
  const name = threaded && c.threads ? c.threads : c.single;
  return { bytes: wasmBinary(name), simd: name !== 'plain', relaxed: name.startsWith('relaxed'), name };
}

/** Reads an AssemblyScript string (UTF-16, length at ptr-4) out of memory for abort messages. */
function asString(mem: WebAssembly.Memory, ptr: number): string {
  if (!ptr) return '';
  const len = new Uint32Array(mem.buffer, ptr - 4, 1)[0] >>> 1;
  return String.fromCharCode(...new Uint16Array(mem.buffer, ptr, len));
}

/**
 * Addresses and sizes are usize (u32) in the wasm but arrive in JS as signed i32: past 2 GiB they
 * would turn negative. The exports that return them (listed by the ABI) are wrapped to read them unsigned.
 */
function typedExports<T>(instance: WebAssembly.Instance, unsigned: readonly string[]): T {
  const exports: Record<string, unknown> = { ...instance.exports };
  for (const name of unsigned) {
    const f = instance.exports[name] as (...a: unknown[]) => number;
    exports[name] = (...a: unknown[]) => f(...a) >>> 0;
  }
  return exports as T;
}

/**
 * Instantiates the engine. `wasiImports` supplies `wasi_snapshot_preview1` (the built-in shim,
 * src/io/wasi-shim.ts, or the runtime's own); without it every WASI call fails with ENOSYS,
 * which is enough for kernels alone.
 */
export interface EngineInstance {
  exports: EngineExports;
  simd: boolean;
  /** The relaxed-SIMD build runs (f32 products fused where the CPU has FMA). */
  relaxed: boolean;
  instance: WebAssembly.Instance;
  /** The threads build: its module and shared memory, for the compute workers (threadsSupported()). */
  shared?: { module: WebAssembly.Module; memory: WebAssembly.Memory };
}

/** `build` overrides the chosen build (setWasmBuild) for this instance: kernels' tests and benchmarks. */
export function instantiateEngine(opts: { simd?: boolean; threads?: boolean; build?: WasmBuild; wasiImports?: Record<string, Function> } = {}): EngineInstance {
  const { bytes, simd, relaxed, name } = engineBinary(opts.simd ?? true, opts.threads === true, opts.build);
  const threaded = name.endsWith('threads');
  const module = new WebAssembly.Module(bytes);
  // The threads build imports its memory: shared, so that workers can run on it; it grows in
  // place (up to wasm32's 4 GiB) and never moves.
  const shared = threaded ? new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true }) : undefined;
  let memory: WebAssembly.Memory | undefined;
  const env = {
    now: () => performance.now(),
    abort(msg: number, file: number, line: number, col: number) {
      throw new Error(`wasm abort: ${memory ? asString(memory, msg) : msg} at ${memory ? asString(memory, file) : file}:${line}:${col}`);
    },
    ...(shared ? { memory: shared } : {}),
  };
  const instance = new WebAssembly.Instance(module, { env, wasi_snapshot_preview1: wasiOrEnosys(opts.wasiImports) } as WebAssembly.Imports);
  const exports = typedExports<EngineExports>(instance, ENGINE_UNSIGNED);
  memory = exports.memory;
  return { exports, simd, relaxed, instance, ...(shared ? { shared: { module, memory: shared } } : {}) };
}

/** WASI imports, every call not supplied failing with ENOSYS (enough for kernels alone). */
function wasiOrEnosys(imports: Record<string, Function> | undefined): Record<string, Function> {
  const enosys = () => 52;
  return new Proxy(imports ?? {}, { get: (t, k: string) => t[k] ?? enosys });
}

/**
 * A compute worker on the engine's shared memory: an instance of the threads build that never
 * runs its start function (that would allocate) nor WASI's. `wasiImports` (its host's fd_pread
 * over the model file) let it read its share of a round; without them its reads fail (ENOSYS)
 * and the engine's thread redoes them. `run(block)` is the worker's life, on its own thread: it
 * joins, then sleeps on the job block's generation word and takes its part of each job posted
 * (worker_part) until the engine stops it.
 */
export function instantiateWorker(module: WebAssembly.Module, memory: WebAssembly.Memory, wasiImports?: Record<string, Function>): { run(block: number): void } {
  const env = { memory, now: () => performance.now(), abort(_m: number, _f: number, line: number, col: number) { throw new Error(`wasm abort in a compute worker at ${line}:${col}`); } };
  const instance = new WebAssembly.Instance(module, { env, wasi_snapshot_preview1: wasiOrEnosys(wasiImports) } as WebAssembly.Imports);
  const x = instance.exports as unknown as { worker_join(block: number): number; worker_part(block: number, id: number, gen: number): number };
  return {
    run(block) {
      // The generation word is the block's first; it lies in memory that never moves (shared).
      const gen = new Int32Array(memory.buffer, block, 1);
      let seen = Atomics.load(gen, 0);
      const id = x.worker_join(block);
      // The engine may have stopped before this worker started (its stop then came before `seen`).
      if (!x.worker_part(block, id, seen)) return;
      for (;;) {
        // Jobs come microseconds apart within a token, and a sleeping thread takes tens of
        // microseconds to wake: poll briefly (SPIN_MS) before sleeping. Longer polls take the
        // core from the engine's own thread when the machine is busy.
        const t0 = performance.now();
        for (let i = 1; Atomics.load(gen, 0) === seen && ((i & 1023) !== 0 || performance.now() - t0 < SPIN_MS); i++);
        if (Atomics.load(gen, 0) === seen) Atomics.wait(gen, 0, seen);
        seen = Atomics.load(gen, 0);
        if (!x.worker_part(block, id, seen)) return;
      }
    },
  };
}
const SPIN_MS = 0.1;

let trainModule: WebAssembly.Module | undefined;
/** A fresh instance of the training kernels (its bump allocator never frees: one instance per job). */
export function instantiateTrain(): TrainExports {
  trainModule ??= new WebAssembly.Module(wasmBinary('train'));
  const instance = new WebAssembly.Instance(trainModule, {
    env: { abort(_m: number, _f: number, line: number, col: number) { throw new Error(`train.wasm abort at ${line}:${col}`); } },
  });
  const e = typedExports<TrainExports>(instance, TRAIN_UNSIGNED);
  e._initialize();
  return e;
}
