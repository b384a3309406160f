// Measuring the flash device (its cost model: src/io/profile.ts), and keeping the profile in the
// cache directory.
import { closeSync, constants, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ParallelReader } from './reader.js';
import { checkProfile, defaultProfile, fitCostModel, type DeviceProfile, type ProbePoint } from '../io/profile.js';
export { defaultProfile, estimateUs, fitCostModel, mergeGapBytes, plannerCosts } from '../io/profile.js';
export type { DeviceProfile, ProbePoint } from '../io/profile.js';

export interface ProbeOptions {
  /** Probe this existing file instead of a temporary one. */
  file?: string;
  /** Directory for the temporary file (default os.tmpdir()). */
  dir?: string;
  /** Size of the temporary file (default 512 MiB). */
  sizeBytes?: number;
  /** Read sizes (default 4K, 8K, 16K, 32K, 64K, 128K, 256K, 1M); multiples of 4096. */
  chunks?: number[];
  /** Queue depths (default 1, 2, 4, 8, 16, 32, 64). */
  queueDepths?: number[];
  /** Seconds per point (default 0.4), split over the passes. */
  seconds?: number;
  /** Times each point is measured, in separate sweeps; the fastest is kept (default 2). */
  passes?: number;
  /** Use O_DIRECT when the filesystem allows it (default true). */
  direct?: boolean;
  /** Seed of the random offsets (default 1). */
  seed?: number;
  onProgress?: (done: number, total: number, phase: string) => void;
}

const KiB = 1024, MiB = 1024 * KiB;
const ALIGN = 4096;
export const DEFAULT_CHUNKS = [4 * KiB, 8 * KiB, 16 * KiB, 32 * KiB, 64 * KiB, 128 * KiB, 256 * KiB, 1 * MiB];
export const DEFAULT_QUEUE_DEPTHS = [1, 2, 4, 8, 16, 32, 64];

