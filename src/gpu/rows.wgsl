// Mirrors swap-deletes of the wasm neuron cache on the GPU itself: row pairs[2m] of the cache
// mirror receives the bundle of row pairs[2m+1], the row its neuron held before this layer's
// evictions. Sources are rows past the live count and destinations rows before it, so no row
// is both read and written. One workgroup per pair.
struct Params { words: u32, _a: u32, _b: u32, _c: u32 }  // 32-bit words per bundle

@group(0) @binding(0) var<storage, read_write> cache: array<u32>;
@group(0) @binding(1) var<storage, read> pairs: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let m = wg.x;
  let dst = pairs[2u * m] * p.words;
  let src = pairs[2u * m + 1u] * p.words;
  for (var w = t; w < p.words; w += 64u) { cache[dst + w] = cache[src + w]; }
}
