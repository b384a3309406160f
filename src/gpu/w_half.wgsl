// Weight access for f16 or bf16 weights read as 32-bit words (any adapter): one word holds a
// pair of elements. DT: 1 = f16 (unpack2x16float), 2 = bf16 (the high half of an f32).
alias WT = u32;
const WPW: u32 = 1u;
override DT: u32 = 1u;
fn dec(w: WT) -> vec2<f32> {
  if (DT == 1u) { return unpack2x16float(w); }
  return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}
fn bits(w: WT, k: u32) -> u32 { return w; }
