// The .fnpred byte format: encoding, decoding (with every check), and the model fingerprint.
//
// File format (.fnpred), little-endian:
//  1. magic "FNPRED01" (8 bytes)
//  2. header_len u32 (bytes of the JSON header)
//  3. header_crc32 u32 (CRC-32 of the JSON header bytes)
//  4. JSON header, UTF-8:
//       { format: 'flashneuron-predictor', version: 2, fingerprint, config: { nLayers, hidden, ffn, rank },
//         dtype: 'f16',
//         layers: [{ threshold, recall, ratio, w1: { offset, length }, b1: {…}, w2: {…}, b2: {…} }],
//         ranks: [{ rank, layers: [{ threshold, recall, ratio, predicted_share, true_share, val_recall, val_ratio,
//                                   b2: { offset, length } }] }],
//         data_crc32, report }
//     ranks: the nested-rank ladder (ascending, the last = config.rank, its thresholds = the layers'):
//     truncated to its first `rank` components the predictor runs with that rung's b2 (f32) and
//     threshold; recall / ratio / shares measured on held-out text, val_* on the validation split.
//     Version 1 files (no ranks) are rejected with a "retrain" message.
//     offsets and lengths in bytes, relative to the data start
//  5. zero padding up to a multiple of 64 bytes (the data start)
//  6. data: per layer W1 (rank, d) and W2 (ffn, rank) as IEEE f16, b1 and b2 as f32, then each rung's
//     per-layer b2 as f32; every tensor
//     starts on a 64-byte boundary; data_crc32 covers the whole data region (to the end of the file)
// The decoder checks magic, version, sizes, both CRCs, every tensor's range and shape, and the
// fingerprint of the model it is loaded for (modelFingerprint) before it decodes anything.
// Pure bytes in, bytes out: the file itself is src/node/predictor-file.ts's (and the web worker fetches it).
import { crc32 } from '../format/crc32.js';
import { f16ToF32, f32ToF16, tensorBytes } from '../format/dtype.js';
import { section } from '../format/image.js';
import { nestedDeeper } from '../format/image-check.js';
import { LIMITS as SHAPE } from '../format/check.js';
import type { ImageHeader } from '../format/image.js';
import type { Predictor, PredictorLayer, PredictorReport, PredictorRung, PredictorRungLayer } from './types.js';
import { alignUp } from './util.js';

const MAGIC = 'FNPRED01';
const VERSION = 2; // 2: nested-rank rungs (`ranks`)
const ALIGN = 64;

interface FileHeader {
  format: string; version: number; fingerprint: string;
  config: { nLayers: number; hidden: number; ffn: number; rank: number };
  dtype: string;
  layers: { threshold: number; recall: number; ratio: number; w1: Range; b1: Range; w2: Range; b2: Range }[];
  ranks: { rank: number; layers: (Omit<PredictorRungLayer, 'b2'> & { b2: Range })[] }[];
  data_crc32: number;
  report: PredictorReport;
}
interface Range { offset: number; length: number }

/** Stored bytes of each tensor of a layer: W1 and W2 as f16, b1 and b2 as f32. */
function layerBytes(r: number, d: number, ffn: number) {
  return { w1: tensorBytes('f16', [r, d]), b1: tensorBytes('f32', [r]), w2: tensorBytes('f16', [ffn, r]), b2: tensorBytes('f32', [ffn]) };
}

/** Values of a rounded to f16 and back (what the file stores and the engine computes with). */
export function roundF16(a: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f16ToF32(f32ToF16(a[i]));
  return out;
}

/** Bytes the predictor takes in engine memory: f16 W1 and W2, f32 b1, b2 and a threshold per layer. */
export function predictorBytes(p: Predictor): number {
  const b = layerBytes(p.rank, p.hidden, p.ffn);
  return p.nLayers * (b.w1 + b.b1 + b.w2 + b.b2 + 4);
}

