// ThreadReader: a round of positioned reads shared between a worker thread and the caller. Page-
// cache reads cost ≈ 1 µs of syscall each and a sparse token issues hundreds; on the calling
// thread alone they add straight to the token's time. Here the worker starts on the round as
// soon as it is planned, while the caller computes the neurons already cached; when the caller
// is done computing it takes the ops the worker has not reached (both pull op indices from one
// atomic counter), reading those straight into its memory.
//
// The worker cannot write into the engine's (unshared) wasm memory, so it reads into a
// SharedArrayBuffer, the round's ops packed one after another, and wait() copies the ops it read.
// The handshake is counters in the same buffer (Atomics wait/notify, in bounded sleeps): no
// event loop, no promise, nothing allocated per round.
import { closeSync, openSync, readSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { PlanReader } from '../io/plan-reader.js';
import { faultError, shortFaultError, shortLength, sleepSync, type FaultKind, type FaultPlan } from '../io/fault.js';

// Control words (Int32): the round asked for, the round the worker finished, its status (0 ok,
// else the length of its error message), the round's op count, the stop flag, and the next op
// to take.
export const ASK = 0, DONE = 1, STATUS = 2, COUNT = 3, STOP = 4, NEXT = 5;
const CTRL_BYTES = 64, MSG_BYTES = 1024;
/** Longest single sleep in a handshake wait: a lost wake-up costs at most this (ms). */
export const WAIT_SLICE_MS = 20;

/** Byte size of the shared buffer for `maxOps` ops of `stagingBytes` in all. */
function sharedBytes(stagingBytes: number, maxOps: number): number {
  return CTRL_BYTES + MSG_BYTES + maxOps * 24 + ((maxOps + 15) & ~15) + stagingBytes;
}

/**
 * The views both threads take of the shared buffer: control words, the error message, the plan
 * (file offset, length, offset in data), which ops the worker read, and the data.
 */
export function sharedViews(sab: SharedArrayBuffer, stagingBytes: number, maxOps: number) {
  const plan = CTRL_BYTES + MSG_BYTES, byWorker = plan + maxOps * 24, data = byWorker + ((maxOps + 15) & ~15);
  return {
    ctrl: new Int32Array(sab, 0, CTRL_BYTES >> 2), msg: new Uint8Array(sab, CTRL_BYTES, MSG_BYTES),
    plan: new Float64Array(sab, plan, maxOps * 3), byWorker: new Uint8Array(sab, byWorker, maxOps),
    data: new Uint8Array(sab, data, stagingBytes),
  };
}

/** Reads `len` bytes at `off` into buf[dst..]; undefined when they all landed, else why not. */
export function preadAll(fd: number, path: string, buf: Uint8Array, dst: number, len: number, off: number): string | undefined {
  for (let done = 0; done < len;) {
    let n: number;
    try { n = readSync(fd, buf, dst + done, len - done, off + done); } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return `${path}: read of ${len} bytes at offset ${off} failed (${err.code ? `${err.code}: ` : ''}${err.message})`;
    }
    if (n === 0) return `${path}: short read of ${len} bytes at offset ${off}: got ${done} (file truncated?)`;
    done += n;
  }
  return undefined;
}

// Injected faults (src/io/fault.ts), decided on the calling thread when a round begins: per op its
// kind (0 none, then FAULT_KINDS), milliseconds and read number, in a buffer both threads see.
const FAULT_KINDS: readonly FaultKind[] = ['eio', 'short', 'delay'];
export const faultViews = (sab: SharedArrayBuffer) => new Int32Array(sab);

/** preadAll, unless op `i` carries an injected fault: then that fault (an error text, or a stall before the read). */
export function preadOp(fd: number, path: string, buf: Uint8Array, dst: number, len: number, off: number, faults: Int32Array | undefined, i: number): string | undefined {
  const code = faults ? faults[3 * i] : 0;
  if (code) {
    const f = { kind: FAULT_KINDS[code - 1], ms: faults![3 * i + 1], read: faults![3 * i + 2], offset: off, length: len };
    if (f.kind === 'eio') return faultError(path, f).message;
    if (f.kind === 'short') {
      const got = shortLength(len);
      return preadAll(fd, path, buf, dst, got, off) ?? shortFaultError(path, f, got).message;
    }
    sleepSync(f.ms);
  }
  return preadAll(fd, path, buf, dst, len, off);
}

export class ThreadReader implements PlanReader {
  /** Its reads go through the page cache: no alignment. */
  readonly alignment = 1;
  private readonly sab: SharedArrayBuffer;
  private readonly ctrl: Int32Array;
  private readonly plan: Float64Array;
  private readonly byWorker: Uint8Array;
  private readonly msg: Uint8Array;
  private readonly data: Uint8Array;
  private readonly worker: Worker;
  private fd: number;
  private round = 0;
  private count = 0;
  private dsts: Float64Array;
  private memory: WebAssembly.Memory | undefined;
  /** Bytes this reader holds (its shared staging copy, plan and control words). */
  readonly bytes: number;
  get hostBytes(): number { return this.bytes; }
  /** Rounds read, and how many of their ops the worker and the caller took. */
  readonly stats = { rounds: 0, workerOps: 0, callerOps: 0 };

