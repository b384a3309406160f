// Compute threads over one shared memory (the "threads" build: shared, imported memory). The
// main instance posts a job — a matvec's, attention's or a neuron list's arguments, a layer's
// attention block or dense FFN in parts, a round of flash reads, a round's bundles to land — in
// a 128-byte block of that memory, bumps its generation and wakes the workers. The job is cut
// into chunks along the kernels' row groups or the layer's fixed parts (so a value's bits never
// depend on who computes it); every thread, the main one too, claims chunks one at a time until
// none are left, and the main instance then waits only for chunks already claimed. A worker the
// OS has not scheduled (a busy machine) thus delays nothing: the main thread takes its chunks.
// Workers allocate nothing and touch only the job block and the job's operands. In the builds
// without threads all of this folds away: jobs run whole on the caller (each p* function's
// `ready` is then a constant 0 the compiler folds, so `share` and its atomics are never
// compiled). The workers' waiting loop is the host's (instantiateWorker in src/core/wasm.ts): it
// sleeps with Atomics.wait on the generation and calls worker_part.
import { alloc } from "./mem";
import { now } from "./stats";
import { matvec_part, dot_list_part, prep_x } from "./kernels/matvec";
import { axpy_list_part } from "./kernels/axpy-list";
import { attention_heads, attention_part, attention_work } from "./attention";
import { read_part } from "./flash";
import { land_part } from "./land";
import { ffn_part, ffn_part_count } from "./ffn-part";
import { attn_part, attn_part_count } from "./attn-part";

const J_GEN: usize = 0;      // u32, bumped per job
const J_DONE: usize = 4;     // u32, chunks of the current job finished
const J_CHUNKS: usize = 8;   // i32, chunks of the current job
const J_READY: usize = 12;   // i32, workers that have started (they join jobs from then on)
const J_KIND: usize = 16;
const J_DT: usize = 20, J_W: usize = 24, J_STRIDE: usize = 28, J_XP: usize = 32, J_OUT: usize = 36, J_ROWS: usize = 40, J_COLS: usize = 44;
const J_NEXT: usize = 48;    // u32: the job's generation (low 16 bits) << 16 | the next chunk to claim
const J_W1: usize = 64, J_OUT1: usize = 68, J_ROWS1: usize = 72, J_W2: usize = 76, J_OUT2: usize = 80, J_ROWS2: usize = 84;  // KIND_MATVEC3
const J_TEAM: usize = 88;   // i32: threads the job was cut for (1 + ready)
const BLOCK: usize = 128;
const KIND_MATVEC: i32 = 1;
const KIND_EXIT: i32 = 2;
const KIND_DOT_LIST: i32 = 3;   // J_W: the row pointers, J_ROWS: how many, J_COLS: their length
const KIND_AXPY_LIST: i32 = 4;  // J_W: the row pointers, J_STRIDE: their coefficients, J_ROWS: how many, J_COLS: y's length
const KIND_ATTN: i32 = 6;       // J_W: an attention block (attention.ts), J_ROWS: its heads
const KIND_MATVEC3: i32 = 5;    // three matrices (q, k, v) of one dtype, stride and x: one job, each chunk a part of each
const KIND_READ: i32 = 7;       // J_W: a read plan (planner.ts), J_OUT: its results, J_ROWS: its reads, J_DT: the fd
const KIND_LAND: i32 = 8;       // J_W: a land block (land.ts), J_ROWS: its bundles
const KIND_FFN: i32 = 9;        // J_W: a dense FFN block (ffn-part.ts), J_ROWS: its parts
const KIND_ATTN_BLOCK: i32 = 10; // J_W: an attention block (attn-part.ts), J_ROWS: its parts (KV groups)

// The engine polls this long (ms) for claimed chunks before sleeping: they end about when its
// own do, and a sleeping thread takes tens of microseconds to wake. (Workers poll as briefly
// for the next job: longer polls take cores from the engine's thread on a busy machine.)
const SPIN_MS: f64 = 0.1;
// Below this many weights a job runs whole on the caller: handing it out costs more (measured:
// llama-relu-mini, 384 wide, gains from 2^16; workers are awake within a token).
const MIN_PARALLEL: i32 = 1 << 16;
// Attention's multiply-adds cost several times a weight's (short rows, the softmax): it pays
// from a few thousand on (measured on llama-relu-mini: positions from about 10).
const MIN_PARALLEL_ATTN: i32 = 1 << 13;
// Chunks per thread taking part: two, so that a late thread's share is halved. Each chunk costs
// two atomics that bounce between cores and its kernel's edge rows (measured on llama-relu-mini,
// 2 threads: four per thread ran 5-12 % slower).
const CHUNKS_PER_THREAD: i32 = 2;

let job: usize = 0;          // the main instance's job block; 0: one thread
let workers: i32 = 0;
let readers = false;         // the workers can read the flash file too (the host gave them its path)

