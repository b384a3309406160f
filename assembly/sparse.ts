// The FFN on flash, part one: the wanted set ("LLM in a flash" §3).
//
// Per token and layer the wanted neurons come from the low-rank predictor, from the host (an
// oracle list, tests) or are all of them (naive / hybrid modes). Each layer keeps a neuron
// cache (cache.ts): cached rows unused for `window` tokens are evicted (swap-delete), then, if
// room is still short, the least recently used rows not wanted now. The wanted neurons already
// cached are computed at once (ffn_hits); the missing ones go to planner.ts, which reads them
// in rounds, and round_done() appends each landed bundle to the cache — or, when the cache is
// full, computes it straight from staging (streamed). The arithmetic is forward.ts's neuron
// lists, accumulating into the same yp as the dense FFN.
import { alloc, allocBytes } from "./mem";
import { NeuronCache } from "./cache";
import { rowBytes } from "./dtype";
import { prep_len, prep_x, prep_zero } from "./kernels/matvec";
import { pmatvec } from "./threads";
import { vadd } from "./kernels/vec";
import { nLayers, d, ffn, bundleBytes, xb, xp, yp, hAct, listRows, listIds, L_FFN, WDT, neuron, neuronList } from "./forward";
import { missing, missCursor, missCached, items, itemId, itemPtr, plannerInit, plannerReset, planMisses, endRound } from "./planner";
import { now, set_io_error, memSince, computeSince, predictSince, addMemMs, addComputeMs } from "./stats";
import { crc32 } from "./flash";
import { land_init, land_rows, land_ok, land_set, land_part_layout } from "./land";
import { pland } from "./threads";
import { siluOn, siluWant, siluList, siluOne } from "./silu";

export const WANT_HOST: i32 = 0;       // the host fills predicted_ptr(l) (oracle, tests)
export const WANT_PREDICTOR: i32 = 1;  // the low-rank predictor
export const WANT_ALL: i32 = 2;        // every neuron (naive, hybrid)
export const WANT_SILU: i32 = 3;       // SiLU models: |silu(gate·x)·up·x| over a calibrated cut (silu.ts)
export const WINDOW_FOREVER: i32 = 0x3fffffff;  // hybrid: what is cached stays
export const WINDOW_LRU: i32 = 0x3ffffffe;      // sparse: neurons stay while the cache has room; when
                                                // it is full the least recently used go first

let flash = false;
let wantMode: i32 = WANT_HOST;
let window: i32 = 5;
let flashFd: u32 = 0;
let flashOff: usize = 0;   // (nLayers,) u64 file offset of each layer's FFN section
let caches = new Array<NeuronCache>(0);
let predicted: usize = 0;  // (nLayers, ffn) i32 wanted neuron ids of the token, ascending
let predCount: usize = 0;  // (nLayers,) i32
let hitRows: usize = 0;    // (ffn,) i32 cache rows of wanted neurons already cached
let hitCount: i32 = 0;
let step: i32 = 0;         // tokens run since reset, for the window

// Layout of a neuron in the file: nParts extents (1 = bundled; split layouts have up/gate/down/bias
// apart) at partBase[p] + id * partLen[p] within the layer's section, landing at partRow[p] of a row.
let nParts: i32 = 1;
const partBase = memory.data(4 * 8, 16);
const partLen = memory.data(4 * 8, 16);
const partRow = memory.data(4 * 8, 16);
const partStride = memory.data(4 * 8, 16);   // neuron to neuron in the section (0: the part's length)
@inline export function PB(p: i32): u64 { return load<u64>(partBase + (<usize>p << 3)); }
@inline export function PL(p: i32): usize { return <usize>load<u64>(partLen + (<usize>p << 3)); }
@inline export function PS(p: i32): usize { const s = <usize>load<u64>(partStride + (<usize>p << 3)); return s ? s : PL(p); }
@inline function PR(p: i32): usize { return <usize>load<u64>(partRow + (<usize>p << 3)); }
let scratchRow: usize = 0; // one bundle, for streamed neurons of split layouts
let land: usize = 0;       // land.ts's block: a round's bundles into their cache rows
let rowBytes_: usize = 0;  // bytes of a cache row: the bundle, or (SiLU mode) the down column alone

