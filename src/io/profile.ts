// The flash device's cost model: random-read throughput by chunk size and queue depth (the
// "LLM in a flash" paper's Figure 2b, measured by src/node/probe.ts) and a three-parameter fit
// that the read planner uses (how many ops, how far to read through gaps, how long it takes).

const KiB = 1024, MiB = 1024 * KiB;

export interface ProbePoint {
  /** Bytes per read. */
  chunk: number;
  /** Reads in flight. */
  qd: number;
  iops: number;
  mb_per_s: number;
  lat_us_mean: number;
  lat_us_p50: number;
  lat_us_p99: number;
}

export interface DeviceProfile {
  version: 1;
  file: string;
  file_bytes: number;
  /** False when the reads went through the page cache (O_DIRECT refused): then the figures
   *  describe memory, not the device. */
  direct: boolean;
  machine?: object;
  date: string;
  points: ProbePoint[];
  /** Fitted cost model: one read of b bytes at queue depth qd costs about
   *  (latency_us + b / bytes_per_us) / min(qd, parallelism) per op in steady state. */
  latency_us: number;
  bytes_per_us: number;
  parallelism: number;
  /** libuv pool size during the probe (queue depths above it cannot run in parallel). */
  threadpool?: number;
  note?: string;
}

/**
 * Fits the cost model to measured points: per-op cost at depth qd is
 * (latency_us + chunk / bytes_per_us) / min(qd, parallelism). For each candidate parallelism P
 * (log grid), L and 1/B come from least squares in relative error; the P with the smallest
 * squared log error wins.
 */
export function fitCostModel(points: ProbePoint[]): { latency_us: number; bytes_per_us: number; parallelism: number } {
  const pts = points.filter((p) => p.iops > 0 && p.chunk > 0 && p.qd >= 1);
  if (pts.length === 0) throw new Error('fitCostModel: no usable points');
  const maxQd = Math.max(...pts.map((p) => p.qd));
  let best = { latency_us: 1e6 / pts[0].iops, bytes_per_us: 1e3, parallelism: 1 }, bestErr = Infinity;
  const steps = 240;
  for (let s = 0; s <= steps; s++) {
    const P = maxQd <= 1 ? 1 : Math.pow(maxQd, s / steps);
    // rows: [1/c, b/c] · [L, k] ≈ 1, c = observed per-op cost × min(qd, P)
    let s11 = 0, s12 = 0, s22 = 0, t1 = 0, t2 = 0;
    for (const p of pts) {
      const c = (Math.min(p.qd, P) * 1e6) / p.iops;
      const x1 = 1 / c, x2 = p.chunk / c;
      s11 += x1 * x1; s12 += x1 * x2; s22 += x2 * x2; t1 += x1; t2 += x2;
    }
    const det = s11 * s22 - s12 * s12;
    let L = det > 0 ? (t1 * s22 - t2 * s12) / det : t1 / s11;
    let k = det > 0 ? (s11 * t2 - s12 * t1) / det : 0;
    if (L <= 0) { L = 1e-3; k = (t2 - L * s12) / s22; }
    if (k <= 0) { k = 1e-9; L = (t1 - k * s12) / s11; }
    if (!(L > 0)) L = 1e-3;
    let err = 0;
    for (const p of pts) {
      const model = (L + p.chunk * k) / Math.min(p.qd, P);
      const e = Math.log(model / (1e6 / p.iops));
      err += e * e;
    }
    if (err < bestErr) { bestErr = err; best = { latency_us: L, bytes_per_us: 1 / k, parallelism: P }; }
  }
  return {
    latency_us: +best.latency_us.toFixed(2),
    bytes_per_us: +best.bytes_per_us.toFixed(1),
    parallelism: +best.parallelism.toFixed(2),
  };
}

/** Figures measured on this project's reference machine class (../shared/README.md, "Machine
 *  facts": cold random O_DIRECT reads from Node with UV_THREADPOOL_SIZE=64). */
const REFERENCE_POINTS: Array<[chunk: number, qd: number, iops: number]> = [
  [4 * KiB, 1, 7600], [4 * KiB, 8, 31000], [4 * KiB, 32, 45000], [4 * KiB, 64, 45000],
  [16 * KiB, 64, 37000],
  [32 * KiB, 1, 6250], [32 * KiB, 32, 26500],
  [1 * MiB, 1, 1000], [1 * MiB, 32, 1430],
];

/** Built-in fallback profile: the reference machine class's measured figures. */
export function defaultProfile(): DeviceProfile {
  const points: ProbePoint[] = REFERENCE_POINTS.map(([chunk, qd, iops]) => {
    const lat = (qd * 1e6) / iops;
    return { chunk, qd, iops, mb_per_s: +((iops * chunk) / 1e6).toFixed(1), lat_us_mean: +lat.toFixed(1), lat_us_p50: +lat.toFixed(1), lat_us_p99: +(lat * 2).toFixed(1) };
  });
  return {
    version: 1,
    file: '(built-in default)',
    file_bytes: 0,
    direct: true,
    date: '2025-01-01T00:00:00.000Z',
    points,
    ...fitCostModel(points),
    threadpool: 64,
    note: 'built-in figures of the reference machine class (NVMe-backed VM); run `npm run bench:probe` or probeDevice() to measure this device',
  };
}

