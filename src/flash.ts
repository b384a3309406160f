// FlashSource: the one interface every flash backend implements (file, memory, OPFS, ...).
// The wasm engine reaches a source through WASI fd_pread (wasi/), the host through pread().
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export interface FlashSource {
  /** File name the engine opens it by (path_open relative to the preopened directory). */
  readonly name: string;
  /** Bytes in the source. */
  readonly size: number;
  /** Reads up to dst.length bytes at `offset` into dst; returns the count (short only at end). Throws on I/O errors. */
  pread(dst: Uint8Array, offset: number): number;
  close(): void;
}

/** A file on disk, read with positioned reads. */
export class FileSource implements FlashSource {
  readonly name: string;
  readonly size: number;
  private fd: number;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'r');
    this.size = fstatSync(this.fd).size;
    this.name = path.split(/[\\/]/).pop()!;
  }

  pread(dst: Uint8Array, offset: number): number {
    let done = 0;
    while (done < dst.length) {
      const n = readSync(this.fd, dst, done, dst.length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** Bytes already in memory (tests, browsers before OPFS, embedded models). */
export class MemorySource implements FlashSource {
  readonly size: number;
  constructor(readonly name: string, private bytes: Uint8Array) {
    this.size = bytes.length;
  }
  pread(dst: Uint8Array, offset: number): number {
    const n = Math.max(0, Math.min(dst.length, this.size - offset));
    dst.set(this.bytes.subarray(offset, offset + n));
    return n;
  }
  close(): void {}
}

/** Reads exactly dst.length bytes or throws, naming what was being read. */
export function readExact(src: FlashSource, dst: Uint8Array, offset: number, what: string): void {
  const n = src.pread(dst, offset);
  if (n !== dst.length) {
    throw new Error(`${src.name}: ${what} is truncated (wanted ${dst.length} bytes at offset ${offset}, file has ${src.size})`);
  }
}
