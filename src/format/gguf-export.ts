// Export: a flashneuron image of a Llama-family model as a llama.cpp GGUF (the format: gguf.ts).
import type { ModelConfig } from './config.js';
import { DType, QUANTIZED, dequantize, f32ToF16, quantize, rowBytes, tensorBytes } from './dtype.js';
import { crc32 } from './crc32.js';
import { readImageHeader, readTokenizerJson, section } from './image.js';
import { GGUFEntry, rotaryRows, writeGGUF } from './gguf.js';
import type { FlashSource } from '../io/source.js';
import type { Predictor } from '../predictor/types.js';

/**
 * Writes the model of image `imagePath` as GGUF (llama architecture, llama.cpp's tensor names
 * and its rotary layout of attn_q/attn_k rows), weights in the image's types. The FFN bundles
 * are taken apart into ffn_up/ffn_gate rows as stored and ffn_down transposed (a quantized down
 * column is quantized again along its new rows). OPT has no llama.cpp graph: refused.
 */
export function exportGGUF(src: FlashSource, imagePath: string, write: (bytes: Uint8Array, pos: number) => void,
  onProgress?: (done: number, total: number, phase: string) => void,
  opts: { predictor?: Predictor; downTransposed?: boolean } = {}): { tensors: number; bytes: number } {
  {
    const h = readImageHeader(src), c = h.config, f = h.ffn;
    if (c.arch === 'opt') throw new Error(`GGUF export covers the Llama family (llama.cpp has no ${c.architecture} graph)`);
    if (c.arch !== 'llama') throw new Error(`GGUF export covers the Llama family only, not ${c.architecture} (its llama.cpp graph is not written here)`);
    // What the llama GGUF keys cannot say, and flashneuron would read back differently: refused by name.
    if (c.act !== 'relu' && c.act !== 'silu') throw new Error(`GGUF export: activation ${c.act} (${c.architecture}) has no llama GGUF form`);
    if (c.slidingWindow) throw new Error(`GGUF export: sliding_window ${c.slidingWindow} has no llama GGUF form`);
    if (c.ropeScaling) throw new Error(`GGUF export: rope scaling "${c.ropeScaling.type}" is not written (llama.cpp reads it from rope_freqs)`);
    if (c.attnBias || c.mlpBias) throw new Error('GGUF export: this model has attention or MLP biases, which the llama GGUF graph does not read');
    if (f.layout === 'split') throw new Error('GGUF export needs a bundled image (convert without --no-bundle)');
    const read = (off: number, len: number) => { const b = new Uint8Array(len); if (src.pread(b, off) !== len) throw new Error(`${imagePath}: truncated`); return b; };
    const res = section(h, 'resident');
    const tensorOf = (role: string, layer = -1) => {
      const t = h.tensors.find((x) => x.role === role && x.layer === layer);
      if (!t) throw new Error(`${imagePath}: no ${role} tensor${layer >= 0 ? ` in layer ${layer}` : ''}`);
      return t;
    };
    const resident = (role: string, layer = -1) => {
      const t = tensorOf(role, layer);
      return { t, data: () => read(res.offset + t.offset, tensorBytes(t.dtype, t.shape)) };
    };
    const hd = c.headDim;
    const tok = JSON.parse(readTokenizerJson(src, h));
    const vocab: Record<string, number> = tok.model?.vocab ?? {};
    const tokens = Array.from({ length: c.vocab }, (_, i) => `[PAD${i}]`);
    const types = new Array<number>(c.vocab).fill(1);
    for (const [s, id] of Object.entries(vocab)) if (id < c.vocab) tokens[id] = s;
    for (const a of tok.added_tokens ?? []) if (a.id < c.vocab) { tokens[a.id] = a.content; if (a.special) types[a.id] = 3; }
    const merges: string[] = (tok.model?.merges ?? []).map((m: string | string[]) => (Array.isArray(m) ? m.join(' ') : m));
    const fileType = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, bf16: 32 }[f.dtype];
    const meta: [string, GGUFEntry][] = [
      ['general.architecture', { type: 'string', value: 'llama' }],
      ['general.name', { type: 'string', value: imagePath.split('/').pop()!.replace(/\.fnimg$/, '') }],
      ['general.file_type', { type: 'u32', value: fileType }],
      ['llama.context_length', { type: 'u32', value: c.maxPositions }],
      ['llama.embedding_length', { type: 'u32', value: c.hidden }],
      ['llama.block_count', { type: 'u32', value: c.nLayers }],
      ['llama.feed_forward_length', { type: 'u32', value: c.ffn }],
      ['llama.rope.dimension_count', { type: 'u32', value: hd }],
      ['llama.attention.head_count', { type: 'u32', value: c.nHeads }],
      ['llama.attention.head_count_kv', { type: 'u32', value: c.nKvHeads }],
      ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: c.normEps }],
      ['llama.rope.freq_base', { type: 'f32', value: c.ropeTheta }],
      ['llama.vocab_size', { type: 'u32', value: c.vocab }],
      ['flashneuron.activation', { type: 'string', value: c.act }],
      // The activation is not a GGUF key: llama.cpp's llama graph applies SiLU (a ReLU model runs at the same cost).
      ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
      ['tokenizer.ggml.pre', { type: 'string', value: 'gpt-2' }],
      ['tokenizer.ggml.tokens', { type: 'array', of: 'string', value: tokens }],
      ['tokenizer.ggml.token_type', { type: 'array', of: 'i32', value: types }],
      ['tokenizer.ggml.merges', { type: 'array', of: 'string', value: merges }],
      ['tokenizer.ggml.bos_token_id', { type: 'u32', value: c.bosId }],
      ['tokenizer.ggml.eos_token_id', { type: 'u32', value: c.eosIds[0] }],
      ['tokenizer.ggml.padding_token_id', { type: 'u32', value: c.padId }],
      ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ];
    const mat = (name: string, role: string, layer: number, map?: (b: Uint8Array) => Uint8Array) => {
      const r = resident(role, layer);
      return { name, dims: [...r.t.shape].reverse(), dtype: r.t.dtype, data: () => (map ? map(r.data()) : r.data()) };
    };
    const tensors: { name: string; dims: number[]; dtype: DType; data: () => Uint8Array }[] = [];
    tensors.push(mat('token_embd.weight', 'tok_embed', -1));
    tensors.push(mat('output_norm.weight', 'norm_w', -1));
    if (!c.tieWordEmbeddings) tensors.push(mat('output.weight', 'lm_head', -1));
    const d = c.hidden, n = c.ffn, part = rowBytes(f.dtype, d);
    let cachedLayer = -1, cached: Uint8Array | undefined;
    const bundles = (l: number) => {
      if (cachedLayer !== l) {
        const s = section(h, `ffn.${l}`);
        cached = read(s.offset, s.length); cachedLayer = l;
        if (crc32(cached) !== s.crc32) throw new Error(`${imagePath}: checksum mismatch in section ffn.${l} (file is corrupted)`);
        onProgress?.(l + 1, c.nLayers, 'ffn');
      }
      return cached!;
    };
    const rowsOf = (l: number, off: number) => () => {
      const b = bundles(l), o = new Uint8Array(n * part);
      for (let i = 0; i < n; i++) o.set(b.subarray(i * f.bundle_bytes + off, i * f.bundle_bytes + off + part), i * part);
      return o;
    };
    const downOf = (l: number) => () => {
      const b = bundles(l);
      if (QUANTIZED.has(f.dtype)) {
        const m = new Float32Array(d * n);
        for (let i = 0; i < n; i++) {
          const col = dequantize(f.dtype, b.subarray(i * f.bundle_bytes + f.down, i * f.bundle_bytes + f.down + part), d);
          for (let r = 0; r < d; r++) m[r * n + i] = col[r];
        }
        return quantize(f.dtype as 'q8_0' | 'q4_0', m, n);
      }
      const es = f.dtype === 'f32' ? 4 : 2, o = new Uint8Array(d * n * es);
      for (let i = 0; i < n; i++) {
        for (let r = 0; r < d; r++) {
          const s = i * f.bundle_bytes + f.down + r * es, t = (r * n + i) * es;
          for (let k = 0; k < es; k++) o[t + k] = b[s + k];
        }
      }
      return o;
    };
    for (let l = 0; l < c.nLayers; l++) {
      const p = `blk.${l}.`;
      tensors.push(mat(p + 'attn_norm.weight', 'ln1_w', l));
      tensors.push(mat(p + 'attn_q.weight', 'q', l, (b) => rotaryRows(b, c.nHeads, hd, 'gguf')));
      tensors.push(mat(p + 'attn_k.weight', 'k', l, (b) => rotaryRows(b, c.nKvHeads, hd, 'gguf')));
      tensors.push(mat(p + 'attn_v.weight', 'v', l));
      tensors.push(mat(p + 'attn_output.weight', 'o', l));
      tensors.push(mat(p + 'ffn_norm.weight', 'ln2_w', l));
      tensors.push({ name: p + 'ffn_gate.weight', dims: [d, n], dtype: f.dtype, data: rowsOf(l, f.gate) });
      tensors.push({ name: p + 'ffn_up.weight', dims: [d, n], dtype: f.dtype, data: rowsOf(l, f.up) });
      // PowerInfer's layout keeps a neuron's down column as a row (ffn_down_t): straight from the bundles.
      if (opts.downTransposed) tensors.push({ name: p + 'ffn_down_t.weight', dims: [d, n], dtype: f.dtype, data: rowsOf(l, f.down) });
      else tensors.push({ name: p + 'ffn_down.weight', dims: [n, d], dtype: f.dtype, data: downOf(l) });
    }
    if (opts.predictor) addPredictor(tensors, meta, opts.predictor, c);
    let bytes = 0;
    writeGGUF((b, pos) => { write(b, pos); bytes = Math.max(bytes, pos + b.length); }, meta, tensors);
    return { tensors: tensors.length, bytes };
  }
}