// Read by forward.ts (flash, flashFd) and planner.ts (caches, the file layout); written only here.
export { flash, flashFd, flashOff, caches, nParts, rowBytes_ };

// Predictor per layer: z = W2 · relu(W1 · x + b1) + b2; neuron i wanted when z_i > threshold.
let rank: i32 = 0;
let predW: usize = 0;      // (nLayers, 5) pointers: w1, b1, w2, b2 and threshold (f32 bits)
let predDt: i32 = 0;
let predH: usize = 0;      // (rank,)
let predZ: usize = 0;      // (ffn,)

// Host compute (a GPU backend): the wasm keeps deciding, caching and reading neurons but leaves
// their arithmetic to the host, which mirrors the cache from these lists.
let hostCompute = false;
let moved: usize = 0;      // (ffn,) i32 rows that received another row's bundle (swap-delete) this layer
let movedCount: i32 = 0;
let landedFirst: i32 = 0;  // the last round: cache rows [landedFirst, +landedCached) were appended,
let landedCached: i32 = 0; // items [landedCached, landedItems) were streamed (staging addresses in itemPtr)
let landedItems: i32 = 0;

export function set_host_compute(on: bool): void { hostCompute = on; }
export function moved_ptr(): usize { return moved; }
export function moved_count(): i32 { return movedCount; }
export function hit_rows_ptr(): usize { return hitRows; }
export function hit_count(): i32 { return hitCount; }
export function landed_first(): i32 { return landedFirst; }
export function landed_cached(): i32 { return landedCached; }
export function landed_items(): i32 { return landedItems; }
export function item_ids_ptr(): usize { return itemId; }
export function item_ptrs_ptr(): usize { return itemPtr; }
export function cache_rows_ptr(l: i32): usize { return caches[l].rows; }
export function cache_pointers_ptr(l: i32): usize { return caches[l].pointers; }

// Integrity of what lands from flash: the CRC-32 of every neuron's bundle as the cache holds it
// (the image's "ffn.crc" section). VERIFY_FIRST checks each neuron the first time it is read — a
// corrupted file is caught there, and a bitmap remembers who passed; VERIFY_ALWAYS checks every
// read (faulty transfers too). A mismatch stops the layer with io_error() = IO_BAD_BUNDLE and
// bad_bundle() = layer * ffn + neuron; the host then resets the caches.
export const VERIFY_OFF: i32 = 0;
export const VERIFY_FIRST: i32 = 1;
export const VERIFY_ALWAYS: i32 = 2;
export const IO_BAD_BUNDLE: i32 = -3;
let verify: i32 = VERIFY_OFF;
let crcTable: usize = 0;   // (nLayers, ffn) u32
let crcSeen: usize = 0;    // (nLayers * ffn) bits: passed once
let badBundle: i32 = -1;

/** Turns verification on (mode VERIFY_*); returns where the host puts the (nLayers, ffn) CRCs. */
export function flash_verify_init(mode: i32): usize {
  const n = <usize>(nLayers * ffn);
  verify = mode;
  crcTable = alloc(n << 2, 16);
  crcSeen = alloc(((n + 31) >> 5) << 2, 16);
  memory.fill(crcSeen, 0, ((n + 31) >> 5) << 2);
  return crcTable;
}

export function bad_bundle(): i32 { return badBundle; }

/** Whether neuron id of layer l, its bundle at p, is as written; a mismatch sets the error. */
function bundleOk(l: i32, id: i32, p: usize): bool {
  if (verify == VERIFY_OFF) return true;
  const k = <usize>(l * ffn + id), word = crcSeen + ((k >> 5) << 2), bit: u32 = 1 << <u32>(k & 31);
  if (verify == VERIFY_FIRST && (load<u32>(word) & bit) != 0) return true;
  if (crc32(0, p, rowBytes_) != load<u32>(crcTable + (k << 2))) {
    set_io_error(IO_BAD_BUNDLE); badBundle = <i32>k;
    return false;
  }
  markPassed(l, id);
  return true;
}

