// Writing a flashneuron image (the format: image.ts) from an opened checkpoint, through a
// positional writer: a file (src/node/image-file.ts), OPFS (src/web/), memory.
import type { ModelConfig } from './config.js';
import { convertDtype, DType, DTYPE_BYTES, QUANTIZED, quantize, rowBytes, tensorBytes, widenToF32 } from './dtype.js';
import { readSpec, specInfo, type HFCheckpoint, type TensorSpec } from './hf.js';
import { crc32 } from './crc32.js';

/**
 * What this writer puts in an image beyond what VERSION promises, for caches of converted images:
 * 2 = per-neuron checksums of the FFN ("ffn.crc"). Readers accept every revision.
 */
export const WRITER_REVISION = 2;
import { FfnLayout, ImageHeader, MAGIC, PREFIX_BYTES, Progress, Section, SECTION_ALIGN, TensorEntry, VERSION } from './image.js';

const TENSOR_ALIGN = 64;
const BUNDLE_ALIGN = 16;
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

export interface ConvertOptions {
  /** 'bundled' (default): one read fetches a neuron. 'split': up, gate, down and bias stored apart (ablation). */
  layout?: 'bundled' | 'split';
  /** Store every matrix in this type (default: as the checkpoint stores it; f16 and bf16 round to nearest even). */
  dtype?: DType;
}

