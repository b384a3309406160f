// What the fuzzer mutates: the inputs it prepares once per run (an image with its predictor, Hugging
// Face folders, GGUF exports) and, per case, one mutated file or command line with the command
// that reads it. Each target draws its mutation from the case's seeded generator only.
import { copyFileSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bitFlip, byteRun, crc32, extend, mutateJson, numberEdit, truncate, varintEdit, weighted } from './mutators.js';
import { ggufLayout, imageLayout, predictorLayout, regionAt, safetensorsLayout, spmLayout, zipLayout } from './formats.js';
import { cliCase } from './cli-args.js';

export const PROMPT = 'Hello, wörld! 12 + 3 — ok?';
/** The part of every command that asks for a short greedy run printed as JSON. */
export const GENERATE = ['generate', '--max-tokens', '3', '--temperature', '0', '--no-stop', '--json'];

const REPLICAS = (root) => join(root, 'test', 'fixtures', 'replicas');

/**
 * Builds the unmutated inputs under `dir/base` with the CLI (`cli(args, env)` resolves to a run):
 * img/opt.fnimg + opt.fnpred (OPT, .bin shards converted, a rank-16 predictor), phi/ (sharded
 * safetensors + tokenizer.json), spm/ (pytorch_model.bin + tokenizer.model), opt/ (.bin shards +
 * vocab.json/merges.txt), gguf/spm.gguf and gguf/spm-pi.gguf (PowerInfer layout with predictor).
 */
export async function prepare(root, dir, cli) {
  const base = join(dir, 'base');
  rmSync(base, { recursive: true, force: true });
  const copy = (name, to) => {
    mkdirSync(join(base, to), { recursive: true });
    for (const f of readdirSync(join(REPLICAS(root), name))) if (f !== 'golden.json') copyFileSync(join(REPLICAS(root), name, f), join(base, to, f));
  };
  copy('phi2-relu-tiny', 'phi');
  copy('spm-only-relu-tiny', 'spm');
  copy('opt-relu-bin-tiny', 'opt');
  mkdirSync(join(base, 'img'), { recursive: true });
  mkdirSync(join(base, 'gguf'), { recursive: true });
  const text = join(base, 'calibration.txt');
  writeFileSync(text, readFileSync(join(root, 'models', 'calibration.txt'), 'utf8').slice(0, 20000));
  const train = ['--epochs', '1', '--max-tokens', '1000', '--rank', '16'];
  const steps = [
    ['convert', join(base, 'opt'), join(base, 'img', 'opt.fnimg')],
    ['train-predictor', '--model', join(base, 'img', 'opt.fnimg'), ...train, '--out', join(base, 'img', 'opt.fnpred'), text],
    ['export-gguf', '--model', join(base, 'spm'), join(base, 'gguf', 'spm.gguf')],
    ['train-predictor', '--model', join(base, 'spm'), ...train, '--out', join(base, 'gguf', 'spm.fnpred'), text],
    ['export-gguf', '--model', join(base, 'spm'), '--powerinfer', '--predictor', join(base, 'gguf', 'spm.fnpred'), join(base, 'gguf', 'spm-pi.gguf')],
  ];
  for (const args of steps) {
    const r = await cli(args);
    if (r.code !== 0) throw new Error(`fuzz setup failed: flashneuron ${args.join(' ')}: ${r.stderr.trim()}`);
  }
  rmSync(join(base, 'gguf', 'spm.fnpred'));
  return base;
}

// ---- per-format mutations: (bytes, r) → { bytes, desc, legit } ----

/** A region-aware flip or byte run: legit where the region holds payload, strict elsewhere. */
function regionEdit(buf, r, layout, pickRegion) {
  // Half the edits land anywhere (big regions get most), half in a region picked uniformly (small ones get their share).
  const reg = pickRegion ? pickRegion() : r.chance(0.5) ? r.pick(layout.regions) : undefined;
  const m = r.chance(0.7) ? bitFlip(buf, r, reg?.start, reg?.end) : byteRun(buf, r, reg?.start, reg?.end);
  const regions = m.at.map((at) => regionAt(layout, at));
  const legit = regions.every((g) => g?.legit);
  return { bytes: m.bytes, desc: `${m.desc} (${[...new Set(regions.map((g) => g?.name ?? 'between regions'))].join(', ')})`, legit };
}

const pickFrom = (r, layout, filter) => () => {
  const regs = layout.regions.filter(filter);
  return regs.length ? r.pick(regs) : undefined;
};

