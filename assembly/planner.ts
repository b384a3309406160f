// Reading the misses of a layer from flash: which extents, in how many rounds, through staging
// ("LLM in a flash" §3.1-3.2).
//
// sparse.ts's ffn_begin lists the wanted neurons that are not cached (missing, ascending ids)
// and hands them over with planMisses(). plan_round() then lists up to maxOps reads of whole
// extents — neighbouring misses merged when the gap is cheaper to read through than a second
// operation — that fit the staging buffer; the host (or exec_plan_sync) reads them, and
// sparse.ts's round_done() takes the landed items (itemId, itemPtr). Staging offsets and read
// extents honour `align` (4096 for O_DIRECT).
import { alloc } from "./mem";
import { flash_read_with } from "./flash";
import { pread_list } from "./threads";
import { ffn, bundleBytes } from "./forward";
import { caches, flashFd, flashOff, nParts, PB, PL, PS } from "./sparse";
import { now, set_io_error, set_io_failure, add_io, ioSince, memSince } from "./stats";

let align: u64 = 1;        // read alignment: offsets, lengths and staging addresses
let staging: usize = 0;
let stagingBytes: usize = 0;
let plan: usize = 0;       // (maxOps, 3) f64: file offset, length, destination address
const ERRNO_NOSYS: i64 = 52;
let results: usize = 0;    // (maxOps) 16 bytes: exec_plan_sync's read of each entry (read_part)
let maxOps: i32 = 0;
let maxOpBytes: u64 = 1 << 30;   // longest single read (the host's parallel reads want several)

// The layer's misses and the rounds that read them.
let missing: usize = 0;    // (ffn,) i32 wanted, not cached
let missCount: i32 = 0;
let missCursor: i32 = 0;   // misses [0, missCursor) are planned
let missCached: i32 = 0;   // misses of this layer that get a cache row (the rest stream)
let items: i32 = 0;        // neurons landed by the current round
let itemId: usize = 0;     // (ffn,) i32
let itemPtr: usize = 0;    // (ffn, 4) staging address of each part
let roundGap: i32 = 0;
let roundBytes: f64 = 0;   // bytes the last planned round reads

// Read by sparse.ts (ffn_begin fills missing, round_done takes the items); written only here.
export { missing, missCursor, missCached, items, itemId, itemPtr };

// Cost of one more read operation vs bytes read through (host-measured, see src/io/profile.ts).
let opUs: f64 = 0;          // default: minimise bytes (buffered reads of unknown cache state)
let byteUs: f64 = 1;
let gapNeurons: i32 = 0;   // merge misses closer than this many neurons

/** The planner's buffers (flash_init). */
export function plannerInit(stagingBytes_: usize, maxOps_: i32, align_: u32): void {
  align = align_;
  missing = alloc(<usize>ffn << 2, 16);
  itemId = alloc(<usize>ffn << 2, 16);
  itemPtr = alloc(<usize>ffn << 4, 16);
  stagingBytes = stagingBytes_;
  staging = alloc(stagingBytes, 4096);
  maxOps = maxOps_;
  plan = alloc(<usize>maxOps * 24, 16);
  results = alloc(<usize>maxOps << 4, 16);
}

/** Nothing planned or landed (flash_reset). */
export function plannerReset(): void { missCount = 0; missCursor = 0; items = 0; }

/** The round's items are taken (round_done). */
@inline export function endRound(): void { items = 0; }

/** Read costs for the planner: per operation and per byte (µs), and the merge gap. */
export function planner_costs(opUs_: f64, byteUs_: f64, gapNeurons_: i32): void {
  opUs = opUs_; byteUs = byteUs_; gapNeurons = gapNeurons_;
}

export function plan_ptr(): usize { return plan; }
export function plan_capacity(): i32 { return maxOps; }
export function plan_bytes(): f64 { return roundBytes; }
export function set_max_op_bytes(n: u32): void { maxOpBytes = max<u64>(<u64>n, align); }

/** The layer's misses are missing[0, count), the first `cached` of them get cache rows: plan. */
@inline export function planMisses(count: i32, cached: i32): void {
  missCount = count; missCached = cached; missCursor = 0;
  choosePlan();
}

@inline function missAt(i: i32): i32 { return load<i32>(missing + (<usize>i << 2)); }

/** Whether reading from neuron a's part through neuron b's reads at most `gap` neurons' strides that
 *  nobody wants. Parts that fill their stride: b - a - 1 <= gap. A part of each bundle (SiLU mode's
 *  down columns): even neighbours lie apart, merged only where the profile says a gap is cheaper. */
@inline function near(a: i32, b: i32, gap: i32): bool {
  // Several parts of each bundle (CATS' up rows and down columns): extents read through would
  // overlap each other's bytes, so each neuron's parts are read alone.
  if (nParts > 1 && PS(0) != PL(0)) return false;
  return <f64>(b - a) * <f64>PS(0) - <f64>PL(0) <= <f64>gap * <f64>PS(0);
}

/** Estimated µs of reading misses [0, missCount) with merge gap `gap` (neurons). */
function planCost(gap: i32): f64 {
  if (missCount == 0) return 0;
  let ops: f64 = 0, bytes: f64 = 0;
  let i = 0;
  while (i < missCount) {
    let j = i;
    while (j + 1 < missCount && near(missAt(j), missAt(j + 1), gap)) j++;
    const span = <f64>(missAt(j) - missAt(i) + 1);
    for (let p = 0; p < nParts; p++) { ops += 1; bytes += (span - 1) * <f64>PS(p) + <f64>PL(p); }
    i = j + 1;
  }
  return ops * opUs + bytes * byteUs;
}

