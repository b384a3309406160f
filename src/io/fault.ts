// Fault injection for flash reads: a FlashSource wrapper that makes chosen reads fail with EIO,
// end short (as at a truncated file) or stall, so every read path's error handling and recovery
// can be tested on demand — the wasm's WASI reads (through the shim), a source's parallel
// readBatch, the Node read thread (src/node/threadreader.ts asks the same FaultPlan) and OPFS.
//
// Reads are numbered from 0 in the order they are issued, counting only those the spec covers
// (by default the image's FFN sections: the reads a token makes; load-time reads of the header,
// tokenizer and resident weights are left alone). Whether read n faults is a function of n and
// the spec alone, so a seeded spec gives the same faults on every run and on every thread.
//
// Text form (FLASHNEURON_FAULTS in Node, `?faults=` on the browser worker's URL), items
// separated by ';':
//   eio@12          read 12 fails with EIO          short@3,9   reads 3 and 9 end short
//   delay:50@p0.1/7 each read stalls 50 ms with probability 0.1, drawn from seed 7
//   eio@p0.01/42x1  at most one fault from this rule
//   scope=all       count every read (default: scope=ffn)
import { readImageHeader } from '../format/image.js';
import type { FlashSource } from './source.js';

export type FaultKind = 'eio' | 'short' | 'delay';

export interface FaultRule {
  kind: FaultKind;
  /** Read numbers that fault. */
  at?: number[];
  /** Else each read faults with this probability, drawn from `seed`. */
  p?: number;
  seed?: number;
  /** delay: how long the read stalls (ms). */
  ms?: number;
  /** At most this many faults from this rule. */
  times?: number;
}

export interface FaultSpec {
  rules: FaultRule[];
  /** Which reads count: those of the image's FFN sections (default) or all. */
  scope?: 'ffn' | 'all';
}

/** One injected fault: the read's number, where it was, what happened. */
export interface Fault { read: number; kind: FaultKind; offset: number; length: number; ms: number }

const KINDS: readonly FaultKind[] = ['eio', 'short', 'delay'];

/** Parses the text form (see the top of this file); throws a clear error for anything else. */
export function parseFaults(text: string): FaultSpec {
  const spec: FaultSpec = { rules: [] };
  for (const raw of text.split(';')) {
    const item = raw.trim();
    if (!item) continue;
    const scope = /^scope=(ffn|all)$/.exec(item);
    if (scope) { spec.scope = scope[1] as 'ffn' | 'all'; continue; }
    const m = /^(eio|short|delay)(?::(\d+))?@(?:p([0-9.]+)(?:\/(\d+))?|([\d,]+))(?:x(\d+))?$/.exec(item);
    if (!m) throw new Error(`bad fault "${item}": expected KIND[:MS]@N[,N…] or KIND[:MS]@pP[/SEED], KIND eio|short|delay, or scope=ffn|all`);
    const rule: FaultRule = { kind: m[1] as FaultKind };
    if (m[2] !== undefined) rule.ms = Number(m[2]);
    if (rule.kind === 'delay' && rule.ms === undefined) throw new Error(`bad fault "${item}": a delay needs its milliseconds (delay:MS@…)`);
    if (m[3] !== undefined) {
      rule.p = Number(m[3]);
      if (!(rule.p >= 0 && rule.p <= 1)) throw new Error(`bad fault "${item}": probability ${m[3]} is not in 0..1`);
      rule.seed = Number(m[4] ?? 1);
    } else rule.at = m[5].split(',').filter(Boolean).map(Number);
    if (m[6] !== undefined) rule.times = Number(m[6]);
    spec.rules.push(rule);
  }
  return spec;
}

/** A uniform number in [0, 1) from (seed, n): the same on every thread and every run. */
function draw(seed: number, n: number): number {
  let h = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(n | 0, 0x85ebca6b) ^ Math.floor(n / 2 ** 32)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return ((h ^ (h >>> 16)) >>> 0) / 2 ** 32;
}

/** Decides, read by read, which faults happen; counts the reads and keeps a log of the faults. */
export class FaultPlan {
  /** Reads counted so far (the next read's number). */
  reads = 0;
  /** The faults injected so far. */
  readonly log: Fault[] = [];
  private readonly used: number[];
  /** The byte range whose reads count ([0, ∞) unless scoped to the FFN). */
  from = 0;
  to = Infinity;

  constructor(readonly spec: FaultSpec) {
    for (const r of spec.rules) if (!KINDS.includes(r.kind)) throw new Error(`unknown fault kind ${r.kind} (eio, short or delay)`);
    this.used = spec.rules.map(() => 0);
  }

  /** Scopes the plan to the FFN sections of the image in `src` (nothing to scope when it is not one). */
  scopeTo(src: FlashSource): void {
    if ((this.spec.scope ?? 'ffn') !== 'ffn') return;
    let ffn: { offset: number; length: number }[] = [];
    try { ffn = readImageHeader(src).sections.filter((s) => s.name.startsWith('ffn.')); } catch { /* not an image: every read counts */ }
    if (!ffn.length) return;
    this.from = Math.min(...ffn.map((s) => s.offset));
    this.to = Math.max(...ffn.map((s) => s.offset + s.length));
  }