function image(buf, r) {
  const L = imageLayout(buf);
  const op = weighted(r, [[3, 'flip'], [3, 'flip-header'], [2, 'number'], [4, 'reseal'], [1, 'truncate'], [1, 'extend']]);
  if (op === 'flip') return regionEdit(buf, r, L);
  if (op === 'flip-header') return regionEdit(buf, r, L, pickFrom(r, L, (g) => g.name === 'prefix' || g.name === 'header'));
  if (op === 'number') return { ...numberEdit(buf, r, r.pick(L.fields)), legit: false };
  if (op === 'truncate') return { ...truncate(buf, r, 4096), legit: false };
  if (op === 'extend') return { ...extend(buf, r), legit: false };
  // The header rewritten and its checksum recomputed: the header's own checks must hold. Config
  // values that stay valid make another model; the layout (sections, tensors, ffn) must match the data.
  const m = mutateJson(JSON.stringify(L.header), r, { strict: (p) => !['config', 'tokenizer_config', 'source'].includes(p[0]), prefer: ['config', 'sections', 'tensors', 'ffn'] });
  const text = Buffer.from(m.text);
  const out = Buffer.concat([buf.subarray(0, L.headerOff), text]);
  out.writeUInt32LE(text.length, 12);
  out.writeUInt32LE(crc32(text), 24);
  return { bytes: out, desc: `resealed header: ${m.desc}`, legit: m.legit };
}

function predictor(buf, r) {
  const L = predictorLayout(buf);
  const op = weighted(r, [[3, 'flip'], [2, 'number'], [3, 'reseal'], [1, 'truncate'], [1, 'extend']]);
  if (op === 'flip') return regionEdit(buf, r, L);
  if (op === 'number') return { ...numberEdit(buf, r, r.pick(L.fields)), legit: false };
  if (op === 'truncate') return { ...truncate(buf, r, 256), legit: false };
  if (op === 'extend') return { ...extend(buf, r), legit: false };
  const m = mutateJson(JSON.stringify(L.header), r, { strict: (p) => !p.some((k) => /threshold|recall|ratio|share|report/.test(String(k))) });
  const text = Buffer.from(m.text), start = Math.ceil((16 + text.length) / 64) * 64;
  const out = Buffer.alloc(start + buf.length - L.dataStart);
  buf.copy(out, 0, 0, 16);
  text.copy(out, 16);
  buf.copy(out, start, L.dataStart);
  out.writeUInt32LE(text.length, 8);
  out.writeUInt32LE(crc32(text), 12);
  return { bytes: out, desc: `resealed header: ${m.desc}`, legit: m.legit };
}

