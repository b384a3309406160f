// Finding a WebGPU adapter (any runtime: Deno, browsers; Node has none), and what of a model
// the WGSL kernels compute.
import { normOf, type ModelConfig } from '../format/config.js';

/** A WebGPU device the engine may run on. */
export interface Gpu {
  device: GPUDevice;
  /** The adapter's description ("NVIDIA H200", "llvmpipe ..."). */
  name: string;
  /** Software adapter (lavapipe, SwiftShader): correct but slower than the wasm path. */
  fallback: boolean;
  /** shader-f16 is enabled: f16 weights are read as f16 by the kernels. */
  f16: boolean;
}

/**
 * Opens the runtime's WebGPU adapter, or returns null where there is none (Node, browsers
 * without WebGPU) or where it is a software fallback and `allowFallback` is not set.
 */
export async function openGpu(opts: { allowFallback?: boolean; shaderF16?: boolean } = {}): Promise<Gpu | null> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) return null;
  const adapter = await quietly(() => gpu.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null));
  if (!adapter) return null;
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const fallback = Boolean(info?.isFallbackAdapter ?? (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter);
  if (fallback && !opts.allowFallback) return null;
  const f16 = adapter.features.has('shader-f16') && opts.shaderF16 !== false;
  const lim = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: f16 ? ['shader-f16'] : [],
    requiredLimits: {
      maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
      maxBufferSize: lim.maxBufferSize,
      maxStorageBuffersPerShaderStage: Math.min(lim.maxStorageBuffersPerShaderStage, 10),
    },
  });
  const name = info?.description || info?.device || info?.vendor || 'WebGPU adapter';
  return { device, name, fallback, f16 };
}

interface DenoEnv {
  env: { get(k: string): string | undefined; set(k: string, v: string): void; delete(k: string): void };
  permissions: { querySync(d: { name: 'env'; variable: string }): { state: string } };
}

/**
 * Runs `f` (an adapter request) so that Deno stays quiet: its WebGPU loads the Vulkan drivers,
 * whose Wayland code prints "XDG_RUNTIME_DIR is invalid or not set" to stderr where the variable
 * is missing (servers, CI). Any absolute path silences it; the variable is unset again after.
 */
async function quietly<T>(f: () => Promise<T>): Promise<T> {
  const deno = (globalThis as { Deno?: DenoEnv }).Deno;
  let set = false;
  try {
    if (deno && deno.permissions.querySync({ name: 'env', variable: 'XDG_RUNTIME_DIR' }).state === 'granted' && deno.env.get('XDG_RUNTIME_DIR') === undefined) {
      deno.env.set('XDG_RUNTIME_DIR', '/nonexistent');
      set = true;
    }
  } catch { /* no permission to look: leave the environment alone */ }
  try {
    return await f();
  } finally {
    if (set) deno!.env.delete('XDG_RUNTIME_DIR');
  }
}

/**
 * What of a model the WGSL kernels do not compute (undefined: they run it all): their norm is
 * LayerNorm only for OPT, RMSNorm else; blocks run one after the other; rotary covers whole heads;
 * the FFN activation is relu or silu; attention sees every cached position; lm_head has no bias.
 */
export function gpuLacks(c: ModelConfig, contextLength: number): string | undefined {
  if (c.arch !== 'opt' && c.arch !== 'llama') return `the ${c.arch} architecture`;
  if (normOf(c) !== (c.arch === 'opt' ? 'layer' : 'rms')) return `norm ${c.norm}`;
  if (c.parallelAttn) return 'parallel attention and FFN blocks';
  if (c.rotaryDim !== undefined && c.rotaryDim !== c.headDim) return `partial rotary (${c.rotaryDim} of ${c.headDim} dims)`;
  if (c.act !== 'relu' && c.act !== 'silu') return `activation ${c.act}`;
  if (c.slidingWindow !== undefined && c.slidingWindow < contextLength) return `sliding-window attention (window ${c.slidingWindow} < context ${contextLength})`;
  if (c.lmHeadBias) return 'an lm_head bias';
  return undefined;
}
