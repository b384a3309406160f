// ParallelReader: batches of positioned reads straight into a WebAssembly.Memory, with up to
// `queueDepth` reads in flight on libuv's thread pool (fs.read), optionally through O_DIRECT so
// the page cache neither hides the device nor doubles the memory used.
//
// A batch is a plan of (fileOffset, length, dstByteOffset) triples. `queueDepth` worker loops
// pull the next op index from a shared counter; each loop owns one callback created per batch,
// so nothing is allocated per op beyond what fs.read itself needs.
import { closeSync, constants, fstatSync, openSync, read, readSync } from 'node:fs';

export interface ReaderOptions {
  /** Ask for O_DIRECT (default false). Falls back to buffered reads where the platform or the
   *  filesystem refuses it (tmpfs, macOS, Windows); `direct` then reads false. */
  direct?: boolean;
  /** Reads in flight per batch (default 32). Real parallelism is also capped by libuv's pool,
   *  see ensureThreadpool(). */
  queueDepth?: number;
}

/** Counters a caller (or a test) can inspect; `maxInFlight` is the most reads outstanding at
 *  once during the latest batch. */
export interface ReaderStats {
  batches: number;
  ops: number;
  bytes: number;
  inFlight: number;
  maxInFlight: number;
}

const DIRECT_ALIGN = 4096;
/** Largest single read syscall; longer ops are split (fs.read lengths must fit in an int32). */
const MAX_IO = 1 << 30;

interface IoError extends Error { code?: string }

function describe(e: unknown): string {
  const err = e as IoError;
  const msg = String((err && err.message) ?? e);
  return err && err.code && !msg.startsWith(err.code) ? `${err.code}: ${msg}` : msg;
}

/**
 * Sets UV_THREADPOOL_SIZE to `size` unless it is already set. libuv sizes its pool once, at its
 * first use (any async fs, dns.lookup, crypto or zlib work), so this must run before that:
 * at the top of a CommonJS entry point or a `node -r` preload. In an ES-module entry point Node
 * 20's module loader has already started the pool before the module body runs, so there set the
 * variable in the environment of the process (or re-spawn it), as bench/probe.js does.
 */
export function ensureThreadpool(size: number): void {
  if (!Number.isInteger(size) || size < 1 || size > 1024) throw new RangeError(`ensureThreadpool: size must be an integer in 1..1024, got ${size}`);
  if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = String(size);
}

/** One batch in progress. */
class Batch {
  next = 0;
  active = 0;
  failed: Error | null = null;
  view: Uint8Array;
  resolve!: () => void;
  reject!: (e: Error) => void;
  readonly promise: Promise<void>;

  constructor(
    readonly reader: ParallelReader,
    readonly memory: WebAssembly.Memory,
    readonly plan: Float64Array,
    readonly count: number,
    readonly timings: Float64Array | undefined,
  ) {
    this.view = new Uint8Array(memory.buffer);
    this.promise = new Promise<void>((res, rej) => { this.resolve = res; this.reject = rej; });
  }
}

/** A worker loop: issues one op at a time, and the next when it completes. */
class Worker {
  /** Op index being read, its progress and the time it was issued. */
  private op = -1;
  private done = 0;
  private t0 = 0;
  private readonly cb: (err: NodeJS.ErrnoException | null, n: number) => void;

  constructor(private readonly b: Batch) {
    this.cb = (err, n) => this.complete(err, n);
  }

  /** Takes the next op; returns false when there is none left (or the batch failed). */
  start(): boolean {
    const b = this.b;
    if (b.failed || b.next >= b.count) return false;
    this.op = b.next++;
    this.done = 0;
    if (b.timings) this.t0 = performance.now();
    b.active++;
    const s = b.reader.stats;
    if (++s.inFlight > s.maxInFlight) s.maxInFlight = s.inFlight;
    this.issue();
    return true;
  }

  private issue(): void {
    const b = this.b, p = b.plan, i = this.op * 3;
    const len = p[i + 1] - this.done;
    // Memory may have grown (and its old buffer been detached) since the batch began.
    if (b.view.buffer !== b.memory.buffer) b.view = new Uint8Array(b.memory.buffer);
    try {
      read(b.reader.fd, b.view, p[i + 2] + this.done, len > MAX_IO ? MAX_IO : len, p[i] + this.done, this.cb);
    } catch (e) {
      // fs.read refused the arguments synchronously (say, memory detached): fail this op.
      this.complete(e as NodeJS.ErrnoException, 0);
    }
  }

