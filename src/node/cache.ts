// Where models come from on disk and where their converted images are kept.
//
// - `org/name` that is not a path resolves to the local Hugging Face cache, as huggingface_hub
//   lays it out: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub, then
//   models--org--name/snapshots/<revision>/ with refs/main naming the revision.
// - A folder or GGUF file is converted once into the conversion cache ($FLASHNEURON_CACHE, else
//   $XDG_CACHE_HOME/flashneuron, else ~/.cache/flashneuron): one image per source (and layout),
//   replaced when the source's files change, with a small JSON record beside it saying what it
//   was made from. `flashneuron cache ls|rm|clear` manages it.
// - Predictors train-predictor makes go there too (trainedPredictorPath), never over the one
//   shipped beside a model.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { crc32 } from '../format/crc32.js';
import { VERSION } from '../format/image.js';
import { WRITER_REVISION } from '../format/image-writer.js';

export function cacheDir(opts: { cacheDir?: string } = {}): string {
  return opts.cacheDir ?? process.env.FLASHNEURON_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'flashneuron');
}

/** The Hugging Face hub cache directory huggingface_hub writes to. */
export function hubDir(): string {
  return process.env.HF_HUB_CACHE ?? join(process.env.HF_HOME ?? join(homedir(), '.cache', 'huggingface'), 'hub');
}

const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/**
 * The path of a model given as a path, or as a Hugging Face repository id (`org/name`) found in
 * the local hub cache. Throws a one-line error saying how to get it when it is neither.
 */
export function resolveModelPath(spec: string): string {
  if (existsSync(spec)) return resolve(spec);
  if (!REPO_ID.test(spec)) throw new Error(`model not found: ${spec}`);
  const repo = join(hubDir(), `models--${spec.replace('/', '--')}`);
  const snapshots = join(repo, 'snapshots');
  if (existsSync(snapshots)) {
    const ref = join(repo, 'refs', 'main');
    const rev = existsSync(ref) ? readFileSync(ref, 'utf8').trim() : undefined;
    if (rev && existsSync(join(snapshots, rev))) return join(snapshots, rev);
    // No refs/main (a download by revision): the newest snapshot.
    const revs = readdirSync(snapshots).map((r) => ({ r, t: statSync(join(snapshots, r)).mtimeMs })).sort((a, b) => b.t - a.t);
    if (revs.length) return join(snapshots, revs[0].r);
  }
  throw new Error(`model not found: ${spec} is not a path, and the Hugging Face cache (${hubDir()}) does not hold it; ` +
    `download it with "huggingface-cli download ${spec}" (or "hf download ${spec}"), or give the folder's path`);
}

/** What a cached image was made from (the JSON record beside it). */
export interface CacheRecord {
  source: string;
  kind: 'hf' | 'gguf';
  layout: 'bundled' | 'split';
  /** The source files' names, sizes and dates when converted: a change means converting again. */
  stamp: string;
  version: number;
  /** The writer's revision (image-writer.ts); absent: 1. An older one is converted again. */
  writer?: number;
  created: string;
}

/**
 * The cached image of `source`, converting it (`convert(out)`, which writes `out` atomically)
 * when there is none or the source changed since. One image per source and layout.
 */
export async function cachedConversion(source: string, kind: CacheRecord['kind'], layout: CacheRecord['layout'], stamp: string,
  opts: { cacheDir?: string }, convert: (out: string) => Promise<void> | void): Promise<string> {
  const dir = cacheDir(opts), full = resolve(source);
  const key = crc32(new TextEncoder().encode(`${full}|${layout}`)).toString(16).padStart(8, '0');
  const name = `${basename(full).replace(/\.gguf$/i, '')}-${key}${layout === 'split' ? '-split' : ''}.fnimg`;
  const out = join(dir, name), meta = `${out}.json`;
  const record = readRecord(meta);
  removeStaleTemps(dir, { cache: true });
  if (existsSync(out) && record?.stamp === stamp && record.version === VERSION && (record.writer ?? 1) >= WRITER_REVISION) return out;
  mkdirSync(dir, { recursive: true });
  removeImage(out);
  await convert(out);
  const rec: CacheRecord = { source: full, kind, layout, stamp, version: VERSION, writer: WRITER_REVISION, created: new Date().toISOString() };
  writeFileSync(meta, JSON.stringify(rec, null, 2) + '\n');
  return out;
}

/** A stamp of a folder's model files (names, sizes, dates). */
export function folderStamp(dir: string): string {
  return readdirSync(dir).sort()
    .filter((f) => /\.(json|safetensors|bin|model|txt)$/.test(f))
    .map((f) => { const s = statSync(join(dir, f)); return `${f}:${s.size}:${wholeMs(s.mtimeMs)}`; }).join('|');
}

export function fileStamp(path: string): string {
  const s = statSync(path);
  return `${s.size}:${wholeMs(s.mtimeMs)}`;
}

