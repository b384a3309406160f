// The dense FFN of one layer in parts, one threaded job per layer (threads.ts, KIND_FFN). Part c
// of n takes the neurons [cut(c), cut(c + 1)) whole: their first products (gate, or up + bias),
// activations, the up products of those that fire and their down columns, into a y of its own;
// the engine then adds the parts' y in order (ffn_sum). One barrier per layer instead of three,
// and each core reads the up rows and down columns of the bundles whose gate rows it just read.
// n is fixed by the model's shape (ffn_parts), never by the thread count, so any number of
// threads gives the same bits. Workers are separate instances with their own globals: all a part
// needs travels in a block that forward.ts fills. fire() and coefs() are also forward.ts's
// neuron lists' (fireList), so both compute a neuron alike.
import { alloc } from "./mem";
import { cut } from "./kernels/parts";
import { matvec_part, dot_list_part, prep_zero, prep_len } from "./kernels/matvec";
import { axpy_list_part } from "./kernels/axpy-list";

export const ACT_RELU: i32 = 0;
export const ACT_SILU: i32 = 1;
export const ACT_FATRELU: i32 = 2;  // ProSparse: gate if gate >= actParam else 0
export const ACT_DRELU: i32 = 3;    // TurboSparse: relu(gate) * relu(up)
export const ACT_GELU_TANH: i32 = 4; // gelu_new (Phi-2), dense only

/** The activation `kind` (parameter p: FATReLU's threshold) of a first product a. */
@inline export function activation(kind: i32, p: f32, a: f32): f32 {
  return kind == ACT_RELU ? max<f32>(a, 0) : kind == ACT_SILU ? a / (1 + Mathf.exp(-a)) : activateOther(kind, p, a);
}

/** FATReLU, dReLU's gate half (relu; up gets its own in coefs / neuron), gelu_new. */
function activateOther(kind: i32, p: f32, a: f32): f32 {
  if (kind == ACT_FATRELU) return a >= p ? a : 0;
  if (kind == ACT_DRELU) return max<f32>(a, 0);
  // gelu_new: 0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3)))
  return <f32>0.5 * a * (1 + Mathf.tanh(<f32>0.7978845608028654 * (a + <f32>0.044715 * a * a * a)));
}

/**
 * Given dots[k], the first product of n neurons — listed (bundle address rows[k], id ids[k]) or,
 * with `dense`, the bundles from there (id first + k) — their activations into acts; those that
 * fire are compacted into rows (bundle + upOff with a gate, else the bundle) and ids. Returns how many.
 */
export function fire(kind: i32, p: f32, gate: bool, n: i32, rows: usize, ids: usize, dots: usize, acts: usize,
                     dense: usize, bundleBytes: usize, first: i32, upOff: usize): i32 {
  let m = 0;
  for (let k = 0; k < n; k++) {
    const bundle = dense ? dense + <usize>k * bundleBytes : <usize>load<u32>(rows + (<usize>k << 2));
    const id = dense ? first + k : load<i32>(ids + (<usize>k << 2));
    const h = activation(kind, p, load<f32>(dots + (<usize>k << 2)));
    store<f32>(acts + (<usize>id << 2), h);
    if (h != 0) {
      store<u32>(rows + (<usize>m << 2), <u32>(bundle + (gate ? upOff : 0)));
      store<i32>(ids + (<usize>(m++) << 2), id);
    }
  }
  return m;
}

/**
 * After fire (and, with a gate, the up products of the m that fire in dots): each one's
 * coefficient h (act(gate) * up; dReLU: times relu(up)) into acts and dots, and its down
 * column's address into rows.
 */
export function coefs(kind: i32, gate: bool, m: i32, rows: usize, ids: usize, dots: usize, acts: usize, upOff: usize, downOff: usize): void {
  for (let k = 0; k < m; k++) {
    const a = acts + (<usize>load<i32>(ids + (<usize>k << 2)) << 2);
    let h = load<f32>(a);
    let bundle = <usize>load<u32>(rows + (<usize>k << 2));
    if (gate) {
      let u = load<f32>(dots + (<usize>k << 2));
      if (kind == ACT_DRELU) u = max<f32>(u, 0);
      h *= u; store<f32>(a, h); bundle -= upOff;
    }
    store<f32>(dots + (<usize>k << 2), h);
    store<u32>(rows + (<usize>k << 2), <u32>(bundle + downOff));
  }
}

/** How many parts a layer of `ffn` neurons is cut into: about 256 neurons each, at most 32. */
export function ffn_parts(ffn: i32): i32 { return min(32, max(1, ffn >> 8)); }

const F_DT: usize = 0;       // i32 the layer's FFN dtype
const F_BASE: usize = 4;     // u32 its bundles
const F_ACTS: usize = 8;     // u32 its activations (ffn f32)
const F_BYTES: usize = 12;   // u32 bundle bytes
const F_FIRST: usize = 16;   // u32 offset of the first product's row (gate, or up)
const F_UP: usize = 20;
const F_DOWN: usize = 24;
const F_BIAS: usize = 28;    // i32 offset of the up bias, -1: none
const F_BSTRIDE: usize = 32; // u32 bias stride (0: inside the bundle)
const F_GATE: usize = 36;    // i32 has a gate
const F_ACT: usize = 40;     // i32 activation kind
const F_ACTP: usize = 44;    // f32 its parameter
const F_FFN: usize = 48;     // i32 neurons
const F_D: usize = 52;       // i32 model width
const F_XP: usize = 56;      // u32 the prepared input
const F_ROWS: usize = 60;    // u32 (ffn) list scratch: part c uses [start of c, ...)
const F_IDS: usize = 64;
const F_DOTS: usize = 68;
const F_Y: usize = 72;       // u32 (parts) y of each part, prep_len(d) f32 apart
const F_PARTS: usize = 76;   // i32
const BYTES: usize = 80;