/** Main instance: room for `n` workers; returns the job block the host hands each of them. */
export function threads_init(n: i32): usize {
  // Allocated whatever the build and the count, so that the memory plan (and the neuron-cache
  // rows it sizes) never depends on them.
  const block = alloc(BLOCK, 64);
  memory.fill(block, 0, BLOCK);
  if (!ASC_FEATURE_THREADS || n <= 0) return block;   // job stays 0: one thread
  job = block;
  workers = n;
  return job;
}

/** The host started the workers with the model file open: reads may be shared out (pread_list). */
export function threads_read(on: i32): void { readers = on != 0; }

/** Workers that have started (the main instance's view). */
export function threads_ready(): i32 {
  if (!ASC_FEATURE_THREADS || job == 0) return 0;
  return atomic.load<i32>(job + J_READY);
}

/** out = W x over `rows` rows (x prepared into xp here), split over the ready workers. */
export function pmatvec(dt: i32, w: usize, stride: usize, x: usize, xp: usize, out: usize, rows: i32, cols: i32): void {
  prep_x(dt, x, xp, cols);
  if (!ASC_FEATURE_THREADS) { matvec_part(dt, w, stride, xp, out, rows, cols, 0, 1); return; }
  const ready = job == 0 || <i64>rows * <i64>cols < <i64>MIN_PARALLEL ? 0 : atomic.load<i32>(job + J_READY);
  if (ready == 0) { matvec_part(dt, w, stride, xp, out, rows, cols, 0, 1); return; }
  share(KIND_MATVEC, dt, w, stride, xp, out, rows, cols, ready);
}

/**
 * Three products of one x as one job (attention's q, k and v: a barrier instead of three, and the
 * small k and v shared out too); each matrix's rows get the bits pmatvec gives them.
 */
export function pmatvec3(dt: i32, stride: usize, x: usize, xp: usize, cols: i32,
                         w0: usize, out0: usize, rows0: i32, w1: usize, out1: usize, rows1: i32, w2: usize, out2: usize, rows2: i32): void {
  prep_x(dt, x, xp, cols);
  const ready = !ASC_FEATURE_THREADS || job == 0 || <i64>(rows0 + rows1 + rows2) * <i64>cols < <i64>MIN_PARALLEL ? 0 : atomic.load<i32>(job + J_READY);
  if (ready == 0) {
    matvec_part(dt, w0, stride, xp, out0, rows0, cols, 0, 1);
    matvec_part(dt, w1, stride, xp, out1, rows1, cols, 0, 1);
    matvec_part(dt, w2, stride, xp, out2, rows2, cols, 0, 1);
    return;
  }
  store<u32>(job + J_W1, <u32>w1); store<u32>(job + J_OUT1, <u32>out1); store<i32>(job + J_ROWS1, rows1);
  store<u32>(job + J_W2, <u32>w2); store<u32>(job + J_OUT2, <u32>out2); store<i32>(job + J_ROWS2, rows2);
  share(KIND_MATVEC3, dt, w0, stride, xp, out0, rows0, cols, ready);
}

/** The query heads of attention block p (attention.ts), split over the ready workers. */
export function pattention(p: usize): void {
  const heads = attention_heads(p);
  const ready = !ASC_FEATURE_THREADS || job == 0 || heads < 2 || attention_work(p) < <i64>MIN_PARALLEL_ATTN ? 0 : atomic.load<i32>(job + J_READY);
  if (ready == 0) { attention_part(p, 0, 1); return; }
  share(KIND_ATTN, 0, p, 0, 0, 0, heads, 0, ready);
}

/** dot_list (x prepared in xp) split over the ready workers: the FFN's neuron lists. */
export function pdot_list(dt: i32, ptrs: usize, count: i32, xp: usize, n: i32, out: usize): void {
  const ready = !ASC_FEATURE_THREADS || job == 0 || <i64>count * <i64>n < <i64>MIN_PARALLEL || count < 8 ? 0 : atomic.load<i32>(job + J_READY);
  if (ready == 0) { dot_list_part(dt, ptrs, count, xp, n, out, 0, 1); return; }
  share(KIND_DOT_LIST, dt, ptrs, 0, xp, out, count, n, ready);
}

/** y += Σ coefs[k] · rows[k] (the down columns of the neurons that fired), y sliced over the ready workers. */
export function paxpy_list(dt: i32, rows: usize, coefs: usize, count: i32, y: usize, n: i32): void {
  const ready = !ASC_FEATURE_THREADS || job == 0 || <i64>count * <i64>n < <i64>MIN_PARALLEL || n < 64 ? 0 : atomic.load<i32>(job + J_READY);
  if (ready == 0) { axpy_list_part(dt, rows, coefs, count, y, n, 0, 1); return; }
  share(KIND_AXPY_LIST, dt, rows, coefs, 0, y, count, n, ready);
}

