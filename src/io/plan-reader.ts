// Rounds of planned FFN reads. The wasm's planner (assembly/planner.ts) writes a round as
// (file offset, length, wasm address) triples; a PlanReader carries the round out while the
// engine computes the neurons it already holds, and the engine waits only for what is left.
// Implementations: the source's own parallel reads (BatchReader: files through the libuv pool,
// O_DIRECT, OPFS Blob reads, memory), a worker thread (src/node/threadreader.ts). Without a
// PlanReader the wasm reads each round itself through WASI fd_pread, one read at a time.
import type { FlashSource } from './source.js';

export interface PlanReader {
  /** Alignment its reads need for offsets, lengths and destinations (4096 for O_DIRECT; else 1). */
  readonly alignment: number;
  /** Bytes it holds outside wasm memory (a worker's staging copy): they count in the budget. */
  readonly hostBytes: number;
  /** Starts reading `count` triples of `plan` into `memory`. */
  begin(memory: WebAssembly.Memory, plan: Float64Array, count: number): void;
  /** Finishes the round begun last (synchronously where it can); throws a clear error when a read failed. */
  wait(): void | Promise<void>;
  close(): void;
}

/** A source's readBatch as a PlanReader. */
export class BatchReader implements PlanReader {
  readonly hostBytes = 0;
  private pending: Promise<void> | undefined;
  constructor(private readonly src: FlashSource & Required<Pick<FlashSource, 'readBatch'>>) {}
  get alignment(): number { return this.src.alignment ?? 1; }
  begin(memory: WebAssembly.Memory, plan: Float64Array, count: number): void {
    this.pending = this.src.readBatch(memory, plan, count);
  }
  wait(): Promise<void> {
    const p = this.pending;
    this.pending = undefined;
    return p ?? Promise.resolve();
  }
  close(): void {}
}