/** The block and the parts' y for a model (model_init); the bytes it took count against the budget. */
export function ffn_part_init(ffn: i32, d: i32, gate: bool, kind: i32, p: f32, xp: usize, rows: usize, ids: usize, dots: usize): usize {
  const b = alloc(BYTES, 64);
  memory.fill(b, 0, BYTES);
  const parts = ffn_parts(ffn);
  store<u32>(b + F_Y, <u32>alloc(<usize>(parts * prep_len(d)) << 2, 64));
  store<i32>(b + F_PARTS, parts); store<i32>(b + F_BIAS, -1);
  store<i32>(b + F_GATE, gate ? 1 : 0); store<i32>(b + F_ACT, kind); store<f32>(b + F_ACTP, p);
  store<i32>(b + F_FFN, ffn); store<i32>(b + F_D, d); store<u32>(b + F_XP, <u32>xp);
  store<u32>(b + F_ROWS, <u32>rows); store<u32>(b + F_IDS, <u32>ids); store<u32>(b + F_DOTS, <u32>dots);
  return b;
}

/** Where the parts of a bundle sit (forward.ts's ffn_layout, ffn_bias_stride). */
export function ffn_part_layout(b: usize, bundleBytes: usize, first: usize, upOff: usize, downOff: usize, biasOff: i32, biasStride: usize): void {
  store<u32>(b + F_BYTES, <u32>bundleBytes); store<u32>(b + F_FIRST, <u32>first); store<u32>(b + F_UP, <u32>upOff);
  store<u32>(b + F_DOWN, <u32>downOff); store<i32>(b + F_BIAS, biasOff); store<u32>(b + F_BSTRIDE, <u32>biasStride);
}

export function ffn_part_count(b: usize): i32 { return load<i32>(b + F_PARTS); }

/** Points block b at a layer: its FFN dtype, bundles and activations. */
export function ffn_part_layer(b: usize, dt: i32, base: usize, acts: usize): void {
  store<i32>(b + F_DT, dt); store<u32>(b + F_BASE, <u32>base); store<u32>(b + F_ACTS, <u32>acts);
}

/** Part c of the layer block b points at, as the header describes. */
export function ffn_part(b: usize, c: i32): void {
  const parts = load<i32>(b + F_PARTS), ffn = load<i32>(b + F_FFN), d = load<i32>(b + F_D);
  const dt = load<i32>(b + F_DT), bundleBytes = <usize>load<u32>(b + F_BYTES), xp = <usize>load<u32>(b + F_XP);
  const gate = load<i32>(b + F_GATE) != 0, kind = load<i32>(b + F_ACT), p = load<f32>(b + F_ACTP);
  const upOff = <usize>load<u32>(b + F_UP), biasOff = load<i32>(b + F_BIAS);
  // whole groups of 8 neurons (the multi-row kernels' runs), the last part the rest
  const n0 = cut(ffn >> 3, c, parts) << 3, n1 = c == parts - 1 ? ffn : cut(ffn >> 3, c + 1, parts) << 3, n = n1 - n0;
  const at = <usize>n0 << 2;
  const rows = <usize>load<u32>(b + F_ROWS) + at, ids = <usize>load<u32>(b + F_IDS) + at, dots = <usize>load<u32>(b + F_DOTS) + at;
  const y = <usize>load<u32>(b + F_Y) + (<usize>(c * prep_len(d)) << 2);
  prep_zero(dt, y, d);
  if (n <= 0) return;
  const bundles = <usize>load<u32>(b + F_BASE) + <usize>n0 * bundleBytes, acts = <usize>load<u32>(b + F_ACTS);
  matvec_part(dt, bundles + <usize>load<u32>(b + F_FIRST), bundleBytes, xp, dots, n, d, 0, 1);
  if (!gate && biasOff >= 0) {
    const stride = load<u32>(b + F_BSTRIDE) ? <usize>load<u32>(b + F_BSTRIDE) : bundleBytes;
    const bias = <usize>load<u32>(b + F_BASE) + <usize>biasOff + <usize>n0 * stride;
    for (let k = 0; k < n; k++) {
      const z = dots + (<usize>k << 2);
      store<f32>(z, load<f32>(z) + load<f32>(bias + <usize>k * stride));
    }
  }
  const m = fire(kind, p, gate, n, rows, ids, dots, acts, bundles, bundleBytes, n0, upOff);
  if (gate) dot_list_part(dt, rows, m, xp, d, dots, 0, 1);
  coefs(kind, gate, m, rows, ids, dots, acts, upOff, <usize>load<u32>(b + F_DOWN));
  axpy_list_part(dt, rows, dots, m, y, d, 0, 1);
}

/** yp = the parts' y added in order (prepared layouts add element by element). */
export function ffn_sum(b: usize, yp: usize): void {
  const parts = load<i32>(b + F_PARTS), len = prep_len(load<i32>(b + F_D));
  const y = <usize>load<u32>(b + F_Y), bytes = <usize>len << 2;
  memory.copy(yp, y, bytes);
  for (let c = 1; c < parts; c++) {
    const s = y + <usize>c * bytes;
    for (let i: usize = 0; i < bytes; i += 4) store<f32>(yp + i, load<f32>(yp + i) + load<f32>(s + i));
  }
}
