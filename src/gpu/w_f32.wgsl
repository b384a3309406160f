// Weight access for f32 weights. Kernels see every weight matrix as pairs of elements (WT):
// dec(pair) widens one pair to vec2<f32>; bits(pair, k) is its k-th raw 32-bit word.
alias WT = vec2<u32>;
const WPW: u32 = 2u;  // 32-bit words per WT
fn dec(w: WT) -> vec2<f32> { return bitcast<vec2<f32>>(w); }
fn bits(w: WT, k: u32) -> u32 { return w[k]; }