/** Neuron id of layer l passed its check (VERIFY_FIRST then trusts it). */
function markPassed(l: i32, id: i32): void {
  const k = <usize>(l * ffn + id), word = crcSeen + ((k >> 5) << 2);
  store<u32>(word, load<u32>(word) | (<u32>1 << <u32>(k & 31)));
}

/** Moves the FFN to flash. window: tokens a neuron stays cached after use (0 = no reuse). */
export function flash_init(wantMode_: i32, window_: i32, stagingBytes_: usize, maxOps_: i32, align_: u32): usize {
  const start = heap.alloc(0);
  flash = true; wantMode = wantMode_; window = window_;
  flashOff = alloc(<usize>nLayers << 3, 16);
  predicted = alloc(<usize>(nLayers * ffn) << 2, 16);
  predCount = alloc(<usize>nLayers << 2, 16);
  memory.fill(predCount, 0, <usize>nLayers << 2);
  hitRows = alloc(<usize>ffn << 2, 16);
  moved = alloc(<usize>ffn << 2, 16);
  scratchRow = alloc(bundleBytes, 64);
  land = land_init(ffn);
  plannerInit(stagingBytes_, maxOps_, align_);
  nParts = 1; rowBytes_ = bundleBytes;
  memory.fill(partStride, 0, 4 * 8);
  store<u64>(partBase, 0); store<u64>(partLen, <u64>bundleBytes); store<u64>(partRow, 0);
  return heap.alloc(0) - start;
}

/** Layer l's FFN section starts at `offset` in the file; its cache holds `capacity` neurons. */
export function flash_layer(l: i32, offset: u64, capacity: i32): void {
  store<u64>(flashOff + (<usize>l << 3), offset);
  const c = new NeuronCache(capacity, rowBytes_, ffn);
  if (l < caches.length) caches[l] = c; else caches.push(c);   // the host sets layers 0, 1, ... once
}

/** Split (unbundled) layout: part p of neuron id is at base + id*len in the section, row offset rowOff. */
export function flash_part(p: i32, base: u64, len: u32, rowOff: u32): void {
  store<u64>(partBase + (<usize>p << 3), base);
  store<u64>(partLen + (<usize>p << 3), <u64>len);
  store<u64>(partRow + (<usize>p << 3), <u64>rowOff);
  nParts = p + 1;
}

/** Part p of neuron id lies at base + id * stride (a part of each bundle: SiLU mode's down columns). */
export function flash_part_stride(p: i32, stride: u32): void { store<u64>(partStride + (<usize>p << 3), <u64>stride); }

/** Cache rows (and checked extents) of `bytes`: SiLU mode caches the down column alone. Before flash_layer. */
export function flash_row_bytes(bytes: u32): void { rowBytes_ = bytes; }

export function flash_set_fd(fd: u32): void { flashFd = fd; }
export function predicted_ptr(l: i32): usize { return predicted + (<usize>(l * ffn) << 2); }
export function predicted_count(l: i32): i32 { return load<i32>(predCount + (<usize>l << 2)); }
export function set_predicted_count(l: i32, n: i32): void { store<i32>(predCount + (<usize>l << 2), n); }
export function cache_rows(l: i32): i32 { return caches[l].count; }
export function cache_capacity(l: i32): i32 { return caches[l].capacity; }

/** Predictor of rank r (weights dtype dt); per layer set with predictor_layer. */
export function predictor_init(r: i32, dt: i32): usize {
  const start = heap.alloc(0);
  rank = r; predDt = dt;
  predW = alloc(<usize>nLayers * 20, 16);
  predH = alloc(<usize>prep_len(r) << 2, 64);
  predZ = alloc(<usize>ffn << 2, 64);
  return heap.alloc(0) - start;
}