  /** The fault for the next read of `length` bytes at `offset`, if any (reads out of scope are not counted). */
  next(offset: number, length: number): Fault | undefined {
    if (offset < this.from || offset >= this.to) return undefined;
    const n = this.reads++;
    const rules = this.spec.rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i];
      if (r.times !== undefined && this.used[i] >= r.times) continue;
      const hit = r.at ? r.at.includes(n) : r.p !== undefined && draw(r.seed ?? 1, n) < r.p;
      if (!hit) continue;
      this.used[i]++;
      const f: Fault = { read: n, kind: r.kind, offset, length, ms: r.ms ?? 0 };
      this.log.push(f);
      return f;
    }
    return undefined;
  }
}

/** The error an injected EIO raises, worded as a real one: file, length, offset, errno. */
export function faultError(name: string, f: Fault): Error {
  const e = new Error(`${name}: read of ${f.length} bytes at offset ${f.offset} failed (EIO: injected i/o error, read ${f.read})`) as Error & { code?: string };
  e.code = 'EIO';
  return e;
}

/** The error an injected short read raises where a whole read is required. */
export function shortFaultError(name: string, f: Fault, got: number): Error {
  const e = new Error(`${name}: short read of ${f.length} bytes at offset ${f.offset}: got ${got} (injected, read ${f.read})`) as Error & { code?: string };
  e.code = 'ESHORT';
  return e;
}

/** Bytes an injected short read delivers: half, so it is neither empty nor whole. */
export const shortLength = (len: number): number => len >> 1;

let sleeper: Int32Array | undefined;
/** Blocks the thread for `ms` (Atomics.wait where allowed: Node, workers; else a busy wait). */
export function sleepSync(ms: number): void {
  if (ms <= 0) return;
  try {
    sleeper ??= new Int32Array(new SharedArrayBuffer(4));
    Atomics.wait(sleeper, 0, 0, ms);
    return;
  } catch { /* no SharedArrayBuffer, or a thread that may not block: spin */ }
  const until = Date.now() + ms;
  while (Date.now() < until);
}

/** A FlashSource whose reads fail, end short or stall as its FaultPlan says. */
export class FaultySource implements FlashSource {
  readonly name: string;
  readonly size: number;
  /** Present when the wrapped source has parallel reads (io 'async'). */
  readonly readBatch?: (memory: WebAssembly.Memory, plan: Float64Array, count: number) => Promise<void>;

  constructor(readonly inner: FlashSource, readonly plan: FaultPlan) {
    this.name = inner.name;
    this.size = inner.size;
    plan.scopeTo(inner);
    if (inner.readBatch) this.readBatch = (memory, p, count) => this.batch(memory, p, count);
  }

  get alignment(): number | undefined { return this.inner.alignment; }

  /** Where the last short read ended: a read continuing it there finds the end of the file, once. */
  private cut = -1;

  pread(dst: Uint8Array, offset: number): number {
    if (offset === this.cut && dst.length > 0) { this.cut = -1; return 0; }
    this.cut = -1;
    const f = this.plan.next(offset, dst.length);
    if (f?.kind === 'eio') throw faultError(this.name, f);
    if (f?.kind === 'short') {
      const got = this.inner.pread(dst.subarray(0, shortLength(dst.length)), offset);
      this.cut = offset + got;
      return got;
    }
    if (f?.kind === 'delay') sleepSync(f.ms);
    return this.inner.pread(dst, offset);
  }

  /** The source's own parallel reads, with each op's fault decided in plan order; a failed op rejects the batch once it settles. */
  private async batch(memory: WebAssembly.Memory, p: Float64Array, count: number): Promise<void> {
    let failure: Error | undefined, stall = 0;
    for (let i = 0; i < count; i++) {
      const f = this.plan.next(p[3 * i], p[3 * i + 1]);
      if (!f) continue;
      if (f.kind === 'delay') stall += f.ms;
      else failure ??= f.kind === 'eio' ? faultError(this.name, f) : shortFaultError(this.name, f, shortLength(f.length));
    }
    if (stall) await new Promise((res) => setTimeout(res, stall));
    if (!failure) return this.inner.readBatch!(memory, p, count);
    await this.inner.readBatch!(memory, p, count).catch(() => {});
    throw failure;
  }

  close(): void { this.inner.close(); }
}

/** `src` behind the faults of `spec` (a parsed spec or its text form); `src` itself when there are none. */
export function withFaults(src: FlashSource, spec: FaultSpec | string | undefined): FlashSource {
  if (spec === undefined || spec === '') return src;
  return new FaultySource(src, new FaultPlan(typeof spec === 'string' ? parseFaults(spec) : spec));
}
