// A minimal wasi_snapshot_preview1 over FlashSources, for hosts without a WASI of their own
// (browsers over OPFS, tests over memory). It provides exactly what assembly/flash.ts calls:
// path_open on the one preopened directory (fd 3), fd_pread and fd_close. Every other call
// answers ENOSYS (see src/core/wasm.ts).
import type { FlashSource } from './source.js';

const ERRNO_SUCCESS = 0;
const ERRNO_BADF = 8;
const ERRNO_IO = 29;
const ERRNO_NOENT = 44;
export const PREOPEN_FD = 3;

/** A wasi_snapshot_preview1 for the engine: this shim, or a runtime's own (src/node/wasi.ts). */
export interface WasiProvider {
  imports: Record<string, Function>;
  /** Runs the reactor's _initialize once the instance exists (and lets WASI calls reach its memory). */
  start(instance: WebAssembly.Instance): void;
  /** The host error behind the last EIO, so the engine can report its cause. */
  lastError?: Error;
}

export type WasiShim = WasiProvider;

/**
 * fd_pread's work in wasm memory `buffer`: the iovecs at `iovs` filled in turn from file offset
 * `offset` by `read(dst, pos)` (bytes read; fewer ends the call), the total stored at nreadOut.
 * A read's error passes through, nothing stored.
 */
export function preadIovecs(buffer: ArrayBufferLike, iovs: number, iovsLen: number, offset: bigint, nreadOut: number,
  read: (dst: Uint8Array, pos: number) => number): void {
  const view = new DataView(buffer);
  let pos = Number(offset), total = 0;
  for (let i = 0; i < iovsLen; i++) {
    const ptr = view.getUint32(iovs + i * 8, true), len = view.getUint32(iovs + i * 8 + 4, true);
    const n = read(new Uint8Array(buffer, ptr, len), pos);
    total += n; pos += n;
    if (n < len) break;
  }
  view.setUint32(nreadOut, total, true);
}

export function createWasiShim(files: FlashSource[]): WasiShim {
  let memory: WebAssembly.Memory | undefined;
  const open = new Map<number, FlashSource>();
  let nextFd = PREOPEN_FD + 1;
  const mem = () => memory!.buffer;

  const imports = {
    path_open(dirfd: number, _dirflags: number, pathPtr: number, pathLen: number, _oflags: number,
      _rb: bigint, _ri: bigint, _fdflags: number, fdOut: number): number {
      if (dirfd !== PREOPEN_FD) return ERRNO_BADF;
      const name = new TextDecoder().decode(new Uint8Array(mem(), pathPtr, pathLen).slice());   // a copy: decode refuses shared memory
      const src = files.find((f) => f.name === name);
      if (!src) return ERRNO_NOENT;
      const fd = nextFd++;
      open.set(fd, src);
      new DataView(mem()).setUint32(fdOut, fd, true);
      return ERRNO_SUCCESS;
    },
    fd_pread(fd: number, iovs: number, iovsLen: number, offset: bigint, nreadOut: number): number {
      const src = open.get(fd);
      if (!src) return ERRNO_BADF;
      try {
        preadIovecs(mem(), iovs, iovsLen, offset, nreadOut, (dst, pos) => src.pread(dst, pos));
      } catch (e) {
        shim.lastError = e as Error;
        return ERRNO_IO;
      }
      return ERRNO_SUCCESS;
    },
    fd_close(fd: number): number {
      return open.delete(fd) ? ERRNO_SUCCESS : ERRNO_BADF;
    },
    proc_exit(code: number): never {
      throw new Error(`wasm called proc_exit(${code})`);
    },
  };
  const shim: WasiShim = {
    imports,
    start(instance) {
      const e = instance.exports as { memory: WebAssembly.Memory; _initialize(): void };
      memory = e.memory;
      e._initialize();
    },
  };
  return shim;
}