/** Whole milliseconds: Deno reports file dates without Node's fraction, and one cache serves both. */
const wholeMs = (t: number) => Math.floor(t);

export interface CacheEntry { image: string; bytes: number; record?: CacheRecord }

/** The images in the conversion cache, largest first, with what each was made from. */
export function listCache(opts: { cacheDir?: string } = {}): CacheEntry[] {
  const dir = cacheDir(opts);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.fnimg')).map((f) => {
    const image = join(dir, f);
    const side = image.replace(/\.fnimg$/, '.fnpred');
    const bytes = statSync(image).size + (existsSync(side) ? statSync(side).size : 0);
    return { image, bytes, record: readRecord(`${image}.json`) };
  }).sort((a, b) => b.bytes - a.bytes);
}

/** Removes the cached images of a source path, or a cached image by file name; returns what went. */
export function removeFromCache(what: string, opts: { cacheDir?: string } = {}): string[] {
  const full = existsSync(what) ? resolve(what) : undefined;
  const gone = listCache(opts).filter((e) => basename(e.image) === what || basename(e.image) === `${what}.fnimg` || (full !== undefined && e.record?.source === full));
  for (const e of gone) removeImage(e.image);
  // What train-predictor and calibrate wrote for it.
  const trained = full === undefined ? [] : [trainedPredictorPath(full, opts), trainedPredictorPath(full, opts).replace(TRAINED, CALIBRATED)].filter((p) => existsSync(p));
  for (const t of trained) rmSync(t, { force: true });
  return [...gone.map((e) => e.image), ...trained];
}

/** Removes every cached image and trained predictor (the device profile, device.json, stays). */
export function clearCache(opts: { cacheDir?: string } = {}): string[] {
  const all = listCache(opts);
  for (const e of all) removeImage(e.image);
  const trained = listTrained(opts).map((t) => t.path);
  for (const t of trained) rmSync(t, { force: true });
  removeStaleTemps(cacheDir(opts), { cache: true });
  return [...all.map((e) => e.image), ...trained];
}

/** An image with its predictor sidecar, its trained predictor and its record. */
function removeImage(image: string): void {
  for (const p of [image, `${image}.json`, image.replace(/\.fnimg$/, '.fnpred'), trainedPredictorPath(image, { cacheDir: dirname(image) })]) rmSync(p, { force: true });
}

const TRAINED = '.trained.fnpred';
const CALIBRATED = '.fnthr';

/** The predictors train-predictor and the thresholds calibrate wrote into the cache. */
export function listTrained(opts: { cacheDir?: string } = {}): { path: string; bytes: number }[] {
  const dir = cacheDir(opts);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith(TRAINED) || f.endsWith(CALIBRATED)).map((f) => ({ path: join(dir, f), bytes: statSync(join(dir, f)).size }));
}

/**
 * Where train-predictor puts the predictor it trains for `modelPath` (a Hugging Face folder or
 * an image file: what loading asks predictorPath about) unless given --out: in the conversion
 * cache, named after the model and keyed by its full path, so the predictor shipped beside the
 * model is never replaced.
 */
export function trainedPredictorPath(modelPath: string, opts: { cacheDir?: string } = {}): string {
  const full = resolve(modelPath);
  const key = crc32(new TextEncoder().encode(full)).toString(16).padStart(8, '0');
  return join(cacheDir(opts), `${basename(full).replace(/\.(fnimg|gguf)$/i, '')}-${key}${TRAINED}`);
}

/** Files this package writes; in folders that are not the cache only their temporaries are touched. */
const OURS = /\.(fnimg|fnpred|gguf|json)$/i;

/**
 * Removes the temporaries (NAME.tmp-PID) that writers killed mid-way left in `dir` — a write
 * goes to such a file and is renamed when complete — whose process is gone. In the cache every
 * one counts (opts.cache, or the default cache folder); elsewhere only those of files this package writes (or `name`, the one about to be
 * written). A live writer's file stays (signal 0 reaches its process, or is refused: EPERM).
 */
export function removeStaleTemps(dir: string, opts: { cache?: boolean; name?: string } = {}): string[] {
  let names: string[];
  try { names = readdirSync(dir); } catch { return []; }
  const all = opts.cache ?? resolve(dir) === resolve(cacheDir());
  const gone: string[] = [];
  for (const f of names) {
    const m = /^(.*)\.tmp-(\d+)$/.exec(f);
    if (!m || !(all || OURS.test(m[1]) || m[1] === opts.name) || alive(Number(m[2]))) continue;
    try { rmSync(join(dir, f), { force: true }); gone.push(join(dir, f)); } catch { /* not ours to remove after all (permissions) */ }
  }
  return gone;
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // Only ESRCH says there is no such process; anything else (EPERM, a runtime without signals) counts as alive.
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function readRecord(path: string): CacheRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8'));
    return r && typeof r === 'object' && typeof r.stamp === 'string' ? r as CacheRecord : undefined;
  } catch {
    return undefined;
  }
}
