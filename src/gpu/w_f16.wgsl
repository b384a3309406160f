// Weight access for f16 weights through the shader-f16 feature (where the adapter has it).
enable f16;
alias WT = vec2<f16>;
const WPW: u32 = 1u;
fn dec(w: WT) -> vec2<f32> { return vec2<f32>(w); }
fn bits(w: WT, k: u32) -> u32 { return pack2x16float(vec2<f32>(w)); }  // exact: f16 -> f32 -> f16