export function checkProfile(p: unknown, path: string): asserts p is DeviceProfile {
  const bad = (why: string) => new Error(`${path}: malformed device profile: ${why}; delete it or run the probe again`);
  if (!p || typeof p !== 'object' || Array.isArray(p)) throw bad('not a JSON object');
  const o = p as Record<string, unknown>;
  if (o.version !== 1) throw bad(`unsupported version ${JSON.stringify(o.version)} (expected 1)`);
  for (const k of ['latency_us', 'bytes_per_us'] as const) {
    if (typeof o[k] !== 'number' || !Number.isFinite(o[k]) || (o[k] as number) <= 0) throw bad(`${k} must be a positive number, got ${JSON.stringify(o[k])}`);
  }
  if (typeof o.parallelism !== 'number' || !((o.parallelism as number) >= 1) || !Number.isFinite(o.parallelism)) throw bad(`parallelism must be a number >= 1, got ${JSON.stringify(o.parallelism)}`);
  if (!Array.isArray(o.points)) throw bad('points must be an array');
  o.points.forEach((pt: unknown, i: number) => {
    const q = pt as Record<string, unknown>;
    if (!q || typeof q !== 'object') throw bad(`points[${i}] is not an object`);
    for (const k of ['chunk', 'qd', 'iops', 'mb_per_s', 'lat_us_mean', 'lat_us_p50', 'lat_us_p99']) {
      if (typeof q[k] !== 'number' || !Number.isFinite(q[k]) || (q[k] as number) < 0) throw bad(`points[${i}].${k} must be a non-negative number`);
    }
  });
}

/**
 * Estimated microseconds to execute `reads` ops totalling `bytes` at queue depth `qd`: the
 * steady-state cost (reads·latency + bytes/bandwidth) / min(qd, parallelism), plus the part of
 * one op's latency that cannot overlap (filling the pipeline). Monotone in reads and bytes.
 */
export function estimateUs(p: DeviceProfile, reads: number, bytes: number, qd: number): number {
  if (!(reads > 0)) return 0;
  const c = Math.max(1, Math.min(Math.max(1, qd), p.parallelism));
  return (reads * p.latency_us + Math.max(0, bytes) / p.bytes_per_us) / c + (1 - 1 / c) * p.latency_us;
}

/**
 * Per-op and per-byte cost (µs) of reads at queue depth qd, fitted to the profile's measured
 * points at the nearest measured depth (per-op cost ≈ opUs + bytes · byteUs, in relative least
 * squares) when it has two or more chunk sizes there; undefined otherwise. This is what the
 * device does at that depth: the global model's bandwidth scales with parallelism, while a real
 * device's saturates (this machine: ≈ 2 GB/s at depth 8 and above), so at depth the global model
 * prices bytes at about half their cost and would read through gaps it should skip.
 */
function depthFit(p: DeviceProfile, qd: number): { opUs: number; byteUs: number } | undefined {
  const pts = (p.points ?? []).filter((x) => x.iops > 0);
  if (pts.length === 0) return undefined;
  const lq = Math.log(Math.max(1, qd));
  let nearest = pts[0].qd;
  for (const x of pts) if (Math.abs(Math.log(x.qd) - lq) < Math.abs(Math.log(nearest) - lq)) nearest = x.qd;
  const at = pts.filter((x) => x.qd === nearest);
  if (new Set(at.map((x) => x.chunk)).size < 2) return undefined;
  // relative least squares: (a + k·b) / cost ≈ 1
  let s11 = 0, s12 = 0, s22 = 0, t1 = 0, t2 = 0;
  for (const x of at) {
    const cost = 1e6 / x.iops, x1 = 1 / cost, x2 = x.chunk / cost;
    s11 += x1 * x1; s12 += x1 * x2; s22 += x2 * x2; t1 += x1; t2 += x2;
  }
  const det = s11 * s22 - s12 * s12;
  if (!(det > 0)) return undefined;
  const a = (t1 * s22 - t2 * s12) / det, k = (s11 * t2 - s12 * t1) / det;
  return a > 0 && k > 0 ? { opUs: a, byteUs: k } : undefined;
}

/**
 * Largest gap (bytes) between two wanted extents worth reading through in one op rather than
 * issuing a second op at queue depth qd: per-op cost over per-byte cost, from the measured
 * points at that depth (depthFit; at high depth ops are cheap relative to bytes, so the gap
 * shrinks), else the fitted model's latency_us · bytes_per_us. Always > 0.
 */
export function mergeGapBytes(p: DeviceProfile, qd: number): number {
  return gapOf(p, depthFit(p, qd));
}

/** The merge gap of a depth's fit, or without one the fitted model's. */
function gapOf(p: DeviceProfile, fit: { opUs: number; byteUs: number } | undefined): number {
  return Math.max(1, Math.round(fit ? fit.opUs / fit.byteUs : p.latency_us * p.bytes_per_us));
}

/** Planner costs for reads issued at queue depth `qd`: the marginal µs of one more read and of
 *  one more byte (the measured points at that depth, else the fitted model), and the merge gap. */
export function plannerCosts(p: DeviceProfile, qd: number): { opUs: number; byteUs: number; gapBytes: number } {
  const fit = depthFit(p, qd), gapBytes = gapOf(p, fit);
  if (fit) return { ...fit, gapBytes };
  const base = estimateUs(p, 1, 0, qd);
  return {
    opUs: (estimateUs(p, 1001, 0, qd) - base) / 1000,
    byteUs: (estimateUs(p, 1, 1 << 20, qd) - base) / (1 << 20),
    gapBytes,
  };
}
