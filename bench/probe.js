// Device profile (the "LLM in a flash" paper's Figure 2b): random O_DIRECT read throughput by
// chunk size and queue depth, and the cost model fitted to it.
// Usage: node bench/probe.js [--file F] [--seconds S per point] [--dir D] [--size-mb N] [--save]
// Writes bench/results/probe.json and bench/results/probe.svg (--save also stores the profile
// where loadProfile() finds it).
import { spawnSync } from 'node:child_process';

// libuv sizes its thread pool at first use, and Node 20's ES-module loader has already used it
// before this line runs, so setting the variable here would be too late: re-run this script
// with it in the environment instead.
if (!process.env.UV_THREADPOOL_SIZE) {
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, UV_THREADPOOL_SIZE: '64' } });
  process.exit(r.status ?? 1);
}

const { mkdirSync, readFileSync, writeFileSync } = await import('node:fs');
const os = await import('node:os');
const { probeDevice, saveProfile, profilePath, estimateUs, mergeGapBytes } = await import('../dist/src/node/probe.js');
const { machine } = await import('./machine.js');

const args = process.argv.slice(2);
const arg = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const file = arg('--file');
const seconds = arg('--seconds') ? Number(arg('--seconds')) : undefined;
const sizeMb = arg('--size-mb') ? Number(arg('--size-mb')) : undefined;
const OUT_DIR = new URL('./results/', import.meta.url);
const label = (b) => (b >= 2 ** 20 ? `${b / 2 ** 20}M` : `${b / 1024}K`);

// --replot: redraw probe.svg from the existing probe.json without probing again.
if (args.includes('--replot')) {
  const saved = JSON.parse(readFileSync(new URL('probe.json', OUT_DIR), 'utf8'));
  writeFileSync(new URL('probe.svg', OUT_DIR), chart(saved));
  process.exit(0);
}

// Host CPU use during the run, ours and everyone else's: other work on a small host slows the
// high-queue-depth points, whose rate is bound by the CPU time of the libuv pool.
const cpuTimes = () => os.cpus().reduce((a, c) => { const t = c.times; a.busy += t.user + t.nice + t.sys + t.irq; a.all += t.user + t.nice + t.sys + t.irq + t.idle; return a; }, { busy: 0, all: 0 });
const cpu0 = cpuTimes(), own0 = process.cpuUsage();
const t0 = Date.now();
let last = '';
const profile = await probeDevice({
  file, seconds, dir: arg('--dir'), sizeBytes: sizeMb ? sizeMb * 2 ** 20 : undefined,
  onProgress: (done, total, phase) => {
    const line = `[${done}/${total}] ${phase}`;
    if (process.stderr.isTTY) process.stderr.write(`\r${line.padEnd(last.length)}`);
    else if (!phase.startsWith('writing') || !last.includes('writing')) process.stderr.write(line + '\n');
    last = line;
  },
});
if (process.stderr.isTTY) process.stderr.write('\n');
const elapsed = (Date.now() - t0) / 1000;
const cpu1 = cpuTimes(), own = process.cpuUsage(own0);
const hostBusyPct = (100 * (cpu1.busy - cpu0.busy)) / (cpu1.all - cpu0.all);
const ownPct = (100 * (own.user + own.system) / 1000) / ((cpu1.all - cpu0.all) || 1);

// How well the fitted model reproduces each point: measured per-op cost over the model's.
const fit = profile.points.map((p) => {
  const perOp = (profile.latency_us + p.chunk / profile.bytes_per_us) / Math.min(p.qd, profile.parallelism);
  return +((1e6 / p.iops) / perOp).toFixed(3);
});
const geo = Math.exp(fit.reduce((s, r) => s + Math.abs(Math.log(r)), 0) / fit.length);

