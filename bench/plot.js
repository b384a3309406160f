// Tiny dependency-free SVG bar chart for benchmark results.

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1'];

/** Escapes text for SVG content and attributes. */
function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

/** A "nice" axis step (1, 2 or 5 times a power of ten) giving about `ticks` ticks up to `max`. */
function niceStep(max, ticks) {
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

const fmt = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));

/**
 * Grouped bar chart as an SVG string.
 * @param {{title: string, subtitle?: string, unit: string, groups: {label: string, bars: {label: string, value: number, text?: string}[]}[],
 *          refLine?: {label: string, value: number}, log?: boolean, width?: number, height?: number}} spec
 *   Bars with the same label share a colour across groups (legend at the top right); `text`
 *   replaces the value printed above a bar. `log`: a logarithmic y axis (for values spanning decades).
 */
export function barChart({ title, subtitle, unit, groups, refLine, log = false, width = 720, height = 400 }) {
  const m = { top: subtitle ? 64 : 48, right: 16, bottom: 44, left: 56 };
  const pw = width - m.left - m.right, ph = height - m.top - m.bottom;
  const values = groups.flatMap((g) => g.bars.map((b) => b.value));
  const top = Math.max(1e-9, ...values, refLine ? refLine.value : 0) * 1.12;
  const step = niceStep(top, 5);
  const ymax = Math.ceil(top / step) * step;
  // Log axis: decades from below the smallest positive value to above the largest.
  const lo = 10 ** Math.floor(Math.log10(Math.min(...values.filter((v) => v > 0), top))), hi = 10 ** Math.ceil(Math.log10(top));
  const y = log ? (v) => m.top + ph - (Math.log10(Math.max(v, lo) / lo) / Math.log10(hi / lo)) * ph : (v) => m.top + ph - (v / ymax) * ph;
  const seriesNames = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.label)))];
  const colour = (label) => PALETTE[seriesNames.indexOf(label) % PALETTE.length];

  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  out.push(`<text x="${m.left}" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`);
  if (subtitle) out.push(`<text x="${m.left}" y="38" fill="#555">${esc(subtitle)}</text>`);
  // y axis: grid lines and tick labels
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  const ticks = [];
  if (log) for (let v = lo; v <= hi * 1.001; v *= 10) ticks.push(v);
  else for (let i = 0; i * step <= ymax + step / 2; i++) ticks.push(i * step);
  for (const v of ticks) {
    const yy = y(v).toFixed(1);
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${yy}" y2="${yy}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle" fill="#555">${esc(log ? String(+v.toPrecision(3)) : v.toFixed(decimals))}</text>`);
  }
  out.push(`<text transform="translate(14 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#333">${esc(unit)}</text>`);
  // bars
  const gw = pw / Math.max(1, groups.length);
  groups.forEach((g, gi) => {
    const n = Math.max(1, g.bars.length);
    const bw = Math.min(64, (gw * 0.8) / n);
    const x0 = m.left + gi * gw + (gw - bw * n) / 2;
    g.bars.forEach((b, bi) => {
      const x = x0 + bi * bw, yy = y(Math.max(0, b.value));
      out.push(`<rect x="${x.toFixed(1)}" y="${yy.toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(m.top + ph - yy).toFixed(1)}" fill="${colour(b.label)}"><title>${esc(`${g.label} ${b.label}: ${fmt(b.value)} ${unit}`)}</title></rect>`);
      out.push(`<text x="${(x + bw / 2 - 1).toFixed(1)}" y="${(yy - 4).toFixed(1)}" text-anchor="middle" font-size="10" fill="#333">${esc(b.text ?? fmt(b.value))}</text>`);
    });
    out.push(`<text x="${(m.left + gi * gw + gw / 2).toFixed(1)}" y="${m.top + ph + 18}" text-anchor="middle" fill="#333">${esc(g.label)}</text>`);
  });
  out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${m.top + ph}" y2="${m.top + ph}" stroke="#333"/>`);
  // reference line
  if (refLine) {
    const yy = y(refLine.value).toFixed(1);
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${yy}" y2="${yy}" stroke="#d62728" stroke-width="1.5" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${m.left + pw - 4}" y="${(+yy - 5).toFixed(1)}" text-anchor="end" fill="#d62728">${esc(`${refLine.label}: ${fmt(refLine.value)} ${unit}`)}</text>`);
  }
  // legend
  let lx = width - m.right;
  for (const name of [...seriesNames].reverse()) {
    const w = 18 + name.length * 7;
    lx -= w + 10;
    out.push(`<rect x="${lx}" y="${m.top - 18}" width="12" height="12" fill="${colour(name)}"/>`);
    out.push(`<text x="${lx + 16}" y="${m.top - 8}" fill="#333">${esc(name)}</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