/** Heap bytes predictor_init(r, ·) takes (the weights aside): what it allocates, replayed. */
export function predictor_state_bytes(r: i32): usize {
  return allocBytes(<usize>nLayers * 20, 16) + allocBytes(<usize>prep_len(r) << 2, 64) + allocBytes(<usize>ffn << 2, 64);
}

export function predictor_layer(l: i32, w1: usize, b1: usize, w2: usize, b2: usize, threshold: f32): void {
  const p = predW + <usize>l * 20;
  store<u32>(p, w1); store<u32>(p, b1, 4); store<u32>(p, w2, 8); store<u32>(p, b2, 12); store<f32>(p, threshold, 16);
}

/** Forgets the sequence: empty caches and window (a new prompt, or after a read error). */
export function flash_reset(): void {
  for (let l = 0; l < caches.length; l++) caches[l].clear();
  step = 0; set_io_error(0); plannerReset(); badBundle = -1;
}

/** Starts the next token's FFN traffic without the embedding (the host's I/O replay). */
export function flash_step(): void { if (flash) flashNextToken(); }

export function flashNextToken(): void {
  step++;
  if (window == 0) for (let l = 0; l < caches.length; l++) caches[l].clear();
}

/** The wanted neurons of layer l for this token, from the predictor (ascending ids). */
function predictLayer(l: i32): void {
  const p = predW + <usize>l * 20;
  const w1 = <usize>load<u32>(p), b1 = <usize>load<u32>(p, 4), w2 = <usize>load<u32>(p, 8), b2 = <usize>load<u32>(p, 12);
  const thr = load<f32>(p, 16);
  pmatvec(predDt, w1, rowBytes(predDt, d), xb, xp, predH, rank, d);
  vadd(b1, predH, rank);
  for (let i = 0; i < rank; i++) { const a = predH + (<usize>i << 2); store<f32>(a, max<f32>(load<f32>(a), 0)); }
  pmatvec(predDt, w2, rowBytes(predDt, rank), predH, xp, predZ, ffn, rank);
  const list = predicted + (<usize>(l * ffn) << 2);
  let n = 0;
  for (let i = 0; i < ffn; i++) {
    if (load<f32>(predZ + (<usize>i << 2)) + load<f32>(b2 + (<usize>i << 2)) > thr) store<i32>(list + (<usize>(n++) << 2), i);
  }
  store<i32>(predCount + (<usize>l << 2), n);
}

/**
 * Starts layer l's FFN: decides the wanted neurons, updates the window, evicts, lists the
 * cached (hits) and the missing neurons, and decides how to read the misses.
 */