  private complete(err: NodeJS.ErrnoException | null, n: number): void {
    const b = this.b, r = b.reader, p = b.plan, i = this.op * 3;
    let failure: Error | null = null;
    if (err) failure = r.ioError(p[i], p[i + 1], err);
    else {
      this.done += n;
      const want = p[i + 1];
      if (this.done < want) {
        // A partial read (rare on regular files): continue, unless this is the end of the file.
        if (n > 0 && !b.failed && (!r.direct || this.done % DIRECT_ALIGN === 0)) { this.issue(); return; }
        failure = r.shortRead(p[i], want, this.done);
      }
    }
    r.stats.inFlight--;
    b.active--;
    if (failure) {
      if (!b.failed) b.failed = failure;
    } else {
      r.stats.ops++;
      r.stats.bytes += this.done;
      if (b.timings) b.timings[this.op] = (performance.now() - this.t0) * 1000;
    }
    if (this.start()) return;
    if (b.active === 0) {
      if (b.failed) b.reject(b.failed);
      else b.resolve();
    }
  }
}

export class ParallelReader {
  readonly path: string;
  readonly size: number;
  readonly direct: boolean;
  readonly alignment: number;
  readonly queueDepth: number;
  /** Operation counters (see ReaderStats). */
  readonly stats: ReaderStats = { batches: 0, ops: 0, bytes: 0, inFlight: 0, maxInFlight: 0 };
  private _fd: number;

  constructor(path: string, opts: ReaderOptions = {}) {
    this.path = path;
    const qd = opts.queueDepth ?? 32;
    if (!Number.isInteger(qd) || qd < 1 || qd > 4096) throw new RangeError(`${path}: queueDepth must be an integer in 1..4096, got ${qd}`);
    this.queueDepth = qd;
    let fd = -1, direct = false;
    const O_DIRECT = (constants as Record<string, number | undefined>).O_DIRECT;
    if (opts.direct && O_DIRECT) {
      try {
        fd = openSync(path, constants.O_RDONLY | O_DIRECT);
        direct = ParallelReader.directWorks(fd);
        if (!direct) { closeSync(fd); fd = -1; }
      } catch (e) {
        if ((e as IoError).code !== 'EINVAL') throw new Error(`${path}: cannot open (${describe(e)})`);
        fd = -1; // the filesystem refuses O_DIRECT: fall back to buffered reads
      }
    }
    if (fd < 0) {
      try { fd = openSync(path, constants.O_RDONLY); } catch (e) { throw new Error(`${path}: cannot open (${describe(e)})`); }
    }
    this._fd = fd;
    this.direct = direct;
    this.alignment = direct ? DIRECT_ALIGN : 1;
    try { this.size = fstatSync(fd).size; } catch (e) { closeSync(fd); throw new Error(`${path}: cannot stat (${describe(e)})`); }
  }

  /** Some filesystems accept O_DIRECT at open and refuse it at read time: try one aligned read. */
  private static directWorks(fd: number): boolean {
    const scratch = new WebAssembly.Memory({ initial: 1 });
    try {
      readSync(fd, new Uint8Array(scratch.buffer), 0, DIRECT_ALIGN, 0);
      return true;
    } catch (e) {
      if ((e as IoError).code === 'EINVAL') return false;
      return true; // other errors (EISDIR, EIO) will show up, named, on the real reads
    }
  }

  /** The file descriptor (-1 once closed). */
  get fd(): number { return this._fd; }

  /**
   * Executes `count` read ops listed in `plan` as (fileOffset, length, dstByteOffset) triples,
   * up to queueDepth in flight, writing into memory.buffer; resolves when all are done. On an
   * I/O error or a short read, issues no further ops, waits for those in flight, then rejects
   * with an Error naming the file, the offset and the errno code. In direct mode an op whose
   * aligned length passes end of file is fine when it reads up to EOF.
   * Optional `timings` receives each op's latency (µs, issue to completion) at its index.
   * Do not grow `memory` while a batch is in flight.
   */
  read(memory: WebAssembly.Memory, plan: Float64Array, count: number, timings?: Float64Array): Promise<void> {
    try {
      this.validate(memory, plan, count, timings);
    } catch (e) {
      return Promise.reject(e);
    }
    this.stats.batches++;
    this.stats.maxInFlight = this.stats.inFlight;
    if (count === 0) return Promise.resolve();
    const b = new Batch(this, memory, plan, count, timings);
    const workers = Math.min(this.queueDepth, count);
    for (let w = 0; w < workers; w++) new Worker(b).start();
    return b.promise;
  }

