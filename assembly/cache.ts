// The preallocated neuron cache of one FFN layer ("LLM in a flash", §3.3).
//
// Rows hold whole bundles (up | gate | down | bias, see src/format/image.ts); row r holds neuron
// pointers[r]. Rows 0..count-1 are live and contiguous, so the FFN kernel walks them in order.
//
//   rows      (capacity, bundleBytes)   bundle bytes, row-major
//   pointers  (capacity,) i32           neuron id of each row
//   slotOf    (ffn,) i32                row of each neuron, -1 when not cached
//   lastUsed  (ffn,) i32                last token at which the neuron was wanted (window)
//
// Delete moves the last live row into the hole (one memcpy, order does not matter for a sum);
// insert appends at row `count`. Nothing is ever reallocated. Where another device holds the
// rows' bytes (the WebGPU mirror, which moves its own), deletes move only the bookkeeping.
import { OBJECT_OVERHEAD } from "rt/common";
import { alloc, allocBytes, blockBytes } from "./mem";

let moveBytes = true;
/** Whether deletes move row bytes (off while another device mirrors and moves them). */
export function set_cache_moves(on: bool): void { moveBytes = on; }

export class NeuronCache {
  rows: usize;
  pointers: usize;
  slotOf: usize;
  lastUsed: usize;
  count: i32 = 0;

  constructor(public capacity: i32, public bundleBytes: usize, public ffn: i32) {
    this.rows = alloc(<usize>capacity * bundleBytes, 4096);
    this.pointers = alloc(<usize>capacity << 2, 16);
    this.slotOf = alloc(<usize>ffn << 2, 16);
    this.lastUsed = alloc(<usize>ffn << 2, 16);
    memory.fill(this.slotOf, 0xff, <usize>ffn << 2);
    memory.fill(this.lastUsed, 0xff, <usize>ffn << 2);
  }

  /** Heap bytes the constructor takes with these arguments: the object and its four buffers,
   *  alignment slack included (the host plans memory from this figure, cache_bytes). */
  static bytes(capacity: i32, bundleBytes: usize, ffn: i32): usize {
    return blockBytes(OBJECT_OVERHEAD + offsetof<NeuronCache>()) +
      allocBytes(<usize>capacity * bundleBytes, 4096) + allocBytes(<usize>capacity << 2, 16) +
      (allocBytes(<usize>ffn << 2, 16) << 1);
  }

  @inline slot(n: i32): i32 { return load<i32>(this.slotOf + (<usize>n << 2)); }
  @inline neuronAt(r: i32): i32 { return load<i32>(this.pointers + (<usize>r << 2)); }
  @inline rowPtr(r: i32): usize { return this.rows + <usize>r * this.bundleBytes; }

  /** Appends neuron n (not cached, cache not full); returns its row, whose bytes the caller fills. */
  insert(n: i32): i32 {
    const r = this.count++;
    store<i32>(this.pointers + (<usize>r << 2), n);
    store<i32>(this.slotOf + (<usize>n << 2), r);
    return r;
  }

  /** Removes cached neuron n by moving the last row into its place. */
  remove(n: i32): void {
    const r = this.slot(n);
    const last = --this.count;
    if (r != last) {
      const moved = this.neuronAt(last);
      if (moveBytes) memory.copy(this.rowPtr(r), this.rowPtr(last), this.bundleBytes);
      store<i32>(this.pointers + (<usize>r << 2), moved);
      store<i32>(this.slotOf + (<usize>moved << 2), r);
    }
    store<i32>(this.slotOf + (<usize>n << 2), -1);
  }

  clear(): void {
    for (let r = 0; r < this.count; r++) store<i32>(this.slotOf + (<usize>this.neuronAt(r) << 2), -1);
    memory.fill(this.lastUsed, 0xff, <usize>this.ffn << 2);
    this.count = 0;
  }
}

// ---- exports for tests and the host (one cache per handle) ----

const caches = new Array<NeuronCache>(0);

export function cache_new(capacity: i32, bundleBytes: usize, ffn: i32): i32 {
  caches.push(new NeuronCache(capacity, bundleBytes, ffn));
  return caches.length - 1;
}
/** Heap bytes new NeuronCache(capacity, bundleBytes, ffn) takes (cache_new and flash_layer). */
export function cache_bytes(capacity: i32, bundleBytes: usize, ffn: i32): usize {
  return NeuronCache.bytes(capacity, bundleBytes, ffn);
}
export function cache_insert(h: i32, n: i32): i32 { return caches[h].insert(n); }
export function cache_remove(h: i32, n: i32): void { caches[h].remove(n); }
export function cache_count(h: i32): i32 { return caches[h].count; }
export function cache_slot(h: i32, n: i32): i32 { return caches[h].slot(n); }
export function cache_row_ptr(h: i32, r: i32): usize { return caches[h].rowPtr(r); }
export function cache_pointers(h: i32): usize { return caches[h].pointers; }
export function cache_clear(h: i32): void { caches[h].clear(); }
