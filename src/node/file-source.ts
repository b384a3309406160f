// A model image on disk as a FlashSource: positioned reads with Node's fs; readBatch runs a
// ParallelReader (queue depth, optionally O_DIRECT) on a descriptor of its own.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { FlashSource } from '../io/source.js';
import { ParallelReader, ReaderOptions } from './reader.js';

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
