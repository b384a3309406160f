// End-to-end decode speed of both reference models: SIMD vs scalar wasm in Node, and the same
// CLI under Deno and Bun. Validates greedy ids against golden.json before timing anything.
// Writes bench/results/e2e.json.
//
// Usage: node bench/e2e.js [--runs N] [--tokens N] [--models a,b] [--runtimes node,deno,bun]
//                          [--baseline REV]
// (defaults: 5 runs of 128 tokens, both models, all runtimes)
//
// --baseline REV: compares REV (built in a temporary git worktree, see bench/baseline.js) with
// this checkout (its dist/ as built) in one run. Each tree runs in its own process through its
// own dist/src/index.js (Node rows) or bin/flashneuron.js (Deno, Bun rows); both check their
// greedy ids against golden.json; every row times the two trees in alternating order round by
// round (--runs rounds). Prints a table of new ÷ old ms/token and writes
// bench/results/e2e-baseline.json (bench/results/e2e.json is left alone):
//   { machine, date, tokens, runs, baseline: { old: {rev, commit}, new: {tree, commit, dirty},
//     rows: { "MODEL/ROW": { old: {ms_per_token, tokens_per_s, prompt_ms_per_token?, ms_per_token_runs},
//                             new: {...}, ratio_ms_per_token, ids_equal } } } }
// ROW is node_simd, node_scalar, deno_simd or bun_simd. ratio < 1: the new tree is faster.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { argOf, median, order, prepareTrees, ratio, ratioTable, startChildren, treesInfo } from './baseline.js';
import { machine } from './machine.js';
import { barChart } from './plot.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
const TOKENS = Number(argOf(args, '--tokens') ?? 128), RUNS = Number(argOf(args, '--runs') ?? 5);
const MODELS = (argOf(args, '--models') ?? 'opt-relu-mini,llama-relu-mini').split(',');
const RUNTIMES = (argOf(args, '--runtimes') ?? 'node,deno,bun').split(',');
const CLI = { deno: ['npx', 'deno', 'run', '-A'], bun: ['npx', 'bun'] };
for (const rt of RUNTIMES) if (rt !== 'node' && !CLI[rt]) throw new Error(`--runtimes: unknown runtime ${rt}`);
if (!(TOKENS >= 24) || !(RUNS >= 1)) throw new Error('--tokens must be at least 24 (the golden check), --runs at least 1');