/**
 * The reads of plan entries [0, n) (planner.ts: offset, length, destination), shared out over
 * the workers where they can read (page-cache reads are syscalls: each core makes its own);
 * each one's bytes read or -errno land in results (read_part).
 */
export function pread_list(fd: u32, plan: usize, results: usize, n: i32): void {
  const ready = !ASC_FEATURE_THREADS || job == 0 || !readers || n < 4 ? 0 : atomic.load<i32>(job + J_READY);
  if (ready == 0) { read_part(fd, plan, results, n, 0, 1); return; }
  share(KIND_READ, <i32>fd, plan, 0, 0, results, n, 0, ready);
}

/** The parts of the dense FFN block p points at (ffn-part.ts), `weights` in all, over the ready workers; each part is a chunk. */
export function pffn(p: usize, weights: i64): void {
  const parts = ffn_part_count(p);
  const ready = !ASC_FEATURE_THREADS || job == 0 || parts < 2 || weights < <i64>MIN_PARALLEL ? 0 : atomic.load<i32>(job + J_READY);
  if (ready == 0) { for (let c = 0; c < parts; c++) ffn_part(p, c); return; }
  share(KIND_FFN, 0, p, 0, 0, 0, parts, 0, ready);
}

/** The KV groups of the attention block p points at (attn-part.ts), `weights` in all, over the ready workers; each group is a chunk. */
export function pattn_block(p: usize, weights: i64): void {
  const parts = attn_part_count(p);
  const ready = !ASC_FEATURE_THREADS || job == 0 || weights < <i64>MIN_PARALLEL ? 0 : atomic.load<i32>(job + J_READY);
  if (ready == 0) { for (let g = 0; g < parts; g++) attn_part(p, g); return; }
  share(KIND_ATTN_BLOCK, 0, p, 0, 0, 0, parts, 0, ready);
}

/** The bundles of land block p (land.ts: copies into cache rows and checksums), `bytes` in all, split over the ready workers. */
export function pland(p: usize, n: i32, bytes: i64): void {
  const ready = !ASC_FEATURE_THREADS || job == 0 || n < 2 || bytes < <i64>MIN_PARALLEL ? 0 : atomic.load<i32>(job + J_READY);
  if (ready == 0) { land_part(p, 0, 1); return; }
  share(KIND_LAND, 0, p, 0, 0, 0, n, 0, ready);
}

/** Posts a job in chunks for the ready workers and wakes them, claims chunks until none are left, then waits for the rest. */
function share(kind: i32, dt: i32, w: usize, stride: usize, xp: usize, out: usize, rows: i32, cols: i32, ready: i32): void {
  // Down columns: two slices of y per thread (each slice costs a pass over the whole row list),
  // whole 32-element blocks. Attention: no more chunks than heads.
  const most = CHUNKS_PER_THREAD * (1 + ready);
  const chunks = kind == KIND_AXPY_LIST ? min(2 * (1 + ready), cols >> 5) : kind == KIND_FFN || kind == KIND_ATTN_BLOCK ? rows
    : kind == KIND_ATTN || kind == KIND_READ || kind == KIND_LAND ? min(most, rows) : most;
  const gen = atomic.load<u32>(job + J_GEN) + 1;
  atomic.store<i32>(job + J_KIND, kind);
  store<i32>(job + J_DT, dt); store<u32>(job + J_W, <u32>w); store<u32>(job + J_STRIDE, <u32>stride);
  store<u32>(job + J_XP, <u32>xp); store<u32>(job + J_OUT, <u32>out); store<i32>(job + J_ROWS, rows); store<i32>(job + J_COLS, cols);
  store<i32>(job + J_TEAM, 1 + ready);
  atomic.store<i32>(job + J_CHUNKS, chunks);
  atomic.store<u32>(job + J_DONE, 0);
  atomic.store<u32>(job + J_NEXT, (gen & 0xffff) << 16);
  atomic.store<u32>(job + J_GEN, gen);     // publishes the fields above (sequentially consistent)
  atomic.notify(job + J_GEN, workers);
  claim(job, gen, kind, chunks);
  waitFor(job + J_DONE, <u32>chunks);
}

/**
 * Claims and runs chunks of job `gen` until none are left (or a newer job replaced it). A claim
 * succeeds only while J_NEXT still carries `gen`, and the job cannot be replaced before every
 * claimed chunk is counted done: the fields read for a successful claim are that job's.
 */