const report = {
  ...profile,
  machine: machine(),
  date: profile.date,
  threadpool: Number(process.env.UV_THREADPOOL_SIZE),
  seconds_total: +elapsed.toFixed(1),
  host_cpu_busy_pct: +hostBusyPct.toFixed(1),
  own_cpu_pct: +ownPct.toFixed(1),
  model_check: {
    mean_abs_error_factor: +geo.toFixed(3),
    measured_cost_over_model: Object.fromEntries(profile.points.map((p, i) => [`${p.chunk}@${p.qd}`, fit[i]])),
  },
  merge_gap_bytes: Object.fromEntries([...new Set(profile.points.map((p) => p.qd))].map((q) => [q, mergeGapBytes(profile, q)])),
  example_estimates_us: {
    '1000 x 4K @ QD32': +estimateUs(profile, 1000, 1000 * 4096, 32).toFixed(0),
    '100 x 64K @ QD32': +estimateUs(profile, 100, 100 * 65536, 32).toFixed(0),
    '1 x 1M @ QD1': +estimateUs(profile, 1, 2 ** 20, 1).toFixed(0),
  },
};
const qds = [...new Set(profile.points.map((p) => p.qd))];
const chunks = [...new Set(profile.points.map((p) => p.chunk))];
mkdirSync(OUT_DIR, { recursive: true });
writeFileSync(new URL('probe.json', OUT_DIR), JSON.stringify(report, null, 2) + '\n');
writeFileSync(new URL('probe.svg', OUT_DIR), chart(profile));
if (args.includes('--save')) { saveProfile(profile); console.log(`saved ${profilePath()}`); }

console.log(`${profile.direct ? 'O_DIRECT' : 'buffered (page cache!)'} random reads, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE}, ${elapsed.toFixed(0)} s`);
console.log('MB/s (IOPS)'.padEnd(8) + qds.map((q) => `QD${q}`.padStart(16)).join(''));
for (const c of chunks) {
  console.log(label(c).padEnd(8) + qds.map((q) => {
    const p = profile.points.find((x) => x.chunk === c && x.qd === q);
    return `${p.mb_per_s.toFixed(0)} (${(p.iops / 1000).toFixed(1)}k)`.padStart(16);
  }).join(''));
}
console.log(`host CPU busy ${hostBusyPct.toFixed(0)}% (this process ${ownPct.toFixed(0)}%)`);
console.log(`model: latency ${profile.latency_us} µs, ${profile.bytes_per_us} B/µs, parallelism ${profile.parallelism} (mean error ×${geo.toFixed(2)})`);
if (profile.note) console.log(`note: ${profile.note}`);

/** Two panels: MB/s and IOPS against chunk size (log2 axis), one line per queue depth; the
 *  fitted model drawn dashed in the same colour on the MB/s panel. */
