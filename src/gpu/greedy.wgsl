// Greedy decoding kept on the GPU: argmax writes the chosen token into ids[slot], and embed
// starts the next token's residual stream from it (token embedding + OPT's learned position),
// so tokens chain without the host reading anything back.
struct Step { pos: u32, slot: u32, _a: u32, _b: u32 }
struct Params { vocab: u32, d: u32, posOffset: u32, hasPos: u32 }

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> ids: array<u32>;
@group(0) @binding(2) var<uniform> step: Step;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> W: array<WT>;        // token embeddings (vocab, d)
@group(0) @binding(5) var<storage, read> P: array<WT>;        // learned positions (OPT)
@group(0) @binding(6) var<storage, read_write> x: array<vec2<f32>>;
@group(0) @binding(7) var<storage, read> idsr: array<u32>;

const WG: u32 = 256u;
var<workgroup> bv: array<f32, WG>;
var<workgroup> bi: array<u32, WG>;

// The first index of the largest logit (as the host's argmax).
@compute @workgroup_size(WG)
fn argmax(@builtin(local_invocation_index) t: u32) {
  var best = -3.4e38; var at = 0xffffffffu;
  for (var i = t; i < p.vocab; i += WG) {
    let v = logits[i];
    if (v > best) { best = v; at = i; }
  }
  bv[t] = best; bi[t] = at;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) {
      let v = bv[t + s]; let i = bi[t + s];
      if (v > bv[t] || (v == bv[t] && i < bi[t])) { bv[t] = v; bi[t] = i; }
    }
    workgroupBarrier();
  }
  if (t == 0u) { ids[step.slot] = bi[0]; }
}

@compute @workgroup_size(64)
fn embed(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  let pairs = p.d / 2u;
  if (j >= pairs) { return; }
  var v = dec(W[idsr[step.slot] * pairs + j]);
  if (p.hasPos != 0u) { v += dec(P[(step.pos + p.posOffset) * pairs + j]); }
  x[j] = v;
}
