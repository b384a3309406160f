// TEAL-style input sparsity for the resident matrices (an optional switch): per layer three
// calibrated cuts — the attention norm's output (q, k, v share it), the attention output (o),
// the FFN norm's output (gate and up) — under which an input entry counts as zero. forward.ts
// and silu.ts pass each such input through tealIn() and multiply with tealMatvec(): the input
// with its small entries zeroed through the ordinary (threaded) matvec, or, where the kept share
// is under teal_gather_below's, the kept columns alone (kernels/sparse-input.ts; one thread).
// A cut of 0 leaves the input as it is: the dense product bit for bit.
//
// The host calls teal_init once after model_init (state allocated there, none per token), then
// teal_layer per layer. teal_counts_ptr() holds per layer and input (nLayers, 3) the entries cut
// and seen (f64 pairs) since teal_reset; with recording on, teal_record_ptr() holds per layer the
// attention norm's output (d) then the attention output (qDim) of the last token (calibration;
// the FFN input is forward.ts's ffn_input_ptr).
import { alloc } from "./mem";
import { DT_Q8_0 } from "./dtype";
import { prep_len, prep_x } from "./kernels/matvec";
import { mask_inputs, gather_inputs, sparse_matvec } from "./kernels/sparse-input";
import { pmatvec, pmatvec3 } from "./threads";
import { nLayers, d } from "./forward";

export const TEAL_QKV: i32 = 0;
export const TEAL_O: i32 = 1;
export const TEAL_FFN: i32 = 2;

let tealOn = false;
let cuts: usize = 0;     // (nLayers, 3) f32
let counts: usize = 0;   // (nLayers, 3) (cut, seen) f64
let xt: usize = 0;       // the input with its small entries zeroed (widest)
let idx: usize = 0;      // the kept entries' indices and values (gathered kernel)
let xs: usize = 0;
let rec: usize = 0;      // (nLayers, d + qDim) f32 when recording
let qd: i32 = 0;
let gatherBelow: f32 = 0;
let gathered: i32 = -1;  // kept entries listed in idx/xs for the input now in xt, else -1

/** Turns the switch on (after model_init); widest: the widest input (max of d, qDim, ffn); record: keep each layer's inputs. Returns the bytes taken. */
export function teal_init(widest: i32, qDim: i32, record: i32): usize {
  const start = heap.alloc(0);
  tealOn = true; qd = qDim;
  cuts = alloc(<usize>(nLayers * 3) << 2, 16); memory.fill(cuts, 0, <usize>(nLayers * 3) << 2);
  counts = alloc(<usize>(nLayers * 6) << 3, 16); memory.fill(counts, 0, <usize>(nLayers * 6) << 3);
  xt = alloc(<usize>prep_len(widest) << 2, 64); memory.fill(xt, 0, <usize>prep_len(widest) << 2);
  idx = alloc(<usize>widest << 2, 64); xs = alloc(<usize>widest << 2, 64);
  if (record) { const n = <usize>(nLayers * (d + qDim)) << 2; rec = alloc(n, 64); memory.fill(rec, 0, n); }
  return heap.alloc(0) - start;
}

/** Layer l's cuts: the attention norm's output (q/k/v), the attention output (o), the FFN's input (gate/up). */
export function teal_layer(l: i32, qkv: f32, o: f32, ffnIn: f32): void {
  const p = cuts + (<usize>(l * 3) << 2);
  store<f32>(p, qkv); store<f32>(p, o, 4); store<f32>(p, ffnIn, 8);
}

/** Run the gathered kernel where the kept share of an input is under `share` (default 0: never). */
export function teal_gather_below(share: f32): void { gatherBelow = share; }
export function teal_counts_ptr(): usize { return counts; }
export function teal_record_ptr(): usize { return rec; }
export function teal_reset(): void { if (tealOn) memory.fill(counts, 0, <usize>(nLayers * 6) << 3); }

/** What the products of input `g` of layer l multiply: src as it is, or xt (its entries under the cut zeroed). */
export function tealIn(l: i32, g: i32, src: usize, n: i32): usize {
  gathered = -1;
  if (!tealOn) return src;
  if (rec && g != TEAL_FFN) memory.copy(rec + (<usize>(l * (d + qd) + (g == TEAL_O ? d : 0)) << 2), src, <usize>n << 2);
  const t = load<f32>(cuts + (<usize>(l * 3 + g) << 2));
  const c = counts + (<usize>(l * 3 + g) << 4);
  store<f64>(c, load<f64>(c, 8) + <f64>n, 8);
  if (!(t > 0)) return src;
  const kept = mask_inputs(src, n, t, xt);
  store<f64>(c, load<f64>(c) + <f64>(n - kept));
  if (<f32>kept < gatherBelow * <f32>n) gathered = gather_inputs(src, n, t, idx, xs);
  return xt;
}

/** Whether tealIn leaves layer l's attention inputs (q/k/v's and o's) as they are: off, or both cuts 0 and nothing recorded. */
export function tealKeepsAttention(l: i32): bool {
  if (!tealOn) return true;
  const p = cuts + (<usize>(l * 3) << 2);
  return rec == 0 && !(load<f32>(p + (<usize>TEAL_QKV << 2)) > 0) && !(load<f32>(p + (<usize>TEAL_O << 2)) > 0);
}

/** Whether the last tealIn's input was gathered for a dtype's products (tealMatvec then runs the gathered kernel). */
export function tealGathered(dt: i32): bool { return gathered >= 0 && dt < DT_Q8_0; }

/** out = W src over `rows` rows, src from tealIn (xp left holding src prepared, as pmatvec leaves it). */
export function tealMatvec(dt: i32, w: usize, stride: usize, src: usize, xp: usize, out: usize, rows: i32, cols: i32): void {
  if (src == xt && gathered >= 0 && dt < DT_Q8_0) {
    sparse_matvec(dt, w, stride, idx, xs, gathered, out, rows, cols);
    prep_x(dt, src, xp, cols);
  } else pmatvec(dt, w, stride, src, xp, out, rows, cols);
}

/** tealMatvec of one src by three matrices of one dtype (q, k, v): one threaded job unless src was gathered. */
export function tealMatvec3(dt: i32, stride: usize, src: usize, xp: usize, cols: i32,
                            w0: usize, out0: usize, rows0: i32, w1: usize, out1: usize, rows1: i32, w2: usize, out2: usize, rows2: i32): void {
  if (src == xt && gathered >= 0 && dt < DT_Q8_0) {
    tealMatvec(dt, w0, stride, src, xp, out0, rows0, cols);
    tealMatvec(dt, w1, stride, src, xp, out1, rows1, cols);
    tealMatvec(dt, w2, stride, src, xp, out2, rows2, cols);
  } else pmatvec3(dt, stride, src, xp, cols, w0, out0, rows0, w1, out1, rows1, w2, out2, rows2);
}