/** Identifies the model a predictor was trained for: CRC-32s of the resident and FFN sections and the config. */
export function modelFingerprint(header: ImageHeader): string {
  const c = header.config;
  const parts = [section(header, 'resident').crc32];
  // The bundled layout's checksums, so a split (--no-bundle) image of the same weights matches.
  for (let l = 0; l < c.nLayers; l++) parts.push(header.ffn.bundled_crc32?.[l] ?? section(header, `ffn.${l}`).crc32);
  const cfg = crc32(new TextEncoder().encode(JSON.stringify(c)));
  const sec = crc32(new TextEncoder().encode(parts.join(',')));
  const hex = (v: number) => (v >>> 0).toString(16).padStart(8, '0');
  return `${c.arch}-${c.nLayers}x${c.hidden}x${c.ffn}-${hex(sec)}${hex(cfg)}`;
}

/** The bytes of p's .fnpred file. Weights are stored as f16. Throws on a malformed predictor. */
export function encodePredictor(p: Predictor): Uint8Array {
  const { rank: r, hidden: d, ffn } = p;
  let off = 0;
  const place = (bytes: number): Range => { const o = off; off = alignUp(off + bytes, ALIGN); return { offset: o, length: bytes }; };
  const lb = layerBytes(r, d, ffn);
  const ranges = p.layers.map((L) => {
    checkLayerShape(L, r, d, ffn, 'predictor');
    return { w1: place(lb.w1), b1: place(lb.b1), w2: place(lb.w2), b2: place(lb.b2) };
  });
  checkRungs(p.rungs, r, p.nLayers, ffn, 'predictor');
  p.rungs[p.rungs.length - 1].layers.forEach((G, l) => {
    if (G.threshold !== p.layers[l].threshold) throw new Error(`predictor: the full-rank rung's layer ${l} threshold ${G.threshold} differs from the layer's ${p.layers[l].threshold}`);
  });
  const rungRanges = p.rungs.map((g) => g.layers.map(() => place(lb.b2)));
  const data = new Uint8Array(off);
  const dv = new DataView(data.buffer);
  p.layers.forEach((L, l) => {
    const g = ranges[l];
    L.w1.forEach((v, i) => dv.setUint16(g.w1.offset + 2 * i, f32ToF16(v), true));
    L.w2.forEach((v, i) => dv.setUint16(g.w2.offset + 2 * i, f32ToF16(v), true));
    L.b1.forEach((v, i) => dv.setFloat32(g.b1.offset + 4 * i, v, true));
    L.b2.forEach((v, i) => dv.setFloat32(g.b2.offset + 4 * i, v, true));
  });
  p.rungs.forEach((g, gi) => g.layers.forEach((G, l) => G.b2.forEach((v, i) => dv.setFloat32(rungRanges[gi][l].offset + 4 * i, v, true))));
  const header: FileHeader = {
    format: 'flashneuron-predictor', version: VERSION, fingerprint: p.fingerprint,
    config: { nLayers: p.nLayers, hidden: d, ffn, rank: r }, dtype: 'f16',
    layers: p.layers.map((L, l) => ({ threshold: L.threshold, recall: L.recall, ratio: L.ratio, ...ranges[l] })),
    ranks: p.rungs.map((g, gi) => ({
      rank: g.rank,
      layers: g.layers.map((G, l) => ({
        threshold: G.threshold, recall: G.recall, ratio: G.ratio, predicted_share: G.predicted_share, true_share: G.true_share,
        val_recall: G.val_recall, val_ratio: G.val_ratio, b2: rungRanges[gi][l],
      })),
    })),
    data_crc32: crc32(data), report: p.report,
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const dataStart = alignUp(16 + json.length, ALIGN);
  const file = new Uint8Array(dataStart + data.length);
  file.set(new TextEncoder().encode(MAGIC), 0);
  const hv = new DataView(file.buffer);
  hv.setUint32(8, json.length, true);
  hv.setUint32(12, crc32(json), true);
  file.set(json, 16);
  file.set(data, dataStart);
  return file;
}

/** Rungs must be ascending distinct integer ranks in 1..rank ending at rank, each with nLayers layers of ffn-long b2 and finite numbers. */
function checkRungs(rungs: PredictorRung[] | undefined, rank: number, nLayers: number, ffn: number, what: string): void {
  if (!Array.isArray(rungs) || !rungs.length) throw new Error(`${what}: no nested-rank rungs (train it again)`);
  rungs.forEach((g, gi) => {
    if (!Number.isInteger(g.rank) || g.rank < 1 || g.rank > rank) throw new Error(`${what}: rung ${gi} has rank ${show(g.rank)}, not an integer in 1..${rank}`);
    if (gi > 0 && !(g.rank > rungs[gi - 1].rank)) throw new Error(`${what}: rung ranks are not ascending (${rungs.map((q) => q.rank).join(', ')})`);
    if (!Array.isArray(g.layers) || g.layers.length !== nLayers) throw new Error(`${what}: rung ${g.rank} lists ${g.layers?.length} layers, expected ${nLayers}`);
    g.layers.forEach((G, l) => {
      for (const k of ['threshold', 'recall', 'ratio', 'predicted_share', 'true_share', 'val_recall', 'val_ratio'] as const) {
        if (typeof G[k] !== 'number' || !Number.isFinite(G[k])) throw new Error(`${what}: rung ${g.rank} layer ${l} ${k} is ${G[k]}`);
      }
      if (G.b2 && G.b2.length !== ffn) throw new Error(`${what}: rung ${g.rank} layer ${l} b2 has ${G.b2.length} values, expected ${ffn}`);
    });
  });
  if (rungs[rungs.length - 1].rank !== rank) throw new Error(`${what}: the last rung has rank ${rungs[rungs.length - 1].rank}, not the full rank ${rank}`);
}

function checkLayerShape(L: PredictorLayer, r: number, d: number, ffn: number, what: string): void {
  if (L.w1.length !== r * d || L.b1.length !== r || L.w2.length !== ffn * r || L.b2.length !== ffn) {
    throw new Error(`${what}: layer tensors have shapes w1 ${L.w1.length}, b1 ${L.b1.length}, w2 ${L.w2.length}, b2 ${L.b2.length}; expected ${r * d}, ${r}, ${ffn * r}, ${ffn}`);
  }
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown): string => { let s: string; try { s = JSON.stringify(v) ?? String(v); } catch { s = typeof v; } return s.length > 60 ? `${s.slice(0, 57)}...` : s; };
/** The sizes a predictor may claim: those of the models it can belong to (format/check.ts), and training's rank limit. */
const LIMITS = { nLayers: SHAPE.layers, hidden: SHAPE.dim, ffn: SHAPE.dim, rank: 4096 } as const;

/**
 * What is wrong with a layer's measures, or undefined: recalls and shares are fractions, ratios
 * non-negative (the planner sizes neuron caches from predicted_share); `optional` lets absent ones pass.
 */
function measuresProblem(m: Json, keys: string[], optional = false): string | undefined {
  for (const k of keys) {
    const v = m[k];
    if (optional && v === undefined) continue;
    const ok = typeof v === 'number' && Number.isFinite(v) && v >= 0 && (k.includes('ratio') || v <= 1);
    if (!ok) return `${k} is ${show(v)} (${k.includes('ratio') ? 'a number >= 0' : 'a fraction in 0..1'})`;
  }
  return undefined;
}

/**
 * A predictor from the bytes of a .fnpred file (`path` names it in errors). Throws a clear Error for
 * a bad magic or version, truncation, a CRC mismatch, tensors outside the data or of the wrong size,
 * and (with expectFingerprint) a predictor trained for another model.
 */
export function decodePredictor(buf: Uint8Array, path: string, expectFingerprint?: string): Predictor {
  const bad = (msg: string): never => { throw new Error(`${path}: ${msg}`); };
  if (buf.length < 16) bad(`not a flashneuron predictor (file is ${buf.length} bytes)`);
  const magic = new TextDecoder().decode(buf.subarray(0, 8));
  if (magic !== MAGIC) {
    if (magic.startsWith('FNPRED')) bad(`predictor format ${magic} is not supported (this build reads ${MAGIC}); train it again`);
    bad('not a flashneuron predictor (bad magic)');
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const hlen = dv.getUint32(8, true), hcrc = dv.getUint32(12, true);
  if (hlen === 0 || 16 + hlen > buf.length) bad(`predictor file is truncated (header of ${hlen} bytes, file has ${buf.length})`);
  const json = buf.subarray(16, 16 + hlen);
  if (crc32(json) !== hcrc) bad('predictor header checksum mismatch (file is corrupted)');
  let h: FileHeader;
  try { h = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json)); } catch { return bad('predictor header is not valid JSON'); }
  if (!isObj(h)) bad(`invalid predictor: the header is ${show(h)} (a JSON object)`);
  // The report is spread and printed by callers: no depth that overflows their stack.
  if (nestedDeeper(h, 32)) bad('invalid predictor: the header nests deeper than 32 levels (a flat JSON object)');
  if (h.format !== 'flashneuron-predictor') bad(`not a flashneuron predictor (format ${show(h.format)})`);
  if (h.version === 1) bad(`predictor version 1 has no nested-rank table (this build reads version ${VERSION}); retrain it (flashneuron train-predictor, or node bench/predictor.js for the shipped models)`);
  if (h.version !== VERSION) bad(`predictor version ${h.version} is not supported (this build reads ${VERSION}); retrain it`);
  if (h.dtype !== 'f16') bad(`predictor dtype ${show(h.dtype)} is not supported (expected f16)`);
  const c = isObj(h.config) ? h.config : ({} as FileHeader['config']);
  for (const k of ['nLayers', 'hidden', 'ffn', 'rank'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0 || c[k] > LIMITS[k]) bad(`invalid predictor: config.${k} = ${show(c[k])} (an integer in 1..${LIMITS[k]})`);
  }
  if (!Array.isArray(h.layers) || h.layers.length !== c.nLayers) bad(`invalid predictor: ${h.layers?.length} layers listed, config says ${c.nLayers}`);
  if (expectFingerprint !== undefined && h.fingerprint !== expectFingerprint) {
    bad(`this predictor belongs to another model (its fingerprint is ${show(h.fingerprint)}, the loaded model's is ${expectFingerprint}); train one for this model`);
  }
  // The fingerprint names the model's shape (modelFingerprint): the config must be that shape.
  const fp = typeof h.fingerprint === 'string' ? /^[a-z]+-(\d+)x(\d+)x(\d+)-[0-9a-f]{16}$/.exec(h.fingerprint) : null;
  if (!fp) bad(`invalid predictor: fingerprint ${show(h.fingerprint)} (arch-LAYERSxHIDDENxFFN-hex, as modelFingerprint writes it)`);
  if (+fp![1] !== c.nLayers || +fp![2] !== c.hidden || +fp![3] !== c.ffn) {
    bad(`invalid predictor: config ${c.nLayers}x${c.hidden}x${c.ffn} (layers x hidden x ffn) is not the shape of the model it claims (${fp![1]}x${fp![2]}x${fp![3]})`);
  }
  if (!Number.isInteger(h.data_crc32) || h.data_crc32 < 0 || h.data_crc32 > 0xffffffff) bad(`invalid predictor: data_crc32 ${show(h.data_crc32)} (a CRC-32)`);
  const dataStart = alignUp(16 + hlen, ALIGN);
  if (dataStart > buf.length) bad(`predictor file is truncated (data would start at ${dataStart}, file has ${buf.length} bytes)`);
  const data = buf.subarray(dataStart);
  const { rank: r, hidden: d, ffn } = c;
  const want = layerBytes(r, d, ffn);
  const ranges: { what: string; g: Range }[] = [];
  for (const [l, L] of h.layers.entries()) {
    if (!isObj(L)) bad(`invalid predictor: layer ${l} is ${show(L)} (an object)`);
    for (const k of ['w1', 'b1', 'w2', 'b2'] as const) {
      const g = L[k];
      if (!isObj(g) || !Number.isSafeInteger(g.offset) || !Number.isSafeInteger(g.length) || g.offset < 0) bad(`invalid predictor: layer ${l} ${k} has a bad range`);
      ranges.push({ what: `layer ${l} ${k}`, g });
      if (g.length !== want[k]) bad(`invalid predictor: layer ${l} ${k} holds ${g.length} bytes, its shape needs ${want[k]}`);
      if (g.offset % ALIGN) bad(`invalid predictor: layer ${l} ${k} is not ${ALIGN}-byte aligned`);
      if (g.offset + g.length > data.length) bad(`predictor file is truncated (layer ${l} ${k} ends at ${g.offset + g.length}, the data has ${data.length} bytes)`);
    }
    if (typeof L.threshold !== 'number' || !Number.isFinite(L.threshold)) bad(`invalid predictor: layer ${l} threshold ${L.threshold}`);
    const m = measuresProblem(L, ['recall', 'ratio']);
    if (m) bad(`invalid predictor: layer ${l} ${m}`);
  }
  if (!Array.isArray(h.ranks)) bad('invalid predictor: no nested-rank table (ranks); retrain it');
  for (const g of h.ranks) {
    if (!isObj(g)) bad('invalid predictor: a ranks entry is not an object');
    for (const [l, G] of (Array.isArray(g.layers) ? g.layers : []).entries()) {
      if (!isObj(G)) bad(`invalid predictor: rung ${show(g.rank)} layer ${l} is ${show(G)} (an object)`);
      const b = G.b2;
      if (!isObj(b) || !Number.isSafeInteger(b.offset) || !Number.isSafeInteger(b.length) || b.offset < 0) bad(`invalid predictor: rung ${g.rank} layer ${l} b2 has a bad range`);
      ranges.push({ what: `rung ${g.rank} layer ${l} b2`, g: b });
      const m = measuresProblem(G, ['recall', 'ratio', 'predicted_share', 'true_share', 'val_recall', 'val_ratio']);
      if (m) bad(`invalid predictor: rung ${g.rank} layer ${l} ${m}`);
      if (b.length !== want.b2) bad(`invalid predictor: rung ${g.rank} layer ${l} b2 holds ${b.length} bytes, its shape needs ${want.b2}`);
      if (b.offset % ALIGN) bad(`invalid predictor: rung ${g.rank} layer ${l} b2 is not ${ALIGN}-byte aligned`);
      if (b.offset + b.length > data.length) bad(`predictor file is truncated (rung ${g.rank} layer ${l} b2 ends at ${b.offset + b.length}, the data has ${data.length} bytes)`);
    }
  }
  try {
    const heads = h.ranks.map((g) => ({ rank: g.rank, layers: Array.isArray(g.layers) ? g.layers.map(({ b2: _b2, ...G }) => G) : g.layers }));
    checkRungs(heads as unknown as PredictorRung[], r, c.nLayers, ffn, 'invalid predictor');
  } catch (e) { bad((e as Error).message); }
  // Every tensor its own bytes: a range shared by two is no file the encoder writes.
  ranges.sort((a, b) => a.g.offset - b.g.offset);
  for (let i = 1; i < ranges.length; i++) {
    const p = ranges[i - 1], q = ranges[i];
    if (q.g.offset < p.g.offset + p.g.length) bad(`invalid predictor: ${p.what} and ${q.what} overlap in the data (each tensor its own bytes)`);
  }
  const rep = h.report as unknown;
  if (rep !== undefined && !(isObj(rep) && (rep.layers === undefined || (Array.isArray(rep.layers) && rep.layers.every((L) => isObj(L) && !measuresProblem(L, ['recall', 'ratio', 'predicted_share', 'true_share'], true)))))) {
    bad(`invalid predictor: report ${show(rep)} (an object whose layers hold shares and recalls in 0..1 and ratios >= 0)`);
  }
  const full = h.ranks[h.ranks.length - 1];
  full.layers.forEach((G, l) => { if (G.threshold !== h.layers[l].threshold) bad(`invalid predictor: the full-rank rung's layer ${l} threshold ${G.threshold} differs from the layer's ${h.layers[l].threshold}`); });
  if (crc32(data) !== h.data_crc32 >>> 0) bad('predictor data checksum mismatch (file is corrupted)');
  const ddv = new DataView(data.buffer, data.byteOffset, data.length);
  const f16s = (g: Range) => { const o = new Float32Array(g.length >> 1); for (let i = 0; i < o.length; i++) o[i] = f16ToF32(ddv.getUint16(g.offset + 2 * i, true)); return o; };
  const f32s = (g: Range) => { const o = new Float32Array(g.length >> 2); for (let i = 0; i < o.length; i++) o[i] = ddv.getFloat32(g.offset + 4 * i, true); return o; };
  return {
    rank: r, hidden: d, ffn, nLayers: c.nLayers, fingerprint: h.fingerprint,
    layers: h.layers.map((L) => ({ w1: f16s(L.w1), b1: f32s(L.b1), w2: f16s(L.w2), b2: f32s(L.b2), threshold: L.threshold, recall: L.recall, ratio: L.ratio })),
    report: h.report,
    rungs: h.ranks.map((g) => ({ rank: g.rank, layers: g.layers.map((G) => ({ ...G, b2: f32s(G.b2) })) })),
  };
}