function claim(block: usize, gen: u32, kind: i32, chunks: i32): void {
  const dt = load<i32>(block + J_DT), w = <usize>load<u32>(block + J_W), stride = <usize>load<u32>(block + J_STRIDE);
  const xp = <usize>load<u32>(block + J_XP), out = <usize>load<u32>(block + J_OUT), rows = load<i32>(block + J_ROWS), cols = load<i32>(block + J_COLS);
  const team = load<i32>(block + J_TEAM);
  for (;;) {
    const v = atomic.load<u32>(block + J_NEXT);
    if ((v >>> 16) != (gen & 0xffff) || <i32>(v & 0xffff) >= chunks) return;
    if (atomic.cmpxchg<u32>(block + J_NEXT, v, v + 1) != v) continue;
    const c = spread(v & 0xffff, chunks, team);
    if (kind == KIND_DOT_LIST) dot_list_part(dt, w, rows, xp, cols, out, c, chunks);
    else if (kind == KIND_AXPY_LIST) axpy_list_part(dt, w, stride, rows, out, cols, c, chunks);
    else if (kind == KIND_ATTN) attention_part(w, c, chunks);
    else if (kind == KIND_READ) read_part(<u32>dt, w, out, rows, c, chunks);
    else if (kind == KIND_LAND) land_part(w, c, chunks);
    else if (kind == KIND_FFN) ffn_part(w, c);
    else if (kind == KIND_ATTN_BLOCK) attn_part(w, c);
    else {
      matvec_part(dt, w, stride, xp, out, rows, cols, c, chunks);
      if (kind == KIND_MATVEC3) {
        matvec_part(dt, <usize>load<u32>(block + J_W1), stride, xp, <usize>load<u32>(block + J_OUT1), load<i32>(block + J_ROWS1), cols, c, chunks);
        matvec_part(dt, <usize>load<u32>(block + J_W2), stride, xp, <usize>load<u32>(block + J_OUT2), load<i32>(block + J_ROWS2), cols, c, chunks);
      }
    }
    if (atomic.add<u32>(block + J_DONE, 1) + 1 == <u32>chunks) atomic.notify(block + J_DONE, 1);
  }
}

/**
 * The part that the c-th claim of a job takes. Claims alternate among the threads, so claim c
 * goes to part (c % team) * (chunks / team) + c / team: each thread walks a region of its own,
 * part after part, instead of the part beside another thread's. (Neighbouring rows streamed by
 * two cores at once cost each core a third of its speed here: each one's prefetcher fetches the
 * other's rows.) Which thread computes a part never changes its bits.
 */
@inline function spread(c: u32, chunks: i32, team: i32): i32 {
  if (team <= 1 || chunks % team != 0) return <i32>c;
  return (<i32>c % team) * (chunks / team) + <i32>c / team;
}

/** Until the u32 at p reaches n: spin, then sleep on it. The clock starts after 1024 spins (most waits end sooner: each reading of it is a call out of the wasm). */
function waitFor(p: usize, n: u32): void {
  let t0: f64 = -1;
  for (let spins = 1; ; spins++) {
    const v = atomic.load<u32>(p);
    if (v >= n) return;
    if ((spins & 1023) != 0) continue;
    if (t0 < 0) { t0 = now(); continue; }
    if (now() - t0 < SPIN_MS) continue;
    memory.atomic.wait32(p, <i32>v, 1000000);  // woken by the last worker's notify (1 ms cap: a lost wake-up only slows)
  }
}

/** Tells the workers to return from worker_run (the engine is closing). */
export function threads_stop(): void {
  if (!ASC_FEATURE_THREADS || job == 0) return;
  atomic.store<i32>(job + J_KIND, KIND_EXIT);
  atomic.store<i32>(job + J_CHUNKS, 0);
  atomic.store<u32>(job + J_NEXT, 0);
  atomic.add<u32>(job + J_GEN, 1);
  atomic.notify(job + J_GEN, workers);
  job = 0;   // from now on every job runs whole here: no worker is left to wait for
}

/** A worker joins: its id (1..n, in the order workers start); from then on it claims chunks of every job. */
export function worker_join(block: usize): i32 {
  if (!ASC_FEATURE_THREADS) return 0;
  return atomic.add<i32>(block + J_READY, 1) + 1;
}

/**
 * A worker's turn at job `gen`, the generation its host loop saw posted on `block`: it claims
 * chunks until none are left. Returns false when told to stop. A job that is no longer the
 * current one is left alone (the loop then sees the newer generation); the generation is read
 * again after the kind and chunk count, so they are that job's.
 */
export function worker_part(block: usize, id: i32, gen: i32): bool {
  if (!ASC_FEATURE_THREADS) return false;
  if (atomic.load<i32>(block + J_GEN) != gen) return true;
  const kind = atomic.load<i32>(block + J_KIND), chunks = atomic.load<i32>(block + J_CHUNKS);
  if (atomic.load<i32>(block + J_GEN) != gen) return true;
  if (kind == KIND_EXIT) return false;
  claim(block, <u32>gen, kind, chunks);
  return true;
}