const golden = (name) => JSON.parse(readFileSync(join(ROOT, 'models', name, 'golden.json'), 'utf8')).prompts[0];
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** One CLI run of `tree`'s bin/flashneuron.js under a runtime: { ids, stats }. */
function cliRun(rt, tree, dir, text) {
  const cmd = CLI[rt];
  const out = execFileSync(cmd[0], [...cmd.slice(1), join(tree, 'bin/flashneuron.js'), 'generate', '--json', '--model', dir,
    '--temperature', '0', '--no-stop', '--max-tokens', String(TOKENS), text], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return JSON.parse(out);
}

if (args.includes('--baseline')) await compare();
else await plain();

async function plain() {
  const { loadModel } = await import('../dist/src/index.js');
  const results = {};
  for (const name of MODELS) {
    const dir = join(ROOT, 'models', name);
    const p = golden(name);
    results[name] = {};
    if (RUNTIMES.includes('node')) {
      for (const simd of [true, false]) {
        const model = await loadModel(dir, { simd });
        const check = await model.complete(p.text, { temperature: 0, maxTokens: 24, stopAtEos: false });
        if (!same(check.ids, p.greedy_ids)) throw new Error(`${name}: greedy ids differ from golden`);
        const ms = [], prompt = [];
        for (let r = 0; r < RUNS; r++) {
          const c = await model.complete(p.text, { temperature: 0, maxTokens: TOKENS, stopAtEos: false });
          ms.push(c.stats.ms_per_token);
          prompt.push(c.stats.prompt_ms / c.stats.prompt_tokens);
        }
        results[name][simd ? 'node_simd' : 'node_scalar'] = { ms_per_token: median(ms), tokens_per_s: +(1000 / median(ms)).toFixed(1), prompt_ms_per_token: +median(prompt).toFixed(3) };
        model.close();
      }
    }
    for (const rt of RUNTIMES.filter((x) => x !== 'node')) {
      const ms = [];
      for (let r = 0; r < RUNS; r++) {
        const j = cliRun(rt, ROOT, dir, p.text);
        if (!same(j.ids.slice(0, 24), p.greedy_ids)) throw new Error(`${name} under ${rt}: greedy ids differ`);
        ms.push(j.stats.ms_per_token);
      }
      results[name][`${rt}_simd`] = { ms_per_token: median(ms), tokens_per_s: +(1000 / median(ms)).toFixed(1) };
    }
    const r = results[name];
    if (r.node_simd && r.node_scalar) r.simd_speedup = +(r.node_scalar.ms_per_token / r.node_simd.ms_per_token).toFixed(2);
    console.log(name, JSON.stringify(r));
  }

  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const out = { machine: machine(), date: new Date().toISOString(), tokens: TOKENS, runs: RUNS, models: results };
  writeFileSync(join(ROOT, 'bench/results/e2e.json'), JSON.stringify(out, null, 2) + '\n');
  writeFileSync(join(ROOT, 'bench/results/e2e.svg'), barChart({
    title: `End-to-end decode, tokens/s (${out.date.slice(0, 10)}, ${out.machine.cpu}, 1 thread)`,
    unit: 'tokens/s',
    groups: Object.entries(results).map(([name, r]) => ({
      label: name,
      bars: ['node_simd', 'deno_simd', 'bun_simd', 'node_scalar'].filter((k) => r[k]).map((k) => ({ label: k.replace('_', ' '), value: r[k].tokens_per_s })),
    })),
  }));
  console.log('wrote bench/results/e2e.json and e2e.svg');
}

async function compare() {
  const trees = prepareTrees(args);
  let sides;
  try {
    ({ sides } = await startChildren(trees));
    const rows = {};
    const summarize = (ms, prompt) => ({
      ms_per_token: median(ms), tokens_per_s: +(1000 / median(ms)).toFixed(1),
      ...(prompt ? { prompt_ms_per_token: +median(prompt).toFixed(3) } : {}), ms_per_token_runs: ms,
    });
    const finish = (key, ms, prompt, ids) => {
      const [o, n] = sides.map((s) => summarize(ms[s.label], prompt?.[s.label]));
      rows[key] = { old: o, new: n, ratio_ms_per_token: ratio(n.ms_per_token, o.ms_per_token), ids_equal: same(ids.old, ids.new) };
      console.log(`${key.padEnd(28)} old ${o.ms_per_token.toFixed(3)}  new ${n.ms_per_token.toFixed(3)} ms/token  new/old ${rows[key].ratio_ms_per_token}`);
    };
    for (const name of MODELS) {
      const dir = join(ROOT, 'models', name);
      const p = golden(name);
      if (RUNTIMES.includes('node')) {
        for (const simd of [true, false]) {
          const key = `${name}/${simd ? 'node_simd' : 'node_scalar'}`;
          const ms = { old: [], new: [] }, prompt = { old: [], new: [] }, ids = {};
          for (const s of sides) {
            await s.call('open', { key, dir, opts: { simd } });
            const check = await s.call('complete', { key, input: p.text, opts: { temperature: 0, maxTokens: 24, stopAtEos: false } });
            if (!same(check.ids, p.greedy_ids)) throw new Error(`${name} (${s.label} tree, simd ${simd}): greedy ids differ from golden`);
          }
          for (let r = 0; r < RUNS; r++) {
            for (const s of order(r, sides)) {
              const c = await s.call('complete', { key, input: p.text, opts: { temperature: 0, maxTokens: TOKENS, stopAtEos: false } });
              ms[s.label].push(c.stats.ms_per_token);
              prompt[s.label].push(c.stats.prompt_ms / c.stats.prompt_tokens);
              ids[s.label] ??= c.ids;
            }
          }
          for (const s of sides) await s.call('close', { key });
          finish(key, ms, prompt, ids);
        }
      }
      for (const rt of RUNTIMES.filter((x) => x !== 'node')) {
        const ms = { old: [], new: [] }, ids = {};
        const tree = { old: trees.old.dir, new: trees.new.dir };
        for (let r = 0; r < RUNS; r++) {
          for (const label of order(r, ['old', 'new'])) {
            const j = cliRun(rt, tree[label], dir, p.text);
            if (!same(j.ids.slice(0, 24), p.greedy_ids)) throw new Error(`${name} under ${rt} (${label} tree): greedy ids differ from golden`);
            ms[label].push(j.stats.ms_per_token);
            ids[label] ??= j.ids;
          }
        }
        finish(`${name}/${rt}_simd`, ms, null, ids);
      }
    }
    for (const s of sides) await s.close();

    console.log(`\nnew (${trees.new.dir === resolve(ROOT) ? 'this checkout' : trees.new.dir}) ÷ old (${trees.old.rev} = ${trees.old.commit.slice(0, 12)}), median of ${RUNS} interleaved runs of ${TOKENS} tokens:`);
    ratioTable(Object.entries(rows).map(([row, x]) => ({
      row, old_ms: x.old.ms_per_token, new_ms: x.new.ms_per_token, ratio: x.ratio_ms_per_token,
      prompt_ratio: ratio(x.new.prompt_ms_per_token, x.old.prompt_ms_per_token), ids: x.ids_equal ? 'same' : 'DIFFER',
    })), [
      { key: 'old_ms', title: 'old ms/tok' }, { key: 'new_ms', title: 'new ms/tok' }, { key: 'ratio', title: 'new/old', fmt: (v) => v.toFixed(3) },
      { key: 'prompt_ratio', title: 'prompt new/old', fmt: (v) => v.toFixed(3) }, { key: 'ids', title: 'ids' },
    ]);
    const out = { machine: machine(), date: new Date().toISOString(), tokens: TOKENS, runs: RUNS, baseline: { ...treesInfo(trees), rows } };
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(join(ROOT, 'bench/results/e2e-baseline.json'), JSON.stringify(out, null, 2) + '\n');
    console.log('wrote bench/results/e2e-baseline.json');
    const bad = Object.entries(rows).filter(([, x]) => !x.ids_equal).map(([k]) => k);
    if (bad.length) { console.error(`generated ids differ between the trees: ${bad.join(', ')}`); process.exitCode = 1; }
  } finally {
    for (const s of sides ?? []) s.kill();
    trees.remove();
  }
}