/** Writes the image of an opened checkpoint through `write(bytes, position)` (a file, OPFS, ...). */
export function writeImage(ckpt: HFCheckpoint, write: (bytes: Uint8Array, pos: number) => void, onProgress?: Progress, opts: ConvertOptions = {}): ImageHeader {
  const cfg = ckpt.config;
  const spec = ckpt.tensors;
  {
    const d = cfg.hidden;
    // FFN bundle layout: dtype of the up/fc1 matrix (all three widened to f32 if they differ).
    const L0 = spec.layers[0];
    // A gated FFN keeps one bias per neuron in its bundle (the up bias); a gate bias has no place there.
    if (L0.gateB) throw new Error(`${cfg.architecture} with mlp_bias (gate_proj/up_proj biases) is not supported: the FFN bundles hold no gate bias`);
    const ffnDtypes = [L0.up, L0.gate, L0.down].filter((t) => t).map((t) => ckpt.tensor(t!.name).dtype);
    if (opts.dtype !== undefined && !Object.hasOwn(DTYPE_BYTES, opts.dtype)) throw new Error(`unknown dtype ${opts.dtype} (f32, f16, bf16, q8_0 or q4_0)`);
    if (opts.dtype && QUANTIZED.has(opts.dtype) && d % 32) throw new Error(`${opts.dtype} needs a model width that is a multiple of 32 (got ${d})`);
    const ffnDtype: DType = opts.dtype ?? (ffnDtypes.every((t) => t === ffnDtypes[0]) ? ffnDtypes[0] : 'f32');
    const part = rowBytes(ffnDtype, d);
    const ffn: FfnLayout = { dtype: ffnDtype, bundle_bytes: 0, up: 0, gate: -1, down: 0, bias: -1 };
    let o = part;
    if (cfg.hasGate) { ffn.gate = o; o += part; }
    ffn.down = o; o += part;
    if (L0.upB) { ffn.bias = o; o += 4; }
    ffn.bundle_bytes = alignUp(o, BUNDLE_ALIGN);
    const split = opts.layout === 'split';
    if (split) {
      ffn.layout = 'split';
      ffn.parts = [];
      let base = 0;
      for (const [row, len] of [[ffn.up, part], [ffn.gate, part], [ffn.down, part], [ffn.bias, 4]]) {
        if (row < 0) continue;
        ffn.parts.push({ base, len, row });
        base += cfg.ffn * len;
      }
    } else if (opts.layout !== undefined && opts.layout !== 'bundled') throw new Error(`unknown ffn layout ${opts.layout} (bundled or split)`);

    // Resident tensors in order: globals, then per layer.
    type Item = { role: string; layer: number; spec: TensorSpec; vector: boolean };
    const items: Item[] = [];
    const g = spec.globals;
    const addG = (role: string, t: TensorSpec | undefined, vector: boolean) => { if (t) items.push({ role, layer: -1, spec: t, vector }); };
    addG('tok_embed', g.tokEmbed, false);
    addG('pos_embed', g.posEmbed, false);
    addG('norm_w', g.normW, true);
    addG('norm_b', g.normB, true);
    addG('lm_head', g.lmHead, false);
    addG('lm_head_b', g.lmHeadB, true);
    spec.layers.forEach((L, l) => {
      const add = (role: string, t: TensorSpec | undefined, vector: boolean) => { if (t) items.push({ role, layer: l, spec: t, vector }); };
      add('ln1_w', L.ln1W, true); add('ln1_b', L.ln1B, true);
      add('q', L.q, false); add('k', L.k, false); add('v', L.v, false); add('o', L.o, false);
      add('q_b', L.qB, true); add('k_b', L.kB, true); add('v_b', L.vB, true); add('o_b', L.oB, true);
      add('ln2_w', L.ln2W, true); add('ln2_b', L.ln2B, true);
      add('down_b', L.downB, true);
    });

    const tensors: TensorEntry[] = [];
    let residentLen = 0;
    for (const it of items) {
      const info = specInfo(ckpt, it.spec);
      // int4 keeps the embeddings and the lm_head at int8, as llama.cpp's Q4_0 files keep output.weight finer.
      const embedding = it.role === 'tok_embed' || it.role === 'pos_embed' || it.role === 'lm_head';
      const dtype: DType = it.vector ? 'f32' : opts.dtype === 'q4_0' && embedding ? 'q8_0' : opts.dtype ?? info.dtype;
      residentLen = alignUp(residentLen, TENSOR_ALIGN);
      tensors.push({ role: it.role, layer: it.layer, offset: residentLen, dtype, shape: info.shape });
      residentLen += tensorBytes(dtype, info.shape);
    }
    const tokBytes = new TextEncoder().encode(ckpt.tokenizerJson);
    const ffnLen = cfg.ffn * (split ? ffn.parts!.reduce((a, p) => a + p.len, 0) : ffn.bundle_bytes);
    const total = tokBytes.length + residentLen + cfg.nLayers * ffnLen + 4 * cfg.nLayers * cfg.ffn;
    let done = 0;
    const progress = (n: number, phase: string) => { done += n; onProgress?.(done, total, phase); };

    const sections: Section[] = [];
    let pos = SECTION_ALIGN;
    const writeSection = (name: string, bytes: Uint8Array) => {
      write(bytes, pos);
      sections.push({ name, offset: pos, length: bytes.length, crc32: crc32(bytes) });
      pos = alignUp(pos + bytes.length, SECTION_ALIGN);
      progress(bytes.length, name);
    };
    writeSection('tokenizer', tokBytes);

    // The resident section, tensor by tensor (a 7B model's is larger than one typed array may be).
    {
      let at = 0, crc = 0;
      const fused = {};
      const put = (bytes: Uint8Array) => { write(bytes, pos + at); crc = crc32(bytes, crc); at += bytes.length; progress(bytes.length, 'resident'); };
      items.forEach((it, i) => {
        const t = tensors[i];
        if (t.offset > at) put(new Uint8Array(t.offset - at));
        put(convertDtype(readSpec(ckpt, it.spec, fused), specInfo(ckpt, it.spec).dtype, t.dtype, t.shape[t.shape.length - 1]));
      });
      sections.push({ name: 'resident', offset: pos, length: at, crc32: crc });
      pos = alignUp(pos + at, SECTION_ALIGN);
    }

    // Each neuron's bundle CRC-32 (as the neuron cache holds it, whatever the layout), checked
    // as bundles land from flash. Little-endian u32, layer by layer.
    const bundleCrc = new Uint32Array(cfg.nLayers * cfg.ffn);
    for (let l = 0; l < cfg.nLayers; l++) {
      const L = spec.layers[l];
      // Quantized bundles quantize each part per neuron (the down column too): from f32.
      const q = QUANTIZED.has(ffnDtype), to = q ? 'f32' : ffnDtype;
      const up = convertDtype(ckpt.readTensor(L.up.name), ckpt.tensor(L.up.name).dtype, to, d);
      const gate = L.gate ? convertDtype(ckpt.readTensor(L.gate.name), ckpt.tensor(L.gate.name).dtype, to, d) : undefined;
      const down = convertDtype(ckpt.readTensor(L.down.name), ckpt.tensor(L.down.name).dtype, to, cfg.ffn);
      const bias = L.upB ? widenToF32(ckpt.readTensor(L.upB.name), ckpt.tensor(L.upB.name).dtype) : undefined;
      const b = bundle(cfg, ffn, q ? 4 : DTYPE_BYTES[ffnDtype], up, gate, down, bias);
      if (split) (ffn.bundled_crc32 ??= []).push(crc32(b));
      for (let i = 0; i < cfg.ffn; i++) bundleCrc[l * cfg.ffn + i] = crc32(b.subarray(i * ffn.bundle_bytes, (i + 1) * ffn.bundle_bytes));
      writeSection(`ffn.${l}`, split ? unbundle(b, ffn, cfg.ffn) : b);
    }
    writeSection('ffn.crc', new Uint8Array(bundleCrc.buffer));

    const header: ImageHeader = {
      format: 'flashneuron', version: VERSION, config: cfg,
      tokenizer_config: ckpt.tokenizerConfig as Record<string, unknown> | undefined,
      source: { architecture: cfg.architecture, converted_from: ckpt.origin ?? 'huggingface' },
      sections, tensors, ffn,
    };
    const hb = new TextEncoder().encode(JSON.stringify(header));
    write(hb, pos);
    const prefix = new Uint8Array(PREFIX_BYTES);
    prefix.set(new TextEncoder().encode(MAGIC));
    const dv = new DataView(prefix.buffer);
    dv.setUint32(8, VERSION, true);
    dv.setUint32(12, hb.length, true);
    dv.setBigUint64(16, BigInt(pos), true);
    dv.setUint32(24, crc32(hb), true);
    write(prefix, 0);
    return header;
  }
}