export function ffn_begin(l: i32): void {
  const t0 = now();
  if (wantMode == WANT_PREDICTOR) { predictLayer(l); predictSince(t0); }
  else if (wantMode == WANT_ALL) {
    const list = predicted + (<usize>(l * ffn) << 2);
    for (let i = 0; i < ffn; i++) store<i32>(list + (<usize>i << 2), i);
    store<i32>(predCount + (<usize>l << 2), ffn);
  }
  else if (wantMode == WANT_SILU) { siluWant(l, predicted + (<usize>(l * ffn) << 2), predCount + (<usize>l << 2)); predictSince(t0); }
  const dt = WDT(l, L_FFN);
  prep_x(dt, xb, xp, d);
  prep_zero(dt, yp, d);
  if (wantMode != WANT_SILU) memory.fill(hAct + (<usize>(l * ffn) << 2), 0, <usize>ffn << 2);
  const t1 = now();
  addComputeMs(t1 - t0);

  const c = caches[l], t = step;
  const list = predicted + (<usize>(l * ffn) << 2), n = load<i32>(predCount + (<usize>l << 2));
  // Window: mark this token's neurons, evict those unused for `window` tokens.
  for (let i = 0; i < n; i++) store<i32>(c.lastUsed + (<usize>load<i32>(list + (<usize>i << 2)) << 2), t);
  movedCount = 0;
  if (window != WINDOW_FOREVER && window != WINDOW_LRU) {
    for (let r = c.count - 1; r >= 0; r--) {
      const id = c.neuronAt(r);
      if (load<i32>(c.lastUsed + (<usize>id << 2)) <= t - window) evict(c, id);
    }
  }
  hitCount = 0;
  let misses = 0;
  for (let i = 0; i < n; i++) {
    const id = load<i32>(list + (<usize>i << 2));
    const r = c.slot(id);
    if (r >= 0) store<i32>(hitRows + (<usize>(hitCount++) << 2), r);
    else store<i32>(missing + (<usize>(misses++) << 2), id);
  }
  // Room for the misses: evict the least recently used rows not wanted now, oldest first.
  if (c.count + misses > c.capacity && window != WINDOW_FOREVER) {
    if (window == WINDOW_LRU) evictOldest(c, t, c.count + misses - c.capacity);
    else {
      for (let age = t - window + 1; age < t && c.count + misses > c.capacity; age++) {
        for (let r = c.count - 1; r >= 0 && c.count + misses > c.capacity; r--) {
          const id = c.neuronAt(r);
          if (load<i32>(c.lastUsed + (<usize>id << 2)) == age) evict(c, id);
        }
      }
    }
    // Removing rows moved others: list the hit rows again.
    hitCount = 0;
    for (let i = 0; i < n; i++) {
      const r = c.slot(load<i32>(list + (<usize>i << 2)));
      if (r >= 0) store<i32>(hitRows + (<usize>(hitCount++) << 2), r);
    }
  }
  planMisses(misses, min(misses, c.capacity - c.count));
  memSince(t1);
}

// Ages (tokens since last use) the LRU eviction tells apart; older rows count as this old.
const AGE_BUCKETS: i32 = 256;
const ageCount = memory.data(AGE_BUCKETS << 2, 16);

/**
 * Evicts the `k` least recently used rows not wanted at token t (fewer if fewer are not wanted):
 * a count of rows by age finds the cut, then one pass from the last row evicts every row older
 * than the cut and rows at the cut until k are gone. O(rows), nothing allocated.
 */
function evictOldest(c: NeuronCache, t: i32, k: i32): void {
  memory.fill(ageCount, 0, <usize>AGE_BUCKETS << 2);
  for (let r = 0; r < c.count; r++) {
    const u = load<i32>(c.lastUsed + (<usize>c.neuronAt(r) << 2));
    if (u >= t) continue;
    const p = ageCount + (<usize>min(t - u, AGE_BUCKETS - 1) << 2);
    store<i32>(p, load<i32>(p) + 1);
  }
  let cut = AGE_BUCKETS - 1, older = 0;
  while (cut > 1 && older + load<i32>(ageCount + (<usize>cut << 2)) < k) older += load<i32>(ageCount + (<usize>(cut--) << 2));
  let atCut = k - older;
  for (let r = c.count - 1; r >= 0 && k > 0; r--) {
    const id = c.neuronAt(r), u = load<i32>(c.lastUsed + (<usize>id << 2));
    if (u >= t) continue;
    const a = min(t - u, AGE_BUCKETS - 1);
    if (a > cut || (a == cut && atCut > 0)) {
      if (a == cut) atCut--;
      evict(c, id);
      k--;
    }
  }
}

/** Swap-deletes neuron id, noting the row that received the last row's bundle. */
function evict(c: NeuronCache, id: i32): void {
  const r = c.slot(id);
  if (r != c.count - 1) store<i32>(moved + (<usize>(movedCount++) << 2), r);
  c.remove(id);
}

/** Computes the wanted neurons that were already cached (the host runs it while reads are in flight). */
export function ffn_hits(l: i32): void {
  if (hostCompute) return;
  const t0 = now();
  const c = caches[l], dt = WDT(l, L_FFN), acts = hAct + (<usize>(l * ffn) << 2);
  for (let i = 0; i < hitCount; i++) {
    const r = load<i32>(hitRows + (<usize>i << 2));
    store<u32>(listRows + (<usize>i << 2), <u32>c.rowPtr(r));
    store<i32>(listIds + (<usize>i << 2), c.neuronAt(r));
  }
  if (siluOn) siluList(dt, hitCount, acts); else neuronList(dt, hitCount, acts);
  computeSince(t0);
}