/** Staging bytes the extent of neurons [first, last] takes (all parts, with alignment slack). */
function stagingNeed(first: i32, last: i32): usize {
  let need: usize = 0;
  for (let p = 0; p < nParts; p++) need += <usize>(last - first) * PS(p) + PL(p) + <usize>(align << 1);
  return need;
}

/** Reads the extent of neurons [first, last] takes (all parts). */
function opsFor(first: i32, last: i32): i32 {
  let n = 0;
  for (let p = 0; p < nParts; p++) {
    const lo = (PB(p) + <u64>first * <u64>PS(p)) & ~(align - 1);
    const hi = (PB(p) + <u64>last * <u64>PS(p) + <u64>PL(p) + align - 1) & ~(align - 1);
    n += <i32>((hi - lo + maxOpBytes - 1) / maxOpBytes);
  }
  return n;
}

/** Picks the merge gap: the profile's, unless reading each missing span through is cheaper;
 *  never worse than reading the layer's whole FFN front to back. */
function choosePlan(): void {
  roundGap = gapNeurons;
  if (missCount == 0) return;
  const planned = planCost(gapNeurons);
  const spanned = planCost(ffn);   // one extent from the first to the last miss (per staging round)
  const rounds = Math.ceil(<f64>(missAt(missCount - 1) - missAt(0) + 1) * <f64>bundleBytes / <f64>stagingBytes);
  if (spanned + (rounds - 1) * opUs * <f64>nParts < planned) roundGap = ffn;
}

/**
 * Plans the next round of reads for layer l into plan_ptr(): (file offset, length, address)
 * triples. Returns the number of reads, 0 when every miss has landed.
 */
export function plan_round(l: i32): i32 {
  if (missCursor >= missCount) return 0;
  const t0 = now();
  const base = load<u64>(flashOff + (<usize>l << 3));
  const c = caches[l];
  let ops = 0, used: usize = 0;
  roundBytes = 0;
  items = 0;
  while (missCursor < missCount) {
    // Extent of misses [i, j]: neighbours closer than the gap are read through.
    const i = missCursor;
    let j = i, full = false;
    while (j + 1 < missCount && near(missAt(j), missAt(j + 1), roundGap)) {
      // Stop growing when the extent would not fit the staging buffer.
      if (used + stagingNeed(missAt(i), missAt(j + 1)) > stagingBytes) { full = true; break; }
      j++;
    }
    if (used + stagingNeed(missAt(i), missAt(j)) > stagingBytes) {
      if (ops == 0) { set_io_error(-2); return 0; }  // staging too small for one neuron: a setup bug
      break;
    }
    const first = missAt(i), last = missAt(j);
    const nOps = opsFor(first, last);
    if (ops + nOps > maxOps) { if (ops == 0) { set_io_error(-2); return 0; } break; }
    // An extent of neighbouring bundles (no gaps read through) that all get cache rows is read
    // straight into the rows they are appended to (round_done then has nothing to copy); the
    // rest land in staging. Either way a round reads at most stagingBytes (host readers hold a copy).
    const inPlace = nParts == 1 && align == 1 && PS(0) == PL(0) && last - first == j - i && j < missCached;
    for (let p = 0; p < nParts; p++) {
      const lo = (base + PB(p) + <u64>first * <u64>PS(p)) & ~(align - 1);
      const end = base + PB(p) + <u64>last * <u64>PS(p) + <u64>PL(p);
      const hi = (end + align - 1) & ~(align - 1);
      used = <usize>((<u64>used + align - 1) & ~(align - 1));
      const dst = inPlace ? c.rowPtr(c.count + items) : staging + used;
      // Long extents go out as several reads of at most maxOpBytes, in flight together.
      for (let at = lo; at < hi; at += maxOpBytes) {
        const len = min<u64>(maxOpBytes, hi - at);
        const e = plan + <usize>ops * 24;
        store<f64>(e, <f64>at); store<f64>(e, <f64>len, 8); store<f64>(e, <f64>(dst + <usize>(at - lo)), 16);
        roundBytes += <f64>len;
        ops++;
      }
      for (let k = i; k <= j; k++) {
        const id = missAt(k);
        if (p == 0) store<i32>(itemId + (<usize>(items + k - i) << 2), id);
        store<usize>(itemPtr + (<usize>(items + k - i) << 4) + (<usize>p << 2), dst + <usize>(base + PB(p) + <u64>id * <u64>PS(p) - lo));
      }
      used += <usize>(hi - lo);
    }
    items += j - i + 1;
    missCursor = j + 1;
    if (full) break;   // staging is full: a new extent would be one more, smaller read
  }
  memSince(t0);
  return ops;
}

/** Reads the planned round through WASI fd_pread, shared over the compute threads that can read (pread_list). False on a failed read. */
export function exec_plan_sync(n: i32): bool {
  const t0 = now();
  pread_list(flashFd, plan, results, n);
  for (let i = 0; i < n; i++) {
    const e = plan + <usize>i * 24, r = results + (<usize>i << 4);
    const off = <u64>load<f64>(e), len = <usize>load<f64>(e, 8);
    let got = load<i64>(r);
    // A worker that cannot read (no file of its own, or its read failed: ENOSYS) leaves the read
    // to this thread, which reports its own error if it fails too.
    if (got == -ERRNO_NOSYS) got = flash_read_with(flashFd, <usize>load<f64>(e, 16), len, off, r);
    if (got != <i64>len) { set_io_failure(got < 0 ? <i32>(-got) : -1, off, len, got); ioSince(t0); return false; }
  }
  add_io(roundBytes, n, now() - t0);
  return true;
}