/** Interleaves one layer's FFN matrices into per-neuron bundles (see the format above). */
function bundle(cfg: ModelConfig, f: FfnLayout, es: number, up: Uint8Array, gate: Uint8Array | undefined,
  down: Uint8Array, bias: Float32Array | undefined): Uint8Array {
  const d = cfg.hidden, n = cfg.ffn, row = d * es;
  const out = new Uint8Array(n * f.bundle_bytes);
  const outF = new DataView(out.buffer);
  if (QUANTIZED.has(f.dtype)) {
    // f32 inputs; each neuron's up, gate and down column quantized along d, in place.
    const dt = f.dtype as 'q8_0' | 'q4_0', upF = new Float32Array(up.buffer, up.byteOffset, n * d);
    const gateF = gate && new Float32Array(gate.buffer, gate.byteOffset, n * d), downF = new Float32Array(down.buffer, down.byteOffset, n * d);
    const col = new Float32Array(d), pb = rowBytes(dt, d);
    for (let i = 0; i < n; i++) {
      const b = i * f.bundle_bytes;
      quantize(dt, upF.subarray(i * d, (i + 1) * d), d, out.subarray(b + f.up, b + f.up + pb));
      if (gateF) quantize(dt, gateF.subarray(i * d, (i + 1) * d), d, out.subarray(b + f.gate, b + f.gate + pb));
      for (let r = 0; r < d; r++) col[r] = downF[r * n + i];
      quantize(dt, col, d, out.subarray(b + f.down, b + f.down + pb));
      if (bias) outF.setFloat32(b + f.bias, bias[i], true);
    }
    return out;
  }
  for (let i = 0; i < n; i++) {
    const b = i * f.bundle_bytes;
    out.set(up.subarray(i * row, (i + 1) * row), b + f.up);
    if (gate) out.set(gate.subarray(i * row, (i + 1) * row), b + f.gate);
    // down is (d, n) row-major: column i is every n-th element.
    for (let r = 0; r < d; r++) {
      const s = (r * n + i) * es, t = b + f.down + r * es;
      for (let k = 0; k < es; k++) out[t + k] = down[s + k];
    }
    if (bias) outF.setFloat32(b + f.bias, bias[i], true);
  }
  return out;
}

/** The split layout of a layer's bundles: each part for all neurons in turn. */
function unbundle(bundles: Uint8Array, f: FfnLayout, n: number): Uint8Array {
  const parts = f.parts!;
  const out = new Uint8Array(n * parts.reduce((a, p) => a + p.len, 0));
  for (const p of parts) {
    for (let i = 0; i < n; i++) out.set(bundles.subarray(i * f.bundle_bytes + p.row, i * f.bundle_bytes + p.row + p.len), p.base + i * p.len);
  }
  return out;
}
