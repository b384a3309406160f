// The image header's meaning, checked once its CRC holds (the format: image.ts). A valid CRC
// proves the header is what some writer wrote, not that the writer was right: every number the
// planner, the loader and the wasm take from it is checked here for type, range and agreement
// with the config, before anything is sized from it. A bad header is then one line naming the
// file, the field and what was expected, never a TypeError, a trap, a huge allocation or a
// plausible wrong answer. Keys this build does not know are left alone (later writers may add
// optional ones); known keys must be well formed.
import type { ModelConfig } from './config.js';
import { DTYPE_BYTES, QUANTIZED, rowBytes, tensorBytes, type DType } from './dtype.js';
import { LIMITS as SHAPE_LIMITS } from './check.js';
import { modelTensors, type GlobalTensors, type LayerTensors } from './hf.js';
import { tokenizerConfigProblem } from './tokenizer-files.js';

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => Number.isSafeInteger(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
/** A value as a message shows it: JSON, cut short, on one line. */
function show(v: unknown): string {
  if (v === undefined) return 'missing';
  let s: string;
  try { s = JSON.stringify(v) ?? String(v); } catch { s = typeof v; }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * Whether a parsed JSON value nests deeper than `max`, found without recursion: JSON.parse takes
 * any depth, and a deep value would overflow the stack of whatever walks it recursively later
 * (JSON.stringify, the tokenizer's pipeline checks, the tokenizers library).
 */
export function nestedDeeper(v: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[v, 0]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (typeof x !== 'object' || x === null) continue;
    if (d > max) return true;
    for (const y of Object.values(x)) if (typeof y === 'object' && y !== null) stack.push([y, d + 1]);
  }
  return false;
}

// As image.ts and image-writer.ts lay the file out (image.ts imports this file: no import back).
const PREFIX_BYTES = 32;
const SECTION_ALIGN = 4096;
const TENSOR_ALIGN = 64;
const BUNDLE_ALIGN = 16;
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;
/** A header lists tensors and sections: a few MB for the largest models; more is no header. */
export const MAX_HEADER_BYTES = 64 << 20;

/**
 * Upper limits of the config's sizes, those the checkpoint readers accept (check.ts), far above any
 * released model, so that a hostile header cannot size a buffer or a loop before the tensors'
 * bytes (which must lie in the file) bound it.
 */
const L = SHAPE_LIMITS;
const LIMITS = { nLayers: L.layers, hidden: L.dim, ffn: L.dim, nHeads: L.heads, nKvHeads: L.heads, headDim: L.dim, vocab: L.vocab, maxPositions: L.context } as const;
/** Nesting of a header: a handful of levels (config.ropeScaling, ffn.parts[i], tokenizer_config's tokens). */
const MAX_DEPTH = 32;

/** Image tensor roles of the checkpoint tensors modelTensors lists (the FFN's go to the bundles). */
const GLOBAL_ROLES: Record<keyof GlobalTensors, string> = {
  tokEmbed: 'tok_embed', posEmbed: 'pos_embed', normW: 'norm_w', normB: 'norm_b', lmHead: 'lm_head', lmHeadB: 'lm_head_b',
};
const LAYER_ROLES: Partial<Record<keyof LayerTensors, string>> = {
  ln1W: 'ln1_w', ln1B: 'ln1_b', q: 'q', k: 'k', v: 'v', o: 'o', qB: 'q_b', kB: 'k_b', vB: 'v_b', oB: 'o_b', ln2W: 'ln2_w', ln2B: 'ln2_b', downB: 'down_b',
};

type Fail = (what: string, expected: string) => never;

/**
 * Checks a parsed image header (`dataEnd`: where the header starts, so where the sections must
 * end). Throws `${name}: invalid image: <what is wrong> (<what was expected>)`.
 */
export function checkImageHeader(h: unknown, dataEnd: number, name: string): void {
  const bad: Fail = (what, expected) => { throw new Error(`${name}: invalid image: ${what} (${expected})`); };
  if (!isObj(h)) return bad(`the header is ${show(h)}`, 'a JSON object');
  if (nestedDeeper(h, MAX_DEPTH)) bad(`the header nests deeper than ${MAX_DEPTH} levels`, 'a flat JSON object');
  if (h.format !== 'flashneuron') bad(`format is ${show(h.format)}`, '"flashneuron"');
  if (!isInt(h.version) || h.version < 1) bad(`version is ${show(h.version)}`, 'a positive integer');
  if (!isObj(h.config)) bad(`config is ${show(h.config)}`, 'an object');
  const c = checkConfig(h.config as Json, bad);
  for (const k of ['tokenizer_config', 'source'] as const) {
    if (h[k] !== undefined && !isObj(h[k])) bad(`${k} is ${show(h[k])}`, 'an object');
  }
  // Its problems read "<key> is <value> (<expected>)".
  const tcProblem = h.tokenizer_config === undefined ? undefined : tokenizerConfigProblem(h.tokenizer_config);
  if (tcProblem) throw new Error(`${name}: invalid image: tokenizer_config.${tcProblem}`);
  const sections = checkSections(h.sections, c, dataEnd, bad);
  if (!isObj(h.ffn)) bad(`ffn is ${show(h.ffn)}`, 'an object');
  checkFfn(h.ffn as Json, c, sections, bad);
  checkTensors(h.tensors, c, sections.get('resident')!.length, bad);
}

function checkConfig(j: Json, bad: Fail): ModelConfig {
  for (const [k, max] of Object.entries(LIMITS)) {
    if (!isInt(j[k]) || (j[k] as number) < 1 || (j[k] as number) > max) bad(`config.${k} is ${show(j[k])}`, `an integer in 1..${max}`);
  }
  const c = j as unknown as ModelConfig;
  if (c.nHeads % c.nKvHeads !== 0) bad(`config.nHeads ${c.nHeads} is not a multiple of config.nKvHeads ${c.nKvHeads}`, 'whole query groups');
  if (typeof c.architecture !== 'string' || !c.architecture || c.architecture.length > 200) bad(`config.architecture is ${show(c.architecture)}`, 'a class name');
  if (!['opt', 'llama', 'falcon', 'phi'].includes(c.arch)) bad(`config.arch is ${show(c.arch)}`, 'opt, llama, falcon or phi');
  if (!['relu', 'silu', 'fatrelu', 'drelu', 'gelu_tanh'].includes(c.act)) bad(`config.act is ${show(c.act)}`, 'relu, silu, fatrelu, drelu or gelu_tanh');
  if (!isNum(c.normEps) || c.normEps <= 0 || c.normEps >= 1) bad(`config.normEps is ${show(c.normEps)}`, 'a number between 0 and 1');
  // Learned positions (OPT) or rotary (the others): the wasm takes ropeTheta > 0 as "rotate".
  const opt = c.arch === 'opt';
  if (!isNum(c.ropeTheta) || (opt ? c.ropeTheta !== 0 : c.ropeTheta <= 0)) bad(`config.ropeTheta is ${show(c.ropeTheta)}`, opt ? '0: OPT learns its positions' : 'a positive RoPE base');
  if (!isInt(c.posOffset) || c.posOffset < 0 || c.posOffset > 1 << 16) bad(`config.posOffset is ${show(c.posOffset)}`, 'an integer in 0..65536');
  for (const k of ['tieWordEmbeddings', 'attnBias', 'mlpBias', 'hasGate'] as const) {
    if (typeof c[k] !== 'boolean') bad(`config.${k} is ${show(c[k])}`, 'true or false');
  }
  // modelTensors (the tensors checked below) gives Llama, and only Llama, a gate_proj.
  if (c.hasGate !== (c.arch === 'llama')) bad(`config.hasGate is ${c.hasGate} for arch ${c.arch}`, c.arch === 'llama' ? 'true: Llama has gate_proj' : 'false: only Llama has gate_proj');
  if (c.hasGate && c.mlpBias) bad('config.mlpBias with a gated FFN', 'no MLP biases: the bundles hold no gate bias');
  const tokenId = (v: unknown, min: number) => isInt(v) && v >= min && v < c.vocab;
  if (!tokenId(c.bosId, -1)) bad(`config.bosId is ${show(c.bosId)}`, `a token id below the vocabulary's ${c.vocab}, or -1`);
  if (!tokenId(c.padId, -1)) bad(`config.padId is ${show(c.padId)}`, `a token id below the vocabulary's ${c.vocab}, or -1`);
  if (!Array.isArray(c.eosIds) || c.eosIds.length > 64 || !c.eosIds.every((v) => tokenId(v, 0))) bad(`config.eosIds is ${show(c.eosIds)}`, `a list of token ids below the vocabulary's ${c.vocab}`);
  // The keys added after the first images (config.ts): absent means the default.
  if (c.act === 'fatrelu' && !isNum(c.actParam)) bad(`config.actParam is ${show(c.actParam)}`, 'a number: fatrelu needs its threshold');
  if (c.actParam !== undefined && !isNum(c.actParam)) bad(`config.actParam is ${show(c.actParam)}`, 'a number');
  // The norms' tensors follow the arch (modelTensors): LayerNorm reads a bias, which Llama has not.
  const layerNorm = c.arch !== 'llama';
  if (c.norm !== undefined && c.norm !== (layerNorm ? 'layer' : 'rms')) bad(`config.norm is ${show(c.norm)} for arch ${c.arch}`, layerNorm ? 'layer' : 'rms');
  const parallel = c.arch === 'phi' ? ['one-norm'] : c.arch === 'falcon' ? [undefined, 'one-norm', 'two-norms'] : [undefined];
  if (!parallel.includes(c.parallelAttn)) bad(`config.parallelAttn is ${show(c.parallelAttn)} for arch ${c.arch}`, parallel.map((v) => v ?? 'absent').join(' or '));
  if (c.rotaryDim !== undefined && !(isInt(c.rotaryDim) && c.rotaryDim > 0 && c.rotaryDim % 2 === 0 && c.rotaryDim <= c.headDim)) {
    bad(`config.rotaryDim is ${show(c.rotaryDim)}`, `an even number of dims up to headDim ${c.headDim}`);
  }
  if (c.slidingWindow !== undefined && !(isInt(c.slidingWindow) && c.slidingWindow > 0)) bad(`config.slidingWindow is ${show(c.slidingWindow)}`, 'a positive integer');
  if (c.lmHeadBias !== undefined && typeof c.lmHeadBias !== 'boolean') bad(`config.lmHeadBias is ${show(c.lmHeadBias)}`, 'true or false');
  if (c.attnOutBias !== undefined && typeof c.attnOutBias !== 'boolean') bad(`config.attnOutBias is ${show(c.attnOutBias)}`, 'true or false');
  const r = c.ropeScaling;
  if (r !== undefined && !(isObj(r) && r.type === 'llama3' && [r.factor, r.lowFreqFactor, r.highFreqFactor, r.originalMaxPositions].every((v) => isNum(v) && v > 0))) {
    bad(`config.ropeScaling is ${show(r)}`, 'type llama3 with positive factor, lowFreqFactor, highFreqFactor and originalMaxPositions');
  }
  return c;
}

interface Sec { offset: number; length: number }

/** Sections: well typed, 4096-aligned, inside the data region, apart; the required ones present. */
function checkSections(list: unknown, c: ModelConfig, dataEnd: number, bad: Fail): Map<string, Sec> {
  if (!Array.isArray(list)) return bad(`sections is ${show(list)}`, 'a list');
  const byName = new Map<string, Sec>();
  for (const s of list as unknown[]) {
    if (!isObj(s) || typeof s.name !== 'string') return bad(`section ${show(s)}`, 'an object with a name');
    const what = `section ${show(s.name)}`;
    if (byName.has(s.name)) bad(`${what} is listed twice`, 'one entry per section');
    if (!isInt(s.offset) || !isInt(s.length) || s.length < 0) bad(`${what} has offset ${show(s.offset)}, length ${show(s.length)}`, 'non-negative integers');
    const off = s.offset as number, len = s.length as number;
    if (off < PREFIX_BYTES || off % SECTION_ALIGN) bad(`${what} starts at ${off}`, `a multiple of ${SECTION_ALIGN} after the prefix`);
    if (off + len > dataEnd) bad(`${what} ends at ${off + len}, past the header at ${dataEnd}`, 'sections inside the file, before the header');
    if (!isInt(s.crc32) || s.crc32 < 0 || s.crc32 > 0xffffffff) bad(`${what} has crc32 ${show(s.crc32)}`, 'a CRC-32');
    const layer = /^ffn\.(\d+)$/.exec(s.name);
    if (layer && (String(Number(layer[1])) !== layer[1] || Number(layer[1]) >= c.nLayers)) bad(`${what} names no layer of the ${c.nLayers}`, `ffn.0 to ffn.${c.nLayers - 1}`);
    byName.set(s.name, { offset: off, length: len });
  }
  const sorted = [...byName.entries()].sort((a, b) => a[1].offset - b[1].offset);
  for (let i = 1; i < sorted.length; i++) {
    const [pn, p] = sorted[i - 1], [n, s] = sorted[i];
    if (s.offset < p.offset + p.length) bad(`sections ${pn} and ${n} overlap`, 'each section its own bytes');
  }
  for (const n of ['tokenizer', 'resident', ...Array.from({ length: c.nLayers }, (_, l) => `ffn.${l}`)]) {
    if (!byName.has(n)) bad(`section ${n} is missing`, `tokenizer, resident and ffn.0 to ffn.${c.nLayers - 1}`);
  }
  for (const n of ['tokenizer', 'resident']) if (byName.get(n)!.length === 0) bad(`section ${n} is empty`, 'its bytes');
  // Optional: a CRC-32 per neuron (u32), layer by layer.
  const crcs = byName.get('ffn.crc');
  if (crcs && crcs.length !== c.nLayers * c.ffn * 4) bad(`section ffn.crc holds ${crcs.length} bytes`, `${c.nLayers} layers x ${c.ffn} neurons x 4 = ${c.nLayers * c.ffn * 4}`);
  return byName;
}

/** The FFN layout: parts inside the bundle and apart, the bundle as the writer pads it, the sections' sizes. */
function checkFfn(f: Json, c: ModelConfig, sections: Map<string, Sec>, bad: Fail): void {
  const dt = f.dtype as DType;
  if (typeof dt !== 'string' || !Object.hasOwn(DTYPE_BYTES, dt)) bad(`ffn.dtype is ${show(dt)}`, 'f32, f16, bf16, q8_0 or q4_0');
  if (QUANTIZED.has(dt) && c.hidden % 32) bad(`ffn.dtype is ${dt} with a model width of ${c.hidden}`, 'a width that is a multiple of 32');
  const pb = rowBytes(dt, c.hidden);
  const want: [string, boolean, number][] = [['up', true, pb], ['gate', c.hasGate, pb], ['down', true, pb], ['bias', c.mlpBias, 4]];
  const parts: { k: string; at: number; len: number }[] = [];
  for (const [k, present, len] of want) {
    const at = f[k];
    if (!isInt(at) || at < -1 || (at === -1) === present) {
      const flag = k === 'bias' ? 'mlpBias' : k === 'gate' ? 'hasGate' : '';
      bad(`ffn.${k} is ${show(at)}`, present ? `a byte offset in the bundle${flag && `: config.${flag} is true`}` : `-1: config.${flag} is false`);
    }
    if (present) parts.push({ k, at: at as number, len });
  }
  const need = parts.reduce((a, p) => a + p.len, 0);
  const bundle = f.bundle_bytes;
  if (bundle !== alignUp(need, BUNDLE_ALIGN)) bad(`ffn.bundle_bytes is ${show(bundle)}`, `${parts.map((p) => p.k).join(' + ')} of ${dt} rows of ${c.hidden} = ${need}, padded to ${BUNDLE_ALIGN}: ${alignUp(need, BUNDLE_ALIGN)}`);
  parts.sort((a, b) => a.at - b.at);
  parts.forEach((p, i) => {
    if (p.at + p.len > (bundle as number)) bad(`ffn.${p.k} at ${p.at} (${p.len} bytes) ends past the ${bundle}-byte bundle`, 'parts inside the bundle');
    if (i > 0 && p.at < parts[i - 1].at + parts[i - 1].len) bad(`ffn.${parts[i - 1].k} and ffn.${p.k} overlap in the bundle`, 'each part its own bytes');
  });
  // Optional flag (per-neuron CRCs), true/false or 1/0.
  const bc = f.bundle_crc;
  if (bc !== undefined && typeof bc !== 'boolean' && bc !== 0 && bc !== 1) bad(`ffn.bundle_crc is ${show(bc)}`, 'true or false');
  if (f.bias_stride !== undefined && !(isInt(f.bias_stride) && f.bias_stride > 0)) bad(`ffn.bias_stride is ${show(f.bias_stride)}`, 'a positive integer');
  let perNeuron = bundle as number;
  if (f.layout === 'split') {
    // Each part for all neurons in turn: the parts are the bundle's, each once, back to back.
    const list = f.parts;
    if (!Array.isArray(list) || list.length !== parts.length) bad(`ffn.parts is ${show(list)}`, `the ${parts.length} parts of the split layout`);
    perNeuron = 0;
    const used = new Set<string>();
    (list as unknown[]).forEach((p, i) => {
      if (!isObj(p) || ![p.base, p.len, p.row].every((v) => isInt(v) && v >= 0)) bad(`ffn.parts[${i}] is ${show(p)}`, 'base, len and row as non-negative integers');
      const q = p as { base: number; len: number; row: number };
      const part = parts.find((x) => x.at === q.row && x.len === q.len);
      if (!part || used.has(part.k)) bad(`ffn.parts[${i}] (row ${q.row}, ${q.len} bytes) is no part of the bundle or a repeated one`, parts.map((x) => `${x.k} at ${x.at}, ${x.len} bytes`).join('; '));
      used.add(part!.k);
      if (q.base !== c.ffn * perNeuron) bad(`ffn.parts[${i}].base is ${q.base}`, `${c.ffn * perNeuron}: the parts back to back`);
      perNeuron += q.len;
    });
    const crcs = f.bundled_crc32;
    if (crcs !== undefined && !(Array.isArray(crcs) && crcs.length === c.nLayers && crcs.every((v) => isInt(v) && v >= 0 && v <= 0xffffffff))) {
      bad(`ffn.bundled_crc32 is ${show(crcs)}`, `a CRC-32 for each of the ${c.nLayers} layers`);
    }
  } else {
    if (f.layout !== undefined && f.layout !== 'bundled') bad(`ffn.layout is ${show(f.layout)}`, 'bundled or split');
    for (const k of ['parts', 'bundled_crc32']) if (f[k] !== undefined) bad(`ffn.${k} is given for the bundled layout`, 'only with layout split');
  }
  for (let l = 0; l < c.nLayers; l++) {
    const s = sections.get(`ffn.${l}`)!;
    if (s.length !== c.ffn * perNeuron) bad(`section ffn.${l} holds ${s.length} bytes`, `${c.ffn} neurons of ${perNeuron} = ${c.ffn * perNeuron}`);
  }
}

/** Resident tensors: exactly those the config implies, each of its shape, inside the section, apart. */
function checkTensors(list: unknown, c: ModelConfig, residentLen: number, bad: Fail): void {
  if (!Array.isArray(list)) return bad(`tensors is ${show(list)}`, 'a list');
  // What the config implies: the tensors a checkpoint of it holds (hf.ts), the FFN's aside.
  const spec = modelTensors(c, '');
  const expected = new Map<string, number[]>();
  for (const [k, t] of Object.entries(spec.globals)) if (t) expected.set(`${GLOBAL_ROLES[k as keyof GlobalTensors]}@-1`, t.shape);
  spec.layers.forEach((L, l) => {
    for (const [k, t] of Object.entries(L)) {
      const role = LAYER_ROLES[k as keyof LayerTensors];
      if (t && role) expected.set(`${role}@${l}`, t.shape);
    }
  });
  const seen = new Set<string>();
  const placed: { what: string; at: number; end: number }[] = [];
  for (const t of list as unknown[]) {
    if (!isObj(t) || typeof t.role !== 'string' || !isInt(t.layer)) return bad(`tensor ${show(t)}`, 'an object with a role and a layer');
    const what = `tensor ${show(t.role)}${t.layer >= 0 ? ` of layer ${t.layer}` : ''}`;
    const key = `${t.role}@${t.layer}`, shape = expected.get(key);
    if (!shape) {
      bad(`${what} is not one this model has`, t.layer >= c.nLayers ? `layers 0 to ${c.nLayers - 1}`
        : `what arch ${c.arch} with this config's attnBias, attnOutBias, mlpBias, lmHeadBias, parallelAttn and tieWordEmbeddings has`);
    }
    if (seen.has(key)) bad(`${what} is listed twice`, 'one entry per tensor');
    seen.add(key);
    const dt = t.dtype as DType;
    if (typeof dt !== 'string' || !Object.hasOwn(DTYPE_BYTES, dt)) bad(`${what} has dtype ${show(dt)}`, 'f32, f16, bf16, q8_0 or q4_0');
    const s = t.shape;
    if (!Array.isArray(s) || s.length !== shape!.length || s.some((v, i) => v !== shape![i])) bad(`${what} has shape ${show(s)}`, `[${shape}] as the config implies`);
    if (shape!.length === 1 && dt !== 'f32') bad(`${what} is ${dt}`, 'f32: vectors are widened when written');
    if (QUANTIZED.has(dt) && shape![shape!.length - 1] % 32) bad(`${what} is ${dt} with rows of ${shape![shape!.length - 1]}`, 'rows of a multiple of 32 elements');
    if (!isInt(t.offset) || t.offset < 0 || t.offset % TENSOR_ALIGN) bad(`${what} has offset ${show(t.offset)}`, `a multiple of ${TENSOR_ALIGN} in the resident section`);
    const end = (t.offset as number) + tensorBytes(dt, shape!);
    if (end > residentLen) bad(`${what} ends at ${end}, past the resident section's ${residentLen} bytes`, 'tensors inside the resident section');
    placed.push({ what, at: t.offset as number, end });
  }
  for (const key of expected.keys()) {
    if (!seen.has(key)) { const [role, l] = key.split('@'); bad(`tensor ${show(role)}${l === '-1' ? '' : ` of layer ${l}`} is missing`, `every tensor ${c.arch} with this config has`); }
  }
  placed.sort((a, b) => a.at - b.at);
  for (let i = 1; i < placed.length; i++) {
    if (placed[i].at < placed[i - 1].end) bad(`${placed[i - 1].what} and ${placed[i].what} overlap`, 'each tensor its own bytes');
  }
}
