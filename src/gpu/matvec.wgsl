// y[r] = W[r, :] . x (+ bias[r]) (+ y[r]): attention projections and the lm_head.
// One workgroup per row; rows past 65535 continue along y of the dispatch.
struct Params { rows: u32, cols: u32, flags: u32, _pad: u32 }  // flags: 1 bias, 2 accumulate

@group(0) @binding(0) var<storage, read> W: array<WT>;
@group(0) @binding(1) var<storage, read> xin: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 64u;
var<workgroup> part: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) t: u32) {
  let r = wg.x + wg.y * nw.x;
  let pairs = p.cols / 2u;
  var acc = 0.0;
  if (r < p.rows) {
    let base = r * pairs;
    for (var i = t; i < pairs; i += WG) { acc += dot(dec(W[base + i]), xin[i]); }
  }
  part[t] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) { part[t] += part[t + s]; }
    workgroupBarrier();
  }
  if (t == 0u && r < p.rows) {
    var v = part[0];
    if ((p.flags & 1u) != 0u) { v += bias[r]; }
    if ((p.flags & 2u) != 0u) { v += y[r]; }
    y[r] = v;
  }
}
