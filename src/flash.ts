// FlashSource: the one interface every flash backend implements (file, memory, OPFS, ...).
// The wasm engine reaches a source through WASI fd_pread (wasi/), the host through pread(), and
// the host's parallel reads (io 'async') through readBatch().
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ParallelReader, ReaderOptions } from './reader.js';

export interface FlashSource {
  /** File name the engine opens it by (path_open relative to the preopened directory). */
  readonly name: string;
  /** Bytes in the source. */
  readonly size: number;
  /** Reads up to dst.length bytes at `offset` into dst; returns the count (short only at end). Throws on I/O errors. */
  pread(dst: Uint8Array, offset: number): number;
  /**
   * Optional: reads `count` (file offset, length, destination) triples of `plan` into `memory`,
   * many at once; rejects with a clear error (nothing is written after it settles).
   */
  readBatch?(memory: WebAssembly.Memory, plan: Float64Array, count: number): Promise<void>;
  /** Alignment readBatch needs for offsets, lengths and destinations (4096 for O_DIRECT; 1 if absent). */
  readonly alignment?: number;
  close(): void;
}

/**
 * A file on disk, read with positioned reads; readBatch runs a ParallelReader (queue depth,
 * optionally O_DIRECT) on its own descriptor, opened on first use.
 */
export class FileSource implements FlashSource {
  readonly name: string;
  readonly size: number;
  private fd: number;
  private parallel: ParallelReader | undefined;

  constructor(readonly path: string, private batchOpts: ReaderOptions = {}) {
    this.fd = openSync(path, 'r');
    this.size = fstatSync(this.fd).size;
    this.name = path.split(/[\\/]/).pop()!;
  }

  /** The parallel reader behind readBatch (opened on first use). */
  get reader(): ParallelReader {
    return this.parallel ??= new ParallelReader(this.path, this.batchOpts);
  }

  get alignment(): number { return this.reader.alignment; }

  readBatch(memory: WebAssembly.Memory, plan: Float64Array, count: number): Promise<void> {
    return this.reader.read(memory, plan, count);
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
    this.parallel?.close();
    this.parallel = undefined;
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
  async readBatch(memory: WebAssembly.Memory, plan: Float64Array, count: number): Promise<void> {
    readBatchInOrder(this, memory, plan, count);
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

/** A readBatch plan read one op after another through `src.pread` (sources without parallel reads). */
export function readBatchInOrder(src: FlashSource, memory: WebAssembly.Memory, plan: Float64Array, count: number): void {
  const mem = new Uint8Array(memory.buffer);
  for (let i = 0; i < count; i++) {
    const off = plan[3 * i], len = plan[3 * i + 1], dst = plan[3 * i + 2];
    const got = src.pread(mem.subarray(dst, dst + len), off);
    if (got !== len) throw shortRead(src.name, len, off, got);
  }
}

export function shortRead(name: string, len: number, off: number, got: number): Error {
  return new Error(`${name}: short read of ${len} bytes at offset ${off}: got ${got} (file truncated?)`);
}
