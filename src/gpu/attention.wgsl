// Attention of one token over the KV cache. rope_kv rotates q and k (RoPE, Llama) and appends
// k and v at position `pos`; attend runs one workgroup per query head (GQA: heads share KV
// heads in groups), softmax over positions 0..pos.
struct Params { nHeads: u32, nKv: u32, headDim: u32, maxSeq: u32, rope: u32, _a: u32, _b: u32, _c: u32 }
struct Step { pos: u32, _a: u32, _b: u32, _c: u32 }

@group(0) @binding(0) var<storage, read_write> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> kc: array<f32>;
@group(0) @binding(4) var<storage, read_write> vc: array<f32>;
@group(0) @binding(5) var<storage, read> ropeCos: array<f32>;
@group(0) @binding(6) var<storage, read> ropeSin: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;
@group(0) @binding(8) var<uniform> step: Step;

@group(0) @binding(9) var<storage, read> qr: array<f32>;
@group(0) @binding(10) var<storage, read> kcr: array<f32>;
@group(0) @binding(11) var<storage, read> vcr: array<f32>;
@group(0) @binding(12) var<storage, read_write> att: array<f32>;
@group(0) @binding(13) var<storage, read_write> out: array<f32>;

// In PyTorch: q, k = q * cos + rotate_half(q) * sin, ... ; pairs (i, i + headDim/2) of each head.
@compute @workgroup_size(64)
fn rope_kv(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  let half = p.headDim / 2u;
  let kvDim = p.nKv * p.headDim;
  let nq = p.nHeads * half;
  let nk = p.nKv * half;
  let at = step.pos * kvDim;
  if (i < nq) {
    if (p.rope == 0u) { return; }
    let h = i / half; let j = i % half;
    let a = h * p.headDim + j;
    let c = ropeCos[step.pos * half + j]; let s = ropeSin[step.pos * half + j];
    let x0 = q[a]; let x1 = q[a + half];
    q[a] = x0 * c - x1 * s;
    q[a + half] = x1 * c + x0 * s;
  } else if (i < nq + nk) {
    let e = i - nq;
    let h = e / half; let j = e % half;
    let a = h * p.headDim + j;
    var x0 = k[a]; var x1 = k[a + half];
    if (p.rope != 0u) {
      let c = ropeCos[step.pos * half + j]; let s = ropeSin[step.pos * half + j];
      let r0 = x0 * c - x1 * s; let r1 = x1 * c + x0 * s;
      x0 = r0; x1 = r1;
    }
    kc[at + a] = x0;
    kc[at + a + half] = x1;
  } else if (i < nq + nk + kvDim) {
    let e = i - nq - nk;
    vc[at + e] = v[e];
  }
}

const WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

fn reduce(v: f32, t: u32, isMax: bool) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] = select(red[t] + red[t + s], max(red[t], red[t + s]), isMax); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn attend(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let h = wg.x;
  let hd = p.headDim;
  let kvDim = p.nKv * hd;
  let ko = (h / (p.nHeads / p.nKv)) * hd;
  let qo = h * hd;
  let ao = h * p.maxSeq;
  let n = step.pos + 1u;
  let scale = 1.0 / sqrt(f32(hd));
  var m = -3.0e38;
  for (var j = t; j < n; j += WG) {
    var s = 0.0;
    for (var i = 0u; i < hd; i++) { s += qr[qo + i] * kcr[j * kvDim + ko + i]; }
    s *= scale;
    att[ao + j] = s;
    m = max(m, s);
  }
  let mx = reduce(m, t, true);
  var sum = 0.0;
  for (var j = t; j < n; j += WG) {
    let e = exp(att[ao + j] - mx);
    att[ao + j] = e;
    sum += e;
  }
  let inv = 1.0 / reduce(sum, t, false);
  storageBarrier();
  for (var i = t; i < hd; i += WG) {
    var o = 0.0;
    for (var j = 0u; j < n; j++) { o += att[ao + j] * vcr[j * kvDim + ko + i]; }
    out[qo + i] = o * inv;
  }
}