// ---- PowerInfer-style predictor tensors ----
//
// PowerInfer's GGUFs carry each layer's activation predictor beside the weights:
//   blk.N.fc1.weight  ne [d, r]    blk.N.fc2.weight  ne [r, ffn]    powerinfer.sparse_threshold (f32, default 0)
// scoring z = fc2 · relu(fc1 · x) on the FFN input; a neuron fires when z passes the threshold.
// Ours has biases and a threshold per layer: they travel as blk.N.fc1.bias (r) and blk.N.fc2.bias
// (ffn) with the layer's threshold folded into the latter, and sparse_threshold 0. Stock
// llama.cpp refuses files with tensors its graph does not use, so export adds them only on request.

type OutTensor = { name: string; dims: number[]; dtype: DType; data: () => Uint8Array };

function addPredictor(tensors: OutTensor[], meta: [string, GGUFEntry][], p: Predictor, c: ModelConfig): void {
  if (p.hidden !== c.hidden || p.ffn !== c.ffn || p.nLayers !== c.nLayers) throw new Error(`the predictor (${p.nLayers}x${p.hidden}x${p.ffn}) does not fit this model (${c.nLayers}x${c.hidden}x${c.ffn})`);
  const f16 = (v: Float32Array) => () => { const o = new Uint16Array(v.length); for (let i = 0; i < v.length; i++) o[i] = f32ToF16(v[i]); return new Uint8Array(o.buffer); };
  const f32 = (v: Float32Array) => () => new Uint8Array(Float32Array.from(v).buffer);
  p.layers.forEach((L, l) => {
    const b2 = L.b2.map((v) => v - L.threshold);
    tensors.push({ name: `blk.${l}.fc1.weight`, dims: [p.hidden, p.rank], dtype: 'f16', data: f16(L.w1) });
    tensors.push({ name: `blk.${l}.fc1.bias`, dims: [p.rank], dtype: 'f32', data: f32(L.b1) });
    tensors.push({ name: `blk.${l}.fc2.weight`, dims: [p.rank, p.ffn], dtype: 'f16', data: f16(L.w2) });
    tensors.push({ name: `blk.${l}.fc2.bias`, dims: [p.ffn], dtype: 'f32', data: f32(b2) });
  });
  meta.push(['powerinfer.sparse_threshold', { type: 'f32', value: 0 }]);
}