function rng(seed: number): () => number {
  let s = (seed >>> 0) || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

function chunkLabel(b: number): string {
  return b >= MiB && b % MiB === 0 ? `${b / MiB}M` : b >= KiB && b % KiB === 0 ? `${b / KiB}K` : `${b}B`;
}

/** Creates `bytes` of non-zero data at `path`, written through to the device (O_DIRECT when
 *  allowed, so it does not fill the page cache either; fsync at the end). */
function createProbeFile(path: string, bytes: number, direct: boolean, onChunk: (done: number) => void): void {
  const block = 8 * MiB;
  const mem = new WebAssembly.Memory({ initial: block / 65536 }); // page-aligned source for O_DIRECT
  const buf = new Uint8Array(mem.buffer);
  const rand = rng(0x9e3779b9);
  const u32 = new Uint32Array(mem.buffer);
  for (let i = 0; i < u32.length; i++) u32[i] = (rand() * 4294967296) | 0x01010101;
  const O_DIRECT = (constants as Record<string, number | undefined>).O_DIRECT;
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC;
  let fd = -1;
  if (direct && O_DIRECT) {
    try { fd = openSync(path, flags | O_DIRECT, 0o600); } catch { fd = -1; }
  }
  if (fd < 0) fd = openSync(path, flags, 0o600);
  try {
    for (let done = 0; done < bytes;) {
      const n = Math.min(block, bytes - done);
      u32[0] = done / ALIGN; // every block differs
      let w = 0;
      while (w < n) {
        try {
          w += writeSync(fd, buf, w, n - w, done + w);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EINVAL' || done + w !== 0) throw e;
          closeSync(fd); // O_DIRECT accepted at open, refused at write: go buffered
          fd = openSync(path, flags, 0o600);
        }
      }
      done += n;
      onChunk(done);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Measures one (chunk, qd) point: a calibration batch, then one batch sized to `seconds`. */
async function measurePoint(reader: ParallelReader, mem: WebAssembly.Memory, chunk: number, qd: number, seconds: number, rand: () => number): Promise<ProbePoint> {
  const blocks = Math.floor((reader.size - chunk) / ALIGN) + 1;
  const fill = (plan: Float64Array, n: number) => {
    for (let i = 0; i < n; i++) {
      plan[i * 3] = Math.floor(rand() * blocks) * ALIGN;
      plan[i * 3 + 1] = chunk;
      plan[i * 3 + 2] = (i % qd) * chunk;
    }
  };
  const calib = Math.max(2 * qd, 8);
  let plan = new Float64Array(calib * 3);
  fill(plan, calib);
  let t0 = performance.now();
  await reader.read(mem, plan, calib);
  const calibUs = (performance.now() - t0) * 1000;
  const perOpUs = calibUs / calib;
  const n = Math.max(8 * qd, Math.min(1 << 20, Math.ceil((seconds * 1e6) / Math.max(perOpUs, 0.1))));
  plan = new Float64Array(n * 3);
  fill(plan, n);
  const lat = new Float64Array(n);
  t0 = performance.now();
  await reader.read(mem, plan, n, lat);
  const us = (performance.now() - t0) * 1000;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += lat[i];
  lat.sort();
  const iops = (n / us) * 1e6;
  return {
    chunk, qd,
    iops: Math.round(iops),
    mb_per_s: +((iops * chunk) / 1e6).toFixed(1),
    lat_us_mean: +(sum / n).toFixed(1),
    lat_us_p50: +percentile(lat, 0.5).toFixed(1),
    lat_us_p99: +percentile(lat, 0.99).toFixed(1),
  };
}

/**
 * Measures random-read throughput by chunk size and queue depth. Without `file`, creates a
 * temporary file (default 512 MiB of non-zero data written through to the device) and deletes
 * it afterwards. Reads random 4096-aligned offsets with O_DIRECT when the filesystem allows it,
 * so the page cache does not hide the device (`direct: false` and a note when it fell back).
 * Queue depths above UV_THREADPOOL_SIZE (default 4) queue inside libuv: set it before starting.
 */
export async function probeDevice(opts: ProbeOptions = {}): Promise<DeviceProfile> {
  const chunks = opts.chunks ?? DEFAULT_CHUNKS;
  const qds = opts.queueDepths ?? DEFAULT_QUEUE_DEPTHS;
  const seconds = opts.seconds ?? 0.4;
  const wantDirect = opts.direct ?? true;
  for (const c of chunks) if (!Number.isInteger(c) || c <= 0 || c % ALIGN !== 0) throw new RangeError(`probeDevice: chunk ${c} is not a positive multiple of ${ALIGN}`);
  for (const q of qds) if (!Number.isInteger(q) || q < 1 || q > 4096) throw new RangeError(`probeDevice: queue depth ${q} is not an integer in 1..4096`);
  if (!(seconds > 0)) throw new RangeError(`probeDevice: seconds must be positive, got ${seconds}`);
  const maxChunk = Math.max(...chunks), maxQd = Math.max(...qds);
  const passes = opts.passes ?? 2;
  if (!Number.isInteger(passes) || passes < 1) throw new RangeError(`probeDevice: passes must be a positive integer, got ${passes}`);
  const total = chunks.length * qds.length * passes;
  const progress = opts.onProgress ?? (() => {});

  let file = opts.file, temp = false;
  if (!file) {
    const bytes = Math.floor((opts.sizeBytes ?? 512 * MiB) / ALIGN) * ALIGN;
    if (bytes < maxChunk) throw new RangeError(`probeDevice: sizeBytes ${bytes} is smaller than the largest chunk ${maxChunk}`);
    file = join(opts.dir ?? tmpdir(), `flashneuron-probe-${process.pid}-${Date.now()}.bin`);
    temp = true;
    try {
      createProbeFile(file, bytes, wantDirect, (done) => progress(0, total, `writing ${file} (${Math.round(done / MiB)}/${Math.round(bytes / MiB)} MiB)`));
    } catch (e) {
      try { unlinkSync(file); } catch { /* not created */ }
      throw e;
    }
  }
  try {
    const size = statSync(file).size;
    if (size < maxChunk) throw new RangeError(`probeDevice: ${file} (${size} bytes) is smaller than the largest chunk ${maxChunk}`);
    const pages = Math.ceil((maxQd * maxChunk) / 65536);
    const mem = new WebAssembly.Memory({ initial: pages });
    const rand = rng(opts.seed ?? 1);
    // Each point is measured `passes` times, spread over the whole run, and the faster pass
    // kept: a burst of other work on the host then spoils one pass, not the point.
    const best = new Map<string, ProbePoint>();
    let direct = false, done = 0;
    for (let pass = 0; pass < passes; pass++) {
      for (const qd of qds) {
        const reader = new ParallelReader(file, { direct: wantDirect, queueDepth: qd });
        direct = reader.direct;
        try {
          for (const chunk of chunks) {
            progress(done, total, `${chunkLabel(chunk)} QD${qd}${passes > 1 ? ` (pass ${pass + 1}/${passes})` : ''}`);
            const pt = await measurePoint(reader, mem, chunk, qd, seconds / passes, rand);
            const key = `${chunk}@${qd}`, prev = best.get(key);
            if (!prev || pt.iops > prev.iops) best.set(key, pt);
            done++;
          }
        } finally {
          reader.close();
        }
      }
    }
    const points = [...best.values()];
    progress(total, total, 'done');
    points.sort((a, b) => a.chunk - b.chunk || a.qd - b.qd);
    const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
    const notes: string[] = [];
    if (!direct) notes.push('O_DIRECT refused: reads went through the page cache, so the figures describe memory rather than the device');
    if (maxQd > pool) notes.push(`queue depths above UV_THREADPOOL_SIZE=${pool} wait in libuv's queue`);
    return {
      version: 1,
      file: temp ? '(temporary file)' : file,
      file_bytes: size,
      direct,
      date: new Date().toISOString(),
      points,
      ...fitCostModel(points),
      threadpool: pool,
      ...(notes.length ? { note: notes.join('; ') } : {}),
    };
  } finally {
    if (temp) try { unlinkSync(file); } catch { /* already gone */ }
  }
}

/** Where the device profile is kept: $FLASHNEURON_CACHE, else $XDG_CACHE_HOME/flashneuron, else
 *  ~/.cache/flashneuron; file device.json. */
export function profilePath(): string {
  const dir = process.env.FLASHNEURON_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'flashneuron');
  return join(dir, 'device.json');
}

export function saveProfile(p: DeviceProfile, path: string = profilePath()): void {
  checkProfile(p, path);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(p, null, 2) + '\n');
}

/** Reads a saved profile; defaultProfile() when there is none; a clear Error when it is malformed. */
export function loadProfile(path: string = profilePath()): DeviceProfile {
  if (!existsSync(path)) return defaultProfile();
  let p: unknown;
  try {
    p = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: malformed device profile (${(e as Error).message}); delete it or run the probe again`);
  }
  checkProfile(p, path);
  return p as DeviceProfile;
}

