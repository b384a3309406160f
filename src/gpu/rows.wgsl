// Mirrors swap-deletes of the wasm neuron cache: row rows[m] of the cache mirror receives
// bundle m of the upload area (the row's bundle as the wasm holds it now). One workgroup per row.
struct Params { words: u32, _a: u32, _b: u32, _c: u32 }  // 32-bit words per bundle

@group(0) @binding(0) var<storage, read_write> cache: array<u32>;
@group(0) @binding(1) var<storage, read> upload: array<u32>;
@group(0) @binding(2) var<storage, read> rows: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let m = wg.x;
  let dst = rows[m] * p.words;
  for (var w = t; w < p.words; w += 64u) { cache[dst + w] = upload[m * p.words + w]; }
}
