// Compute threads over one shared memory (the "threads" build: shared, imported memory). The
// main instance posts a job — a matvec's arguments — in a 64-byte block of that memory, bumps
// its generation and wakes the workers; each worker (another instance of this module on its own
// thread, globals of its own) runs its part with matvec_part and counts itself done; the main
// instance runs part 0 meanwhile, then waits for the count. Parts split the kernels' row
// groups, so a row's bits never depend on the thread count. Workers allocate nothing and touch
// only the job block and the job's operands. In the builds without threads all of this folds
// away: jobs run whole on the caller. The workers' waiting loop is the host's (instantiateWorker
// in src/core/wasm.ts): it sleeps with Atomics.wait on the generation and calls worker_part.
import { alloc } from "./mem";
import { now } from "./stats";
import { matvec_part, dot_list_part, prep_x } from "./kernels/matvec";

const J_GEN: usize = 0;      // u32, bumped per job
const J_DONE: usize = 4;     // u32, workers finished with the current job
const J_PARTS: usize = 8;    // i32, parts of the current job (1 + workers taking part)
const J_READY: usize = 12;   // i32, workers that have started (they join jobs from then on)
const J_KIND: usize = 16;
const J_DT: usize = 20, J_W: usize = 24, J_STRIDE: usize = 28, J_XP: usize = 32, J_OUT: usize = 36, J_ROWS: usize = 40, J_COLS: usize = 44;
const KIND_MATVEC: i32 = 1;
const KIND_EXIT: i32 = 2;
const KIND_DOT_LIST: i32 = 3;   // J_W: the row pointers, J_ROWS: how many, J_COLS: their length

// The engine polls this long (ms) for the workers' parts before sleeping: they end about when
// its own does, and a sleeping thread takes tens of microseconds to wake.
const SPIN_MS: f64 = 2;
// Below this many weights a matvec runs whole on the caller: waking a thread costs more.
const MIN_PARALLEL: i32 = 1 << 18;

let job: usize = 0;          // the main instance's job block; 0: one thread
let workers: i32 = 0;

/** Main instance: room for `n` workers; returns the job block the host hands each of them. */
export function threads_init(n: i32): usize {
  // Allocated whatever the build and the count, so that the memory plan (and the neuron-cache
  // rows it sizes) never depends on them.
  const block = alloc(64, 64);
  memory.fill(block, 0, 64);
  if (!ASC_FEATURE_THREADS || n <= 0) return block;   // job stays 0: one thread
  job = block;
  workers = n;
  return job;
}

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
  const parts = post(KIND_MATVEC, dt, w, stride, xp, out, rows, cols, ready);
  matvec_part(dt, w, stride, xp, out, rows, cols, 0, parts);
  waitFor(job + J_DONE, parts - 1);
}

/** dot_list (x prepared in xp) split over the ready workers: the FFN's neuron lists. */
export function pdot_list(dt: i32, ptrs: usize, count: i32, xp: usize, n: i32, out: usize): void {
  const ready = !ASC_FEATURE_THREADS || job == 0 || <i64>count * <i64>n < <i64>MIN_PARALLEL || count < 8 ? 0 : atomic.load<i32>(job + J_READY);
  if (ready == 0) { dot_list_part(dt, ptrs, count, xp, n, out, 0, 1); return; }
  const parts = post(KIND_DOT_LIST, dt, ptrs, 0, xp, out, count, n, ready);
  dot_list_part(dt, ptrs, count, xp, n, out, 0, parts);
  waitFor(job + J_DONE, parts - 1);
}

/** Posts a job for 1 + ready parts and wakes the workers; returns the parts. */
function post(kind: i32, dt: i32, w: usize, stride: usize, xp: usize, out: usize, rows: i32, cols: i32, ready: i32): i32 {
  const parts = 1 + ready;
  atomic.store<i32>(job + J_KIND, kind);
  store<i32>(job + J_DT, dt); store<u32>(job + J_W, <u32>w); store<u32>(job + J_STRIDE, <u32>stride);
  store<u32>(job + J_XP, <u32>xp); store<u32>(job + J_OUT, <u32>out); store<i32>(job + J_ROWS, rows); store<i32>(job + J_COLS, cols);
  atomic.store<i32>(job + J_PARTS, parts);
  atomic.store<u32>(job + J_DONE, 0);
  atomic.add<u32>(job + J_GEN, 1);          // publishes the fields above (sequentially consistent)
  atomic.notify(job + J_GEN, workers);
  return parts;
}

/** Until the u32 at p reaches n: spin, then sleep on it. */
function waitFor(p: usize, n: u32): void {
  const t0 = now();
  for (let spins = 1; ; spins++) {
    const v = atomic.load<u32>(p);
    if (v >= n) return;
    if ((spins & 1023) != 0 || now() - t0 < SPIN_MS) continue;
    memory.atomic.wait32(p, <i32>v, 1000000);  // woken by the last worker's notify (1 ms cap: a lost wake-up only slows)
  }
}

/** Tells the workers to return from worker_run (the engine is closing). */
export function threads_stop(): void {
  if (!ASC_FEATURE_THREADS || job == 0) return;
  atomic.store<i32>(job + J_KIND, KIND_EXIT);
  atomic.store<i32>(job + J_PARTS, 0);
  atomic.add<u32>(job + J_GEN, 1);
  atomic.notify(job + J_GEN, workers);
  job = 0;   // from now on every job runs whole here: no worker is left to wait for
}

/** A worker joins: its id (1..n, in the order workers start; a job cut into k parts is run by ids below k, all started). */
export function worker_join(block: usize): i32 {
  if (!ASC_FEATURE_THREADS) return 0;
  return atomic.add<i32>(block + J_READY, 1) + 1;
}

/**
 * A worker's turn at job `gen`, the generation its host loop saw posted on `block`: its part,
 * counted done. Returns false when told to stop. A job that is no longer the current one is left
 * alone — the loop then sees the newer generation — and the generation is read again after the
 * job's parts and kind, so they are that job's: a job that counts this worker cannot be replaced
 * before the worker counts itself done, so its other fields stay put while it runs.
 */
export function worker_part(block: usize, id: i32, gen: i32): bool {
  if (!ASC_FEATURE_THREADS) return false;
  if (atomic.load<i32>(block + J_GEN) != gen) return true;
  const kind = atomic.load<i32>(block + J_KIND), parts = atomic.load<i32>(block + J_PARTS);
  if (atomic.load<i32>(block + J_GEN) != gen) return true;
  if (kind == KIND_EXIT) return false;
  if (id >= parts) return true;   // started after this job was cut into parts
  const dt = load<i32>(block + J_DT), w = <usize>load<u32>(block + J_W), xp = <usize>load<u32>(block + J_XP), out = <usize>load<u32>(block + J_OUT);
  if (kind == KIND_DOT_LIST) dot_list_part(dt, w, load<i32>(block + J_ROWS), xp, load<i32>(block + J_COLS), out, id, parts);
  else matvec_part(dt, w, <usize>load<u32>(block + J_STRIDE), xp, out, load<i32>(block + J_ROWS), load<i32>(block + J_COLS), id, parts);
  if (atomic.add<u32>(block + J_DONE, 1) + 1 == <u32>(parts - 1)) atomic.notify(block + J_DONE, 1);
  return true;
}