function chart(p) {
  const qds = [...new Set(p.points.map((e) => e.qd))].sort((a, b) => a - b);
  const chunks = [...new Set(p.points.map((e) => e.chunk))].sort((a, b) => a - b);
  const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f'];
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  const niceStep = (max, ticks) => { const raw = max / ticks, mag = 10 ** Math.floor(Math.log10(raw)), f = raw / mag; return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag; };
  const W = 980, H = 430, top = 70, bottom = 48, panelW = 400, gap = 90, left0 = 66;
  const ph = H - top - bottom;
  const xs = chunks.map(Math.log2), xmin = Math.min(...xs), xmax = Math.max(...xs);
  const m = p.machine ?? machine();
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${left0}" y="22" font-size="15" font-weight="bold">Random reads by chunk size and queue depth (${p.direct ? 'O_DIRECT' : 'buffered'}, Node fs.read, ${p.threadpool ?? '?'} pool threads)</text>`);
  out.push(`<text x="${left0}" y="40" fill="#555">${esc(`${m.cpu}, ${m.cores} cores · ${(p.file_bytes / 2 ** 20).toFixed(0)} MiB file · dashed: model (${p.latency_us} µs + b / ${p.bytes_per_us} B/µs) / min(qd, ${p.parallelism})`)}</text>`);
  const panel = (pi, title, value, model) => {
    const x0 = left0 + pi * (panelW + gap);
    const x = (c) => x0 + ((Math.log2(c) - xmin) / (xmax - xmin || 1)) * panelW;
    const vals = p.points.map(value);
    const step = niceStep(Math.max(...vals) * 1.08, 5), ymax = Math.ceil((Math.max(...vals) * 1.08) / step) * step;
    const y = (v) => top + ph - (Math.min(v, ymax) / ymax) * ph;
    const dec = Math.max(0, -Math.floor(Math.log10(step)));
    for (let i = 0; i * step <= ymax + step / 2; i++) {
      const yy = y(i * step).toFixed(1);
      out.push(`<line x1="${x0}" x2="${x0 + panelW}" y1="${yy}" y2="${yy}" stroke="#e5e5e5"/>`);
      out.push(`<text x="${x0 - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle" fill="#555">${esc((i * step).toFixed(dec))}</text>`);
    }
    for (const c of chunks) {
      out.push(`<line x1="${x(c).toFixed(1)}" x2="${x(c).toFixed(1)}" y1="${top}" y2="${top + ph}" stroke="#f0f0f0"/>`);
      out.push(`<text x="${x(c).toFixed(1)}" y="${top + ph + 16}" text-anchor="middle" fill="#333">${label(c)}</text>`);
    }
    out.push(`<line x1="${x0}" x2="${x0 + panelW}" y1="${top + ph}" y2="${top + ph}" stroke="#333"/>`);
    out.push(`<text x="${x0 + panelW / 2}" y="${H - 10}" text-anchor="middle" fill="#333">chunk size (bytes per read)</text>`);
    out.push(`<text x="${x0}" y="${top - 10}" font-weight="bold" fill="#333">${esc(title)}</text>`);
    qds.forEach((q, qi) => {
      const col = PALETTE[qi % PALETTE.length];
      const pts = chunks.map((c) => p.points.find((e) => e.chunk === c && e.qd === q)).filter(Boolean);
      if (model) {
        const d = [];
        for (let lx = xmin; lx <= xmax + 1e-9; lx += (xmax - xmin) / 60 || 1) {
          const c = 2 ** lx;
          d.push(`${x(c).toFixed(1)},${y(model(c, q)).toFixed(1)}`);
        }
        out.push(`<polyline points="${d.join(' ')}" fill="none" stroke="${col}" stroke-width="1" stroke-dasharray="4 3" opacity="0.8"/>`);
      }
      out.push(`<polyline points="${pts.map((e) => `${x(e.chunk).toFixed(1)},${y(value(e)).toFixed(1)}`).join(' ')}" fill="none" stroke="${col}" stroke-width="2"/>`);
      for (const e of pts) out.push(`<circle cx="${x(e.chunk).toFixed(1)}" cy="${y(value(e)).toFixed(1)}" r="3" fill="${col}"><title>${esc(`${label(e.chunk)} QD${q}: ${e.mb_per_s} MB/s, ${e.iops} IOPS, p50 ${e.lat_us_p50} µs, p99 ${e.lat_us_p99} µs`)}</title></circle>`);
    });
  };
  const modelMBs = (c, q) => (c / ((p.latency_us + c / p.bytes_per_us) / Math.min(q, p.parallelism)));
  panel(0, 'MB/s', (e) => e.mb_per_s, modelMBs);
  panel(1, 'IOPS (thousands)', (e) => e.iops / 1000, null);
  // legend
  qds.forEach((q, qi) => {
    const lx = W - 60, ly = top + 4 + qi * 18;
    out.push(`<line x1="${lx}" x2="${lx + 16}" y1="${ly}" y2="${ly}" stroke="${PALETTE[qi % PALETTE.length]}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 20}" y="${ly + 4}" fill="#333">QD${q}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
