// How flashneuron reads bytes. RandomAccess is the one read primitive (files, blobs, OPFS
// handles, buffers); a FlashSource is a model image the engine reads from: the wasm reaches it
// through WASI fd_pread (wasi-shim.ts, or the runtime's own WASI), the host through pread(), and
// planned rounds of FFN reads through a PlanReader (plan-reader.ts).

/** Random access to bytes. */
export interface RandomAccess {
  /** Bytes in the file. */
  readonly size: number;
  /** Reads up to dst.length bytes at `offset` into dst; returns the count (short at the end, or a partial read). Throws on I/O errors. */
  pread(dst: Uint8Array, offset: number): number;
  close?(): void;
}

export interface FlashSource extends RandomAccess {
  /** File name the engine opens it by (path_open relative to the preopened directory). */
  readonly name: string;
  /**
   * Optional: reads `count` (file offset, length, destination) triples of `plan` into `memory`,
   * many at once; rejects with a clear error (nothing is written after it settles).
   */
  readBatch?(memory: WebAssembly.Memory, plan: Float64Array, count: number): Promise<void>;
  /** Alignment readBatch needs for offsets, lengths and destinations (4096 for O_DIRECT; 1 if absent). */
  readonly alignment?: number;
  close(): void;
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

/** Reads dst.length bytes at `offset` unless the file ends first (partial reads are continued); returns the count. */
export function readFully(src: RandomAccess, dst: Uint8Array, offset: number): number {
  let done = 0;
  while (done < dst.length) {
    const n = src.pread(dst.subarray(done), offset + done);
    if (!(n > 0)) break;
    done += n;
  }
  return done;
}

/** Reads exactly dst.length bytes or throws, naming what was being read. */
export function readExact(src: FlashSource, dst: Uint8Array, offset: number, what: string): void {
  const n = readFully(src, dst, offset);
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
