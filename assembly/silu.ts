// SiLU-gated models on flash without retraining (training-free activation sparsity, as TEAL):
// gate and up stay resident as one (2·ffn, d) matrix per layer, every neuron's
// h = silu(gate·x)·(up·x) is computed, and only neurons with |h| at or above the layer's
// calibrated cut contribute — through their down columns, the only part read from flash
// (sparse.ts caches down columns alone; planner.ts reads that part of each bundle). The
// product judges better than the gate alone: at equal sparsity it costs far less perplexity.
// A cut of 0 keeps every neuron: the dense FFN.
//
// The CATS rule (cats) is the alternative measured beside it: only gate resident, a neuron kept
// where |silu(gate·x)| passes the cut, its up row and down column read (cache rows hold both).
import { alloc } from "./mem";
import { rowBytes } from "./dtype";
import { axpy, dot } from "./kernels/matvec";
import { pdot_list, paxpy_list } from "./threads";
import { nLayers, d, ffn, xb, xp, yp, hAct, listRows, listIds, listDots } from "./forward";
import { tealIn, tealMatvec, TEAL_FFN } from "./teal";

let siluOn = false;
let tab: usize = 0;     // (nLayers, 4) 32-bit: [gate; up] matrix, its dtype, the cut (f32 bits)
let dots: usize = 0;    // (2·ffn,) f32: gate products, then up products
let cats = false;       // the CATS rule: gate alone resident; rows hold up | down
let downRow: usize = 0; // CATS: the down column's offset in a cache row

// Read by sparse.ts (which list kernel runs); written only here.
export { siluOn };

/** Turns SiLU mode on (after flash_init); returns the bytes its state took. */
export function silu_init(catsRule: i32, downRowOff: u32): usize {
  const start = heap.alloc(0);
  siluOn = true; cats = catsRule != 0; downRow = downRowOff;
  tab = alloc(<usize>nLayers << 4, 16);
  memory.fill(tab, 0, <usize>nLayers << 4);
  dots = alloc(<usize>ffn << 3, 64);
  return heap.alloc(0) - start;
}

/** Layer l: its resident [gate rows; up rows] (2·ffn rows of d, dtype dt) and its |h| cut. */
export function silu_layer(l: i32, gateUp: usize, dt: i32, threshold: f32): void {
  const p = tab + (<usize>l << 4);
  store<u32>(p, <u32>gateUp); store<i32>(p, dt, 4); store<f32>(p, threshold, 8);
}

/** The wanted neurons of layer l (ascending, into list; their number at countAt) and every h into hAct (0 where dropped). */
export function siluWant(l: i32, list: usize, countAt: usize): void {
  const p = tab + (<usize>l << 4);
  const w = <usize>load<u32>(p), dt = load<i32>(p, 4), thr = load<f32>(p, 8);
  // The gate products in one multi-row product and the up products row by row, as the dense FFN
  // takes them (ffn-part.ts). The down columns are summed in the order the neurons come (cached,
  // then read), the dense FFN's in parts: at a cut of 0 y's last bits differ from the dense FFN's,
  // which Q8_0/Q4_0 images' int8 activations can make visible in the logits (about 1 %).
  const rb = rowBytes(dt, d), up = dots + (<usize>ffn << 2);
  tealMatvec(dt, w, rb, tealIn(l, TEAL_FFN, xb, d), xp, dots, ffn, d);   // xb, or its small entries zeroed (teal.ts)
  if (!cats) {
    for (let i = 0; i < ffn; i++) store<u32>(listRows + (<usize>i << 2), <u32>(w + <usize>(ffn + i) * rb));
    pdot_list(dt, listRows, ffn, xp, d, up);
  }
  const acts = hAct + (<usize>(l * ffn) << 2);
  let n = 0;
  for (let i = 0; i < ffn; i++) {
    const g = load<f32>(dots + (<usize>i << 2));
    // As forward.ts's dense FFN; CATS holds silu(gate) until its up row has landed (siluList).
    const h = cats ? g / (1 + Mathf.exp(-g)) : g / (1 + Mathf.exp(-g)) * load<f32>(up + (<usize>i << 2));
    const keep = Mathf.abs(h) >= thr;
    store<f32>(acts + (<usize>i << 2), keep ? h : 0);
    if (keep) store<i32>(list + (<usize>(n++) << 2), i);
  }
  store<i32>(countAt, n);
}

/** y += h · down for the neurons whose cache rows lie at listRows[0, n) (ids listIds; h from acts). */
export function siluList(dt: i32, n: i32, acts: usize): void {
  if (cats) {
    for (let k = 0; k < n; k++) siluOne(dt, <usize>load<u32>(listRows + (<usize>k << 2)), load<i32>(listIds + (<usize>k << 2)), acts);
    return;
  }
  // The rows are the down columns: their h as coefficients, summed in list order on every thread count.
  for (let k = 0; k < n; k++) store<f32>(listDots + (<usize>k << 2), load<f32>(acts + (<usize>load<i32>(listIds + (<usize>k << 2)) << 2)));
  paxpy_list(dt, listRows, listDots, n, yp, d);
}

/** One neuron from its row: the down column (CATS: up row | down column; xp holds the FFN input prepared). */
export function siluOne(dt: i32, row: usize, id: i32, acts: usize): void {
  const a = acts + (<usize>id << 2);
  let h = load<f32>(a);
  if (h == 0) return;
  if (cats) { h *= dot(dt, row, xp, d); store<f32>(a, h); axpy(dt, h, row + downRow, yp, d); }
  else axpy(dt, h, row, yp, d);
}