  /** Same as read(), synchronously with readSync, one op at a time (queue depth 1). */
  readSync(memory: WebAssembly.Memory, plan: Float64Array, count: number, timings?: Float64Array): void {
    this.validate(memory, plan, count, timings);
    this.stats.batches++;
    this.stats.maxInFlight = count > 0 ? 1 : 0;
    let view = new Uint8Array(memory.buffer);
    for (let op = 0; op < count; op++) {
      const off = plan[op * 3], want = plan[op * 3 + 1], dst = plan[op * 3 + 2];
      const t0 = timings ? performance.now() : 0;
      let done = 0;
      while (done < want) {
        if (view.buffer !== memory.buffer) view = new Uint8Array(memory.buffer);
        const len = Math.min(want - done, MAX_IO);
        let n: number;
        try { n = readSync(this._fd, view, dst + done, len, off + done); } catch (e) { throw this.ioError(off, want, e); }
        done += n;
        if (n === 0 || (this.direct && done % DIRECT_ALIGN !== 0)) break;
      }
      if (done < want) {
        const short = this.shortRead(off, want, done);
        if (short) throw short;
      }
      this.stats.ops++;
      this.stats.bytes += done;
      if (timings) timings[op] = (performance.now() - t0) * 1000;
    }
  }

  close(): void {
    if (this._fd >= 0) closeSync(this._fd);
    this._fd = -1;
  }

  /** @internal The error for a read of `len` bytes at `off` that failed with `e`. */
  ioError(off: number, len: number, e: unknown): Error {
    const err = new Error(`${this.path}: read of ${len} bytes at offset ${off} failed (${describe(e)})`) as IoError;
    err.code = (e as IoError)?.code;
    return err;
  }

  /** @internal Null when `got` of `want` bytes at `off` is an acceptable end-of-file read, else the error. */
  shortRead(off: number, want: number, got: number): Error | null {
    const end = off + got;
    if (this.direct && end === this.size && off < this.size && off + want - end < DIRECT_ALIGN) return null;
    const why = off + want <= this.size ? 'file truncated?' : `range ends past end of file at ${this.size}`;
    const err = new Error(`${this.path}: short read of ${want} bytes at offset ${off}: got ${got} (${why})`) as IoError;
    err.code = 'ESHORT';
    return err;
  }

  private validate(memory: WebAssembly.Memory, plan: Float64Array, count: number, timings?: Float64Array): void {
    const p = this.path;
    if (this._fd < 0) throw new Error(`${p}: reader is closed`);
    if (!(memory instanceof WebAssembly.Memory)) throw new TypeError(`${p}: read needs a WebAssembly.Memory`);
    if (!(plan instanceof Float64Array)) throw new TypeError(`${p}: plan must be a Float64Array of (fileOffset, length, dstByteOffset) triples`);
    if (!Number.isInteger(count) || count < 0 || count * 3 > plan.length) throw new RangeError(`${p}: count ${count} does not fit a plan of ${plan.length / 3} ops`);
    if (timings && timings.length < count) throw new RangeError(`${p}: timings holds ${timings.length} entries for ${count} ops`);
    const memBytes = memory.buffer.byteLength, a = this.alignment;
    for (let op = 0; op < count; op++) {
      const off = plan[op * 3], len = plan[op * 3 + 1], dst = plan[op * 3 + 2];
      if (!Number.isSafeInteger(off) || off < 0) throw new RangeError(`${p}: op ${op}: file offset ${off} is not a non-negative integer`);
      if (!Number.isSafeInteger(len) || len < 0) throw new RangeError(`${p}: op ${op}: length ${len} is not a non-negative integer`);
      if (!Number.isSafeInteger(dst) || dst < 0) throw new RangeError(`${p}: op ${op}: destination ${dst} is not a non-negative integer`);
      if (dst + len > memBytes) throw new RangeError(`${p}: op ${op}: destination ${dst}..${dst + len} is outside the ${memBytes}-byte memory`);
      if (a > 1 && (off % a !== 0 || len % a !== 0 || dst % a !== 0)) {
        throw new RangeError(`${p}: op ${op}: O_DIRECT needs offset, length and destination to be multiples of ${a} (offset ${off}, length ${len}, destination ${dst})`);
      }
    }
  }
}