function safetensors(buf, r) {
  const L = safetensorsLayout(buf);
  const op = weighted(r, [[3, 'flip'], [2, 'flip-header'], [2, 'number'], [4, 'json'], [1, 'truncate'], [1, 'extend']]);
  if (op === 'flip') return regionEdit(buf, r, L);
  if (op === 'flip-header') return regionEdit(buf, r, L, pickFrom(r, L, (g) => g.name === 'header'));
  if (op === 'number') return { ...numberEdit(buf, r, L.fields[0]), legit: false };
  if (op === 'truncate') return { ...truncate(buf, r, 256), legit: false };
  if (op === 'extend') return { ...extend(buf, r), legit: false };
  const m = mutateJson(JSON.stringify(L.header), r, { strict: (p) => p[0] !== '__metadata__' });
  let text = Buffer.from(m.text);
  if (text.length % 8) text = Buffer.concat([text, Buffer.alloc(8 - (text.length % 8), 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  return { bytes: Buffer.concat([len, text, buf.subarray(8 + L.headerLen)]), desc: `header ${m.desc}`, legit: m.legit };
}

/** A JSON file: parsed edits (legit by value), raw byte edits (a changed name or digit is another input), cuts. */
const json = (strict) => (buf, r) => {
  const op = weighted(r, [[6, 'json'], [2, 'flip'], [1, 'truncate'], [1, 'extend']]);
  if (op === 'flip') { const m = r.chance(0.7) ? bitFlip(buf, r) : byteRun(buf, r); return { ...m, legit: true }; }
  if (op === 'truncate') return { ...truncate(buf, r, 256), legit: false };
  if (op === 'extend') return { ...extend(buf, r), legit: false };
  const m = mutateJson(buf.toString('utf8'), r, { strict });
  return { bytes: Buffer.from(m.text), desc: m.desc, legit: m.legit };
};

function text(buf, r) {
  const lines = buf.toString('utf8').split('\n');
  const op = weighted(r, [[2, 'drop'], [2, 'dup'], [2, 'flip'], [1, 'truncate']]);
  if (op === 'flip') return { ...bitFlip(buf, r), legit: true };
  if (op === 'truncate') return { ...truncate(buf, r, 256), legit: true };
  const i = r.int(lines.length);
  if (op === 'drop') lines.splice(i, 1); else lines.splice(i, 0, lines[i]);
  return { bytes: Buffer.from(lines.join('\n')), desc: `line ${i + 1} ${op === 'drop' ? 'deleted' : 'duplicated'}`, legit: true };
}

function zip(buf, r) {
  const L = zipLayout(buf);
  const op = weighted(r, [[3, 'flip'], [2, 'flip-structure'], [3, 'number'], [1, 'truncate'], [1, 'extend']]);
  if (op === 'flip') return regionEdit(buf, r, L);
  if (op === 'flip-structure') return regionEdit(buf, r, L, pickFrom(r, L, (g) => !g.legit));
  if (op === 'number') return { ...numberEdit(buf, r, r.pick(L.fields)), legit: false };
  if (op === 'truncate') return { ...truncate(buf, r, 4096), legit: false };
  return { ...extend(buf, r), legit: false };
}

function spm(buf, r) {
  const L = spmLayout(buf);
  const op = weighted(r, [[3, 'flip'], [2, 'length'], [2, 'type'], [1, 'truncate'], [1, 'extend']]);
  if (op === 'flip') return regionEdit(buf, r, L);
  if (op === 'truncate') return { ...truncate(buf, r, 64), legit: false };
  if (op === 'extend') return { ...extend(buf, r), legit: false };
  const f = op === 'length' ? r.pick(r.chance(0.5) ? L.lengths : L.pieces) : r.pick(L.types);
  const value = op === 'type' ? r.pick([0, 1, 2, 3, 4, 5, 6, 7, 99, 2 ** 31 - 1]) : r.pick([0, 1, f.value + 1, f.value - 1, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 20]);
  const legit = op === 'type' && value >= 1 && value <= 6;
  return { bytes: varintEdit(buf, f.at, f.len, value), desc: `${op === 'type' ? 'piece type' : f.name ?? 'piece string length'} varint at ${f.at}: ${f.value} -> ${value}`, legit };
}

const STRUCTURAL_KV = /block_count|context_length|embedding_length|head_count|feed_forward_length|vocab_size|alignment|file_type|token_id|rope\.dimension|type$|length$|count$|n_dims|dim \d|offset$|version|n_tensors|n_kv/;

function gguf(buf, r) {
  const L = ggufLayout(buf);
  const op = weighted(r, [[3, 'flip'], [2, 'flip-meta'], [4, 'number'], [1, 'truncate'], [1, 'extend']]);
  if (op === 'flip') return regionEdit(buf, r, L);
  if (op === 'flip-meta') return regionEdit(buf, r, L, () => ({ start: 0, end: L.metaEnd }));
  if (op === 'truncate') return { ...truncate(buf, r, L.metaEnd), legit: false };
  if (op === 'extend') return { ...extend(buf, r), legit: false };
  // Counts, lengths, types, dims and offsets must be checked against the file; a float setting may change.
  const f = r.pick(L.fields);
  const m = numberEdit(buf, r, f);
  return { ...m, legit: !STRUCTURAL_KV.test(f.name) && /^f/.test(f.type) && Number.isFinite(m.value) };
}

// ---- targets ----

/**
 * One target per format the CLI reads: the base it starts from, the files it mutates (with
 * their mutation), and the command variants it runs. `model(caseDir)` is the --model argument.
 */
export const TARGETS = [
  { name: 'image', weight: 18, base: 'img', files: { 'opt.fnimg': image }, model: 'opt.fnimg',
    variants: { dense: [], sparse: ['--mode', 'sparse'], 'naive-async': ['--mode', 'naive', '--io', 'async'], 'sparse-thread': ['--mode', 'sparse', '--io', 'thread'], hybrid: ['--mode', 'hybrid', '--hybrid-share', '0.5'] } },
  { name: 'fnpred', weight: 8, base: 'img', files: { 'opt.fnpred': predictor }, model: 'opt.fnimg',
    variants: { sparse: ['--mode', 'sparse', '--predictor', '{dir}/opt.fnpred'], 'sparse-async': ['--mode', 'sparse', '--io', 'async', '--predictor', '{dir}/opt.fnpred'] } },
  { name: 'safetensors', weight: 10, base: 'phi', files: { 'model-00001-of-00002.safetensors': safetensors, 'model-00002-of-00002.safetensors': safetensors }, model: '.', variants: { dense: [] } },
  { name: 'st-index', weight: 4, base: 'phi', files: { 'model.safetensors.index.json': json((p) => p[0] === 'weight_map') }, model: '.', variants: { dense: [] } },
  { name: 'config.json', weight: 10, base: ['phi', 'spm', 'opt'], files: { 'config.json': json(() => false) }, model: '.', variants: { dense: [] } },
  { name: 'tokenizer.json', weight: 10, base: 'phi', files: { 'tokenizer.json': json(() => false), 'tokenizer_config.json': json(() => false) }, model: '.', variants: { dense: [] } },
  { name: 'vocab/merges', weight: 3, base: 'opt', files: { 'vocab.json': json(() => false), 'merges.txt': text }, model: '.', variants: { dense: [] } },
  { name: 'tokenizer.model', weight: 7, base: 'spm', files: { 'tokenizer.model': spm }, model: '.', variants: { dense: [] } },
  { name: 'pytorch.bin', weight: 8, base: ['spm', 'opt'], files: { 'pytorch_model.bin': zip, 'pytorch_model-00001-of-00002.bin': zip, 'pytorch_model-00002-of-00002.bin': zip, 'pytorch_model.bin.index.json': json((p) => p[0] === 'weight_map') }, model: '.', variants: { dense: [] } },
  { name: 'gguf', weight: 12, base: 'gguf', files: { 'spm.gguf': gguf, 'spm-pi.gguf': gguf }, model: '{file}', variants: { dense: [], sparse: ['--mode', 'sparse'] } },
  { name: 'cli', weight: 10, base: 'img', files: {}, model: 'opt.fnimg', variants: { dense: [], sparse: ['--mode', 'sparse'] } },
];

/**
 * Case `i`: picks a target (among `only`, when given), a base, a file and a command variant,
 * mutates the file (or, for the cli target, the command line). Returns { target, variant, ref, file, desc, legit, build(caseDir) → argv }.
 */
export function makeCase(r, base, only) {
  const t = weighted(r, TARGETS.filter((x) => !only || only.has(x.name)).map((x) => [x.weight, x]));
  const from = Array.isArray(t.base) ? r.pick(t.base) : t.base;
  const present = Object.keys(t.files).filter((f) => exists(join(base, from, f)));
  const file = present.length ? r.pick(present) : undefined;
  // GGUF: the variant follows the file (the PowerInfer export carries the predictor sparse mode needs).
  const variant = t.name === 'gguf' ? (file === 'spm-pi.gguf' ? 'sparse' : 'dense') : r.pick(Object.keys(t.variants));
  const modelRel = t.model === '{file}' ? file : t.model;
  const argvFor = (dir) => [...GENERATE, '--model', join(dir, modelRel), ...t.variants[variant].map((a) => a.replace('{dir}', dir)), PROMPT];
  let m, argv;
  if (t.name === 'cli') {
    const c = cliCase(r, argvFor('{dir}'));
    m = { desc: c.desc, legit: c.legit };
    argv = c.argv;
  } else m = t.files[file](readFileSync(join(base, from, file)), r);
  return {
    target: t.name, variant, file: file ?? '(command line)', desc: m.desc, legit: m.legit,
    ref: `${t.name === 'gguf' ? file : from}/${variant}`,
    /** Lays the case out in `dir` (hard links to the base, the mutated file written anew); its argv. */
    build(dir) {
      linkDir(join(base, from), dir);
      if (m.bytes) { rmSync(join(dir, file), { force: true }); writeFileSync(join(dir, file), m.bytes); }
      return argv ? argv.map((a) => a.replaceAll('{dir}', dir)) : argvFor(dir);
    },
    /** The unmutated case, for the reference run. */
    reference(dir) { linkDir(join(base, from), dir); return argvFor(dir); },
  };
}

function exists(p) { try { statSync(p); return true; } catch { return false; } }

/** Hard links every file of `from` into `to` (cheap; a mutated file is unlinked and written anew). */
function linkDir(from, to) {
  mkdirSync(to, { recursive: true });
  for (const f of readdirSync(from)) {
    try { linkSync(join(from, f), join(to, f)); } catch { copyFileSync(join(from, f), join(to, f)); }
  }
}