  /** Bytes a reader for these sizes holds. */
  static bytesFor(stagingBytes: number, maxOps: number): number {
    return sharedBytes(stagingBytes, maxOps);
  }

  /** Per op: an injected fault (kind, ms, read number), when the reader was given a FaultPlan. */
  private readonly faults: Int32Array | undefined;

  /**
   * `stagingBytes`: the bytes one round may read at most; `maxOps`: its reads at most; `faultPlan`:
   * faults to inject (tests), decided here as each round begins so either thread obeys them.
   */
  constructor(readonly path: string, stagingBytes: number, readonly maxOps: number, private readonly faultPlan?: FaultPlan) {
    this.bytes = sharedBytes(stagingBytes, maxOps);
    this.fd = openSync(path, 'r');
    this.sab = new SharedArrayBuffer(this.bytes);
    ({ ctrl: this.ctrl, msg: this.msg, plan: this.plan, byWorker: this.byWorker, data: this.data } = sharedViews(this.sab, stagingBytes, maxOps));
    this.dsts = new Float64Array(maxOps);
    const faultSab = faultPlan ? new SharedArrayBuffer(maxOps * 12) : undefined;
    this.faults = faultSab && faultViews(faultSab);
    this.worker = new Worker(new URL('./threadreader-worker.js', import.meta.url), {
      workerData: { path, sab: this.sab, stagingBytes, maxOps, faultSab },
    });
    this.worker.unref();
  }

  /**
   * Starts reading `count` (file offset, length, destination) triples of `plan` for `memory`;
   * returns at once. Call wait() before using the destinations or starting another round.
   */
  begin(memory: WebAssembly.Memory, plan: Float64Array, count: number): void {
    if (count > this.maxOps) throw new RangeError(`${this.path}: ${count} reads exceed the reader's ${this.maxOps}`);
    let at = 0;
    const memBytes = memory.buffer.byteLength;
    for (let i = 0; i < count; i++) {
      const off = plan[3 * i], len = plan[3 * i + 1], dst = plan[3 * i + 2];
      if (dst + len > memBytes) throw new RangeError(`${this.path}: destination ${dst}..${dst + len} is outside the ${memBytes}-byte memory`);
      this.plan[3 * i] = off;
      this.plan[3 * i + 1] = len;
      this.plan[3 * i + 2] = at;
      this.dsts[i] = dst;
      at += len;
      if (this.faults) {
        const f = this.faultPlan!.next(off, len);
        this.faults[3 * i] = f ? FAULT_KINDS.indexOf(f.kind) + 1 : 0;
        this.faults[3 * i + 1] = f?.ms ?? 0;
        this.faults[3 * i + 2] = f?.read ?? 0;
      }
    }
    if (at > this.data.length) throw new RangeError(`${this.path}: a round of ${at} bytes exceeds the reader's ${this.data.length}`);
    this.memory = memory;
    this.count = count;
    Atomics.store(this.ctrl, COUNT, count);
    Atomics.store(this.ctrl, NEXT, 0);
    Atomics.store(this.ctrl, ASK, ++this.round);
    Atomics.notify(this.ctrl, ASK);
  }

  /** Ops of the round begun last that a reader has taken so far (the worker, before wait() is called). */
  taken(): number {
    return Math.min(this.count, Atomics.load(this.ctrl, NEXT));
  }

  /**
   * Reads the ops the worker has not taken, waits for those it has, copies them into memory.
   * Throws the first failed read's error (after the worker has let go of the round).
   */
  wait(): void {
    const c = this.ctrl, r = this.round, p = this.plan, dsts = this.dsts;
    const mem = new Uint8Array(this.memory!.buffer);
    let failure: string | undefined;
    for (let i = Atomics.add(c, NEXT, 1); i < this.count && !failure; i = Atomics.add(c, NEXT, 1)) {
      this.stats.callerOps++;
      failure = preadOp(this.fd, this.path, mem, dsts[i], p[3 * i + 1], p[3 * i], this.faults, i);
    }
    if (failure) Atomics.store(c, NEXT, this.count);   // the worker takes nothing more
    while (Atomics.load(c, DONE) !== r) Atomics.wait(c, DONE, Atomics.load(c, DONE), WAIT_SLICE_MS);
    const status = Atomics.load(c, STATUS);
    if (failure || status) {
      // The ops the worker did read stay marked unless cleared here, and the next round would copy
      // their stale bytes over what the caller reads into the same slots.
      this.byWorker.fill(0, 0, this.count);
      throw new Error(failure ?? new TextDecoder().decode(this.msg.slice(0, status)));
    }
    const w = this.byWorker;
    this.stats.rounds++;
    for (let i = 0; i < this.count; i++) {
      if (!w[i]) continue;
      w[i] = 0;
      this.stats.workerOps++;
      const at = p[3 * i + 2], len = p[3 * i + 1];
      mem.set(this.data.subarray(at, at + len), dsts[i]);
    }
  }

  close(): void {
    Atomics.store(this.ctrl, STOP, 1);
    Atomics.store(this.ctrl, ASK, ++this.round);
    Atomics.notify(this.ctrl, ASK);
    void this.worker.terminate();
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
