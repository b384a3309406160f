// LayerNorm (OPT: weight and bias) or RMSNorm (Llama: weight only) of one vector, one workgroup.
struct Params { n: u32, rms: u32, eps: f32, _pad: u32 }

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;

fn total(v: f32, t: u32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] += red[t + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) t: u32) {
  let n = f32(p.n);
  var mean = 0.0;
  if (p.rms == 0u) {
    var s = 0.0;
    for (var i = t; i < p.n; i += WG) { s += xin[i]; }
    mean = total(s, t) / n;
  }
  var q = 0.0;
  for (var i = t; i < p.n; i += WG) { let c = xin[i] - mean; q += c * c; }
  let inv = 1.0 / sqrt(total(q, t) / n + p.eps);
  for (var i = t; i < p.n; i += WG) {
    var v = (xin[i] - mean) * inv * w[i];
    if (p.rms == 0u) { v += b[i]; }
    out[i] = v;
  }
}
