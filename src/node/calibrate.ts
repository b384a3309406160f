// flashneuron calibrate: per-layer |silu(gate·x)·up·x| cuts of a SiLU-gated model for a target
// sparsity (src/predictor/thresholds.ts), written where sparse mode finds them, with the sparsity
// those cuts give on the held-out end of the text; with --teal S also the TEAL cuts on the
// inputs of q/k/v, o and gate/up (--teal at run time), with the input sparsity they give there.
import { existsSync, statSync } from 'node:fs';
import type { Progress } from '../format/image.js';
import { modelFingerprint } from '../predictor/format.js';
import { calibrateThresholds, checkSparsity } from '../predictor/thresholds.js';
import { predictorSplits } from '../predictor/samples.js';
import type { Model } from '../core/model.js';
import { resolveModelPath } from './cache.js';
import { DEFAULT_MODEL, loadModel, resolveImage } from './load.js';
import { calibratedThresholdsPath, saveThresholds } from './predictor-file.js';
import type { Flags } from './args.js';

/** Per layer, the share of neurons sparse mode drops with these cuts over the token windows (BOS left out). */
export function measuredSparsity(model: Model, windows: number[][]): number[] {
  const { nLayers, ffn } = model.config, dropped = new Array(nLayers).fill(0), e = model.engine;
  let n = 0;
  for (const w of windows) {
    e.reset();
    for (let p = 0; p < w.length; p++) {
      e.forward(w[p], p);
      if (p === 0) continue;
      n++;
      for (let l = 0; l < nLayers; l++) dropped[l] += 1 - e.predicted(l).length / ffn;
    }
  }
  return dropped.map((b) => b / n);
}

/** Per layer and input (q/k/v, o, gate/up) the share of entries TEAL cuts over the token windows (BOS left out), from a model loaded with teal on. */
export function measuredTeal(model: Model, windows: number[][]): number[][] {
  const e = model.engine, { nLayers } = model.config, cut = Array.from({ length: nLayers }, () => [0, 0, 0]), seen = cut.map(() => [0, 0, 0]);
  for (const w of windows) {
    e.reset();
    for (let p = 0; p < w.length; p++) {
      e.resetStats();
      e.forward(w[p], p);
      if (p > 0) e.tealCounts().forEach((g, l) => g.forEach((c, k) => { cut[l][k] += c.cut; seen[l][k] += c.seen; }));
    }
  }
  return cut.map((r, l) => r.map((c, k) => c / Math.max(1, seen[l][k])));
}

export async function calibrateCommand(text: string, f: Flags, bar: (label: string) => Progress): Promise<void> {
  const sparsity = checkSparsity(f.sparsity);
  const teal = f.teal === undefined ? undefined : checkSparsity(f.teal);
  const spec = typeof f.model === 'string' ? f.model : DEFAULT_MODEL;
  // Keyed as loading looks for it (thresholdsPath): the folder, or the image a file runs as.
  const full = resolveModelPath(spec);
  const key = statSync(full).isDirectory() ? full : await resolveImage(full, { onProgress: bar('convert') });
  const out = typeof f.out === 'string' ? f.out : calibratedThresholdsPath(key);
  if (existsSync(out) && !f.force) throw new Error(`${out} exists: --force replaces it${f.out === undefined ? ', --out FILE writes elsewhere' : ''}`);
  const model = await loadModel(spec, { onProgress: bar('load'), threads: typeof f.threads === 'number' ? f.threads : undefined, device: 'cpu', tealRecord: teal !== undefined });
  try {
    const t0 = performance.now();
    const cfg = model.config;
    if (cfg.act !== 'silu' || !cfg.hasGate) throw new Error(`calibrate is for SiLU-gated models (Llama, Mistral, Qwen2 with silu); ${spec} uses ${cfg.act}${cfg.hasGate ? '' : ' without a gate'}`);
    const t = await calibrateThresholds(model, text, modelFingerprint(model.engine.header), {
      sparsity, teal, statistic: f.rule === 'gate' ? 'abs_silu_gate' : 'abs_silu_gate_up', maxTokens: typeof f['max-tokens'] === 'number' ? f['max-tokens'] : undefined, onProgress: bar('calibrate'),
    });
    const held = predictorSplits(model, text).held;
    saveThresholds(out, t);
    const sparse = await loadModel(spec, { device: 'cpu', mode: 'sparse', thresholdsPath: out });
    let measured: number[];
    try { measured = measuredSparsity(sparse, held); } finally { sparse.close(); }
    let tealMeasured: number[][] | undefined;
    if (teal !== undefined) {
      const m = await loadModel(spec, { device: 'cpu', mode: 'dense', thresholdsPath: out, teal: true });
      try { tealMeasured = measuredTeal(m, held); } finally { m.close(); }
    }
    const seconds = (performance.now() - t0) / 1000;
    if (f.json) {
      process.stdout.write(JSON.stringify({ path: out, sparsity, tokens: t.tokens, thresholds: t.thresholds, heldout_sparsity: measured, seconds,
        ...(t.teal ? { teal: { sparsity: teal, cuts: t.teal.cuts, heldout_sparsity: tealMeasured } } : {}) }) + '\n');
      return;
    }
    process.stderr.write(`wrote ${out} (${t.tokens} calibration tokens, ${seconds.toFixed(0)} s); sparse mode uses it for this model\n`);
    process.stdout.write(`held-out text, target sparsity ${(100 * sparsity).toFixed(1)}%:\n` + t.thresholds.map((c, l) =>
      `layer ${l}: ${f.rule === 'gate' ? '|silu(gate)|' : '|h|'} cut ${c.toPrecision(4)}, sparsity ${(100 * measured[l]).toFixed(1)}%`).join('\n') + '\n');
    if (t.teal && tealMeasured) {
      const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
      process.stdout.write(`TEAL, target input sparsity ${pct(teal!)} (q/k/v, o, gate/up inputs):\n` + t.teal.cuts.map((c, l) =>
        `layer ${l}: cuts ${c.map((v) => v.toPrecision(3)).join(' / ')}, sparsity ${tealMeasured![l].map(pct).join(' / ')}`).join('\n') + '\n');
    }
  } finally { model.close(); }
}