/** The round's reads have landed: append each neuron to the cache (or stream it) and compute it. */
export function round_done(l: i32): void {
  const t0 = now();
  const c = caches[l], dt = WDT(l, L_FFN), acts = hAct + (<usize>(l * ffn) << 2);
  const firstRow = c.count;
  // The items that get cache rows: rows taken here, in order; their bundles copied in and
  // checked on every thread (land.ts), the verdicts then taken in order.
  const cachedNow = max(0, min(items, missCached - (missCursor - items)));
  const rows = land_rows(land);
  for (let k = 0; k < cachedNow; k++) store<u32>(rows + (<usize>k << 2), <u32>c.rowPtr(c.insert(load<i32>(itemId + (<usize>k << 2)))));
  land_set(land, cachedNow, itemId, itemPtr, nParts, rowBytes_, verify != VERIFY_OFF ? crcTable + (<usize>(l * ffn) << 2) : 0,
           verify == VERIFY_FIRST ? crcSeen : 0, l * ffn);
  for (let p = 0; p < nParts; p++) land_part_layout(land, p, PR(p), PL(p));
  pland(land, cachedNow, <i64>cachedNow * <i64>rowBytes_);
  for (let k = 0; k < cachedNow; k++) {
    const id = load<i32>(itemId + (<usize>k << 2));
    if (!land_ok(land, k)) { set_io_error(IO_BAD_BUNDLE); badBundle = l * ffn + id; endRound(); return; }
    if (verify != VERIFY_OFF) markPassed(l, id);
  }
  // Streamed neurons (no room in the cache) are checked where they lie: in staging, or (split
  // layouts) assembled in the scratch row.
  for (let k = cachedNow; k < items && verify != VERIFY_OFF; k++) {
    const id = load<i32>(itemId + (<usize>k << 2)), ptrs = itemPtr + (<usize>k << 4);
    let p = load<usize>(ptrs);
    if (nParts > 1) {
      for (let q = 0; q < nParts; q++) memory.copy(scratchRow + PR(q), load<usize>(ptrs + (<usize>q << 2)), PL(q));
      p = scratchRow;
    }
    if (!bundleOk(l, id, p)) { endRound(); return; }
  }
  const t1 = now();
  addMemMs(t1 - t0);
  if (hostCompute) { landedFirst = firstRow; landedCached = cachedNow; landedItems = items; endRound(); return; }
  // The landed rows, and (bundled layout) the streamed ones straight from staging: no room in
  // the cache, computed and forgotten.
  let n = 0;
  for (let k = 0; k < cachedNow; k++) {
    const r = firstRow + k;
    store<u32>(listRows + (<usize>n << 2), <u32>c.rowPtr(r));
    store<i32>(listIds + (<usize>(n++) << 2), c.neuronAt(r));
  }
  if (nParts == 1) {
    for (let k = cachedNow; k < items; k++) {
      store<u32>(listRows + (<usize>n << 2), <u32>load<usize>(itemPtr + (<usize>k << 4)));
      store<i32>(listIds + (<usize>(n++) << 2), load<i32>(itemId + (<usize>k << 2)));
    }
  }
  if (siluOn) siluList(dt, n, acts); else neuronList(dt, n, acts);
  // Split layouts assemble each streamed neuron's parts into one bundle first.
  if (nParts > 1) {
    for (let k = cachedNow; k < items; k++) {
      const id = load<i32>(itemId + (<usize>k << 2)), ptrs = itemPtr + (<usize>k << 4);
      for (let p = 0; p < nParts; p++) memory.copy(scratchRow + PR(p), load<usize>(ptrs + (<usize>p << 2)), PL(p));
      if (siluOn) siluOne(dt, scratchRow, id, acts); else neuron(dt, scratchRow, acts + (<usize>id << 2));
    }
  }
  endRound();
  computeSince(t1);
}
