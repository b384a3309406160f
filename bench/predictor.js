// Trains the shipped sparsity predictors (models/<name>/flashneuron.fnpred) on models/calibration.txt
// and writes bench/results/predictor.json: per model the rank, training time, predictor bytes and
// per-layer recall / predicted÷true ratio on the held-out end of the text (never trained on).
//
//   node bench/predictor.js                 both models at their chosen rank
//   node bench/predictor.js opt-relu-mini   one model
//   node bench/predictor.js --sweep 64,128,160,192   PCA-only rank sweep (epochs 0), nothing shipped
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { loadModel } from '../dist/src/index.js';
import { trainPredictor, savePredictor, loadPredictor, predictorPath, predictorBytes } from '../dist/src/predictor.js';
import { machine } from './machine.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
// smallest rank (of 64/96/128/160/192) whose PCA predictor reached recall ≥ 0.97 at ratio ≤ 2 on every layer
const RANK = { 'opt-relu-mini': 192, 'llama-relu-mini': 160 };
const args = process.argv.slice(2);
const sweepAt = args.indexOf('--sweep');
const sweep = sweepAt >= 0 ? args[sweepAt + 1].split(',').map(Number) : undefined;
const names = args.filter((a, i) => !a.startsWith('--') && (sweepAt < 0 || i !== sweepAt + 1));
const models = names.length ? names : Object.keys(RANK);
const text = readFileSync(join(ROOT, 'models/calibration.txt'), 'utf8');
const out = join(ROOT, 'bench/results/predictor.json');
let results;
try { results = JSON.parse(readFileSync(out, 'utf8')); } catch { results = { models: {} }; }
results.machine = machine();
results.date = new Date().toISOString();

for (const name of models) {
  const dir = join(ROOT, 'models', name);
  const model = await loadModel(dir);
  try {
    if (sweep) {
      const rows = [];
      for (const rank of sweep) {
        const p = await trainPredictor(model, text, { rank, epochs: 0 });
        const worst = p.report.layers.reduce((w, l) => ({ recall: Math.min(w.recall, l.recall), ratio: Math.max(w.ratio, l.ratio) }), { recall: 1, ratio: 0 });
        rows.push({ rank, bytes: predictorBytes(p), worst_recall: round(worst.recall), worst_ratio: round(worst.ratio), layers: p.report.layers.map(roundLayer) });
        console.log(`${name} rank ${rank}: worst recall ${worst.recall.toFixed(4)}, worst ratio ${worst.ratio.toFixed(3)}, ${predictorBytes(p)} bytes`);
      }
      results.sweeps ??= {};
      results.sweeps[name] = rows;
      continue;
    }
    let last = '';
    const p = await trainPredictor(model, text, {
      rank: RANK[name],
      onProgress: (done, total, phase) => {
        const line = `${name}: ${phase} ${Math.round((100 * done) / total)}%`;
        if (line !== last) { process.stderr.write(`\r${line}   `); last = line; }
      },
    });
    process.stderr.write('\n');
    const path = predictorPath(dir);
    savePredictor(path, p);
    // validate before reporting: the file as written, evaluated again by the scalar reference
    const back = loadPredictor(path, p.fingerprint);
    if (back.layers.some((l, i) => l.threshold !== p.layers[i].threshold)) throw new Error('save/load changed the thresholds');
    results.models[name] = {
      rank: p.rank, seconds: p.report.seconds, train_tokens: p.report.train_tokens, heldout_tokens: p.report.heldout_tokens,
      bytes: predictorBytes(p), file: path.slice(ROOT.length),
      layers: p.report.layers.map((l, i) => ({ ...roundLayer(l), val_recall: round(p.layers[i].recall), val_ratio: round(p.layers[i].ratio) })),
    };
    console.log(`${name}: rank ${p.rank}, ${p.report.seconds} s, ${predictorBytes(p)} bytes`);
    for (const l of p.report.layers) console.log(`  layer ${l.layer}: recall ${l.recall.toFixed(4)} ratio ${l.ratio.toFixed(3)} (true ${(100 * l.true_share).toFixed(1)} %, predicted ${(100 * l.predicted_share).toFixed(1)} %)`);
  } finally {
    model.close();
  }
}
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(out, JSON.stringify(results, null, 2) + '\n');

function round(v) { return Math.round(v * 1e4) / 1e4; }
function roundLayer(l) {
  return { layer: l.layer, recall: round(l.recall), ratio: round(l.ratio), true_share: round(l.true_share), predicted_share: round(l.predicted_share), threshold: round(l.threshold) };
}
