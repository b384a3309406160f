// The FFN over neuron bundles (see src/format/image.ts): rows of the layer's neuron-cache mirror W, or
// of the stream area S for neurons read this token with no room in the cache (row >= cap).
// Dense: rows 0..n-1 of W (the whole layer). Sparse: the rows named in `list`.
//   act:      h[k] = act(gate . x) * (up . x)  or  act(up . x + b)      one workgroup per row
//   partial:  part[c][j] = sum over rows k of chunk c of h[k] * down_k[j]
//   reduce:   y[j] += sum_c part[c][j] + down bias[j]                  (the residual add)
struct Params {
  d: u32, bundle: u32, up: u32, gate: u32,     // bundle and offsets in WT (pairs); gate NONE when absent
  down: u32, biasWord: u32, act: u32, cap: u32, // biasWord: 32-bit word of the f32 bias in a bundle, or NONE
  useList: u32, n: u32, hasDownBias: u32, biasStride: u32, // biasStride: 0 = the bias lies in each bundle;
                                                          // else words between neurons' biases from biasWord (dense)
}
const NONE: u32 = 0xffffffffu;
const CH: u32 = 32u;   // rows per partial-sum chunk

@group(0) @binding(0) var<storage, read> W: array<WT>;
@group(0) @binding(1) var<storage, read> S: array<WT>;
@group(0) @binding(2) var<storage, read> xin: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> list: array<u32>;
@group(0) @binding(4) var<storage, read> count: array<u32>;
@group(0) @binding(5) var<uniform> p: Params;
@group(0) @binding(6) var<storage, read_write> h: array<f32>;
@group(0) @binding(7) var<storage, read> hr: array<f32>;
@group(0) @binding(8) var<storage, read_write> part: array<vec2<f32>>;
@group(0) @binding(9) var<storage, read> partr: array<vec2<f32>>;
@group(0) @binding(10) var<storage, read_write> y: array<vec2<f32>>;
@group(0) @binding(11) var<storage, read> downBias: array<vec2<f32>>;

fn rows() -> u32 { return select(p.n, count[0], p.useList != 0u); }
fn rowOf(k: u32) -> u32 { return select(k, list[k], p.useList != 0u); }
fn at(row: u32, off: u32) -> WT {
  if (row < p.cap) { return W[row * p.bundle + off]; }
  return S[(row - p.cap) * p.bundle + off];
}

const WG: u32 = 64u;
var<workgroup> ru: array<f32, WG>;
var<workgroup> rg: array<f32, WG>;

@compute @workgroup_size(WG)
fn act(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) t: u32) {
  let k = wg.x + wg.y * nw.x;
  let live = k < rows();
  var u = 0.0; var g = 0.0;
  if (live) {
    let row = rowOf(k);
    let pairs = p.d / 2u;
    for (var i = t; i < pairs; i += WG) {
      let xv = xin[i];
      u += dot(dec(at(row, p.up + i)), xv);
      if (p.gate != NONE) { g += dot(dec(at(row, p.gate + i)), xv); }
    }
  }
  ru[t] = u; rg[t] = g;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) { ru[t] += ru[t + s]; rg[t] += rg[t + s]; }
    workgroupBarrier();
  }
  if (t == 0u && live) {
    var a = select(ru[0], rg[0], p.gate != NONE);
    if (p.biasWord != NONE) {
      if (p.biasStride == 0u) { a += bitcast<f32>(bits(at(rowOf(k), p.biasWord / WPW), p.biasWord % WPW)); }
      else { let wi = p.biasWord + rowOf(k) * p.biasStride; a += bitcast<f32>(bits(W[wi / WPW], wi % WPW)); }
    }
    var hv = select(a / (1.0 + exp(-a)), max(a, 0.0), p.act == 0u);
    if (p.gate != NONE && hv != 0.0) { hv *= ru[0]; }
    h[k] = hv;
  }
}

@compute @workgroup_size(WG)
fn partial(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wg: vec3u) {
  let j = gid.x;
  let pairs = p.d / 2u;
  if (j >= pairs) { return; }
  let k0 = wg.y * CH;
  let k1 = min(rows(), k0 + CH);
  var acc = vec2<f32>(0.0);
  for (var k = k0; k < k1; k++) {
    let hv = hr[k];
    if (hv != 0.0) { acc += hv * dec(at(rowOf(k), p.down + j)); }
  }
  part[wg.y * pairs + j] = acc;
}

@compute @workgroup_size(WG)
fn reduce(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  let pairs = p.d / 2u;
  if (j >= pairs) { return; }
  let chunks = (rows() + CH - 1u) / CH;
  var acc = vec2<f32>(0.0);
  for (var c = 0u; c < chunks; c++) { acc += partr[c * pairs + j]; }
  if (p.hasDownBias != 0u) { acc += downBias[j]; }
  y[j] += acc;
}
