// Small helpers shared by the predictor's training code (not part of the public API).

export const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * Yields to the event loop (progress callbacks, abort signals). setImmediate where the runtime has
 * it (Node, Bun, Deno): setTimeout(0) is clamped to ≥ 4 ms after a few nestings, which adds up over
 * the hundreds of yields of a training run; browsers and workers fall back to it.
 */
const immediate: (f: () => void) => unknown =
  (globalThis as { setImmediate?: (f: () => void) => unknown }).setImmediate ?? ((f: () => void) => setTimeout(f, 0));
export const tick = () => new Promise<void>((r) => { immediate(r); });

/** Bytes of one row of activity bits over `ffn` neurons (bit i%8 of byte i>>3 = neuron i). */
export const bitRowBytes = (ffn: number) => (ffn + 7) >> 3;

/** (rows, cols) → (cols, rows). */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const o = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) o[j * rows + i] = a[i * cols + j];
  return o;
}

/** Deterministic uniform [0, 1) generator (mulberry32). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
/** A standard normal sample (Box–Muller). */
export function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}
