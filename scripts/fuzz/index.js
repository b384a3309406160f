#!/usr/bin/env node
// A seeded fuzzer for everything the CLI reads: the flashneuron image and its .fnpred predictor,
// Hugging Face folders (config.json, safetensors shards and their index, pytorch_model.bin,
// tokenizer.json, tokenizer.model, vocab.json + merges.txt), GGUF files, and the command line.
//
//   npm run fuzz -- [--seed S] [--cases N] [--jobs J] [--timeout MS] [--rss-mb MB] [--targets a,b]
//                   [--out FILE] [--work DIR] [--case I[,J…] [--keep]]
//
// Case i is drawn from (seed, i) alone, so a run is reproducible whatever --jobs is, and
// `--case I --keep` rebuilds case I, runs it, prints its output and leaves its files. Each case
// runs the CLI in a child process (`node --max-old-space-size`, killed past --timeout or past
// --rss-mb resident) and is classified against the unmutated input's output
// (scripts/fuzz/runner.js). Prints a table format × outcome and writes bench/results/fuzz.json:
// seed, cases, machine, date, the table, each hang, crash or garbage case with its mutation, the
// command and how to rebuild it, the changed-valid cases, and the clean errors' messages.
import { cpus, availableParallelism, hostname, tmpdir } from 'node:os';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { caseSeed, rng } from './mutators.js';
import { classify, outputIds, runChild } from './runner.js';
import { TARGETS, makeCase, prepare } from './targets.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN_REL = join('bin', 'flashneuron.js');
const BIN = join(ROOT, BIN_REL);

/**
 * A copy of the built CLI (bin, dist/src, build, package.json; node_modules and models linked):
 * the cases run on the build as it was when the run began, whatever is rebuilt meanwhile.
 */
function snapshot(dir) {
  const app = join(dir, 'app');
  for (const p of ['bin', join('dist', 'src'), 'build', 'package.json']) cpSync(join(ROOT, p), join(app, p), { recursive: true });
  for (const p of ['node_modules', 'models']) symlinkSync(join(ROOT, p), join(app, p));
  return join(app, BIN_REL);
}

export const OUTCOMES = ['correct', 'changed-valid', 'clean-error', 'hang', 'crash', 'garbage'];
/** Outcomes that are findings. */
export const FAILURES = ['hang', 'crash', 'garbage'];

/**
 * The environment of a child: its own conversion cache and HF hub, no injected faults, and
 * FLASHNEURON_DEBUG so an error's stack (its class) follows the line a user sees.
 */
function childEnv(dir) {
  const env = { ...process.env, FLASHNEURON_CACHE: join(dir, '.cache'), HF_HOME: join(dir, '.hf'), UV_THREADPOOL_SIZE: '4', FLASHNEURON_DEBUG: '1' };
  for (const k of ['FLASHNEURON_FAULTS', 'FLASHNEURON_API_KEY', 'NODE_OPTIONS']) delete env[k];
  return env;
}

const quote = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
const command = (argv) => ['node', relative(process.cwd(), BIN) || BIN, ...argv].map(quote).join(' ');

/**
 * Runs the fuzzer. Returns the report (also written to `out` unless it is null):
 * { seed, cases, jobs, machine, date, seconds, summary: { target: { outcome: n } }, failures, clean_errors, changed_valid }.
 */
export async function runFuzz(opts = {}) {
  const seed = opts.seed ?? 1, cases = opts.cases ?? 200, jobs = Math.max(1, opts.jobs ?? availableParallelism());
  const timeoutMs = opts.timeoutMs ?? 30000, rssBytes = (opts.rssMb ?? 1536) * 2 ** 20, heapMb = opts.heapMb ?? 512;
  const only = opts.targets ? new Set(opts.targets) : undefined;
  const dir = opts.work ?? mkdtempSync(join(tmpdir(), `flashneuron-fuzz-${seed}-`));
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  mkdirSync(dir, { recursive: true });
  const bin = snapshot(dir);
  const prepRun = (args) => runChild([bin, ...args], { env: childEnv(join(dir, 'prep')), cwd: dir, timeoutMs: 600000, heapMb: 4096, rssBytes: 16 * 2 ** 30 });
  log(`preparing inputs in ${dir}`);
  const base = await prepare(ROOT, dir, prepRun);
  const indices = opts.only !== undefined ? [opts.only].flat() : Array.from({ length: cases }, (_, i) => i);

  // The reference of each base × command variant: the unmutated input's ids (computed once).
  const refs = new Map();
  const reference = (c) => {
    if (!refs.has(c.ref)) {
      refs.set(c.ref, (async () => {
        const d = join(dir, `ref-${c.ref.replace(/[^\w.-]+/g, '_')}`);
        rmSync(d, { recursive: true, force: true });
        const argv = c.reference(d);
        const run = await runChild([bin, ...argv], { env: childEnv(d), cwd: dir, timeoutMs: Math.max(timeoutMs, 120000), heapMb, rssBytes });
        const ids = outputIds(run.stdout);
        if (run.code !== 0 || !ids) throw new Error(`fuzz: the unmutated ${c.ref} fails: ${command(argv)}: ${run.stderr.trim() || run.stdout.slice(0, 200)}`);
        return ids;
      })());
    }
    return refs.get(c.ref);
  };

  const results = new Array(indices.length);
  let next = 0, done = 0;
  const worker = async () => {
    while (next < indices.length) {
      const k = next++, i = indices[k];
      const c = makeCase(rng(caseSeed(seed, i)), base, only);
      const ref = await reference(c);
      const d = join(dir, `case-${i}`);
      rmSync(d, { recursive: true, force: true });
      const argv = c.build(d);
      const run = await runChild([bin, ...argv], { env: childEnv(d), cwd: dir, timeoutMs, heapMb, rssBytes });
      const { outcome, cause } = classify(run, ref, c.legit);
      results[k] = { case: i, target: c.target, variant: c.variant, file: c.file, mutation: c.desc, legit: c.legit, outcome, cause, ms: run.ms, command: command(argv) };
      if (opts.only !== undefined) results[k].run = { code: run.code, signal: run.signal, stdout: run.stdout.slice(0, 4000), stderr: run.stderr.slice(0, 4000) };
      if (!opts.keep) rmSync(d, { recursive: true, force: true });
      if (++done % 50 === 0) log(`${done}/${indices.length} cases`);
      opts.onCase?.(results[k]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, indices.length) }, worker));
  if (!opts.keep) rmSync(dir, { recursive: true, force: true });

  const summary = {};
  for (const t of TARGETS) if (!only || only.has(t.name)) summary[t.name] = Object.fromEntries(OUTCOMES.map((o) => [o, 0]));
  for (const r of results) summary[r.target][r.outcome]++;
  const reproduce = (r) => `npm run fuzz -- --seed ${seed}${only ? ` --targets ${[...only].join(',')}` : ''} --case ${r.case} --keep`;
  const report = {
    seed, cases: indices.length, jobs, timeout_ms: timeoutMs, rss_cap_mb: rssBytes / 2 ** 20,
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), platform: `${process.platform} ${process.arch}`, node: process.version, host: hostname() },
    date: new Date().toISOString(), seconds: Math.round((performance.now() - t0) / 100) / 10,
    summary,
    failures: results.filter((r) => FAILURES.includes(r.outcome)).map((r) => ({ ...r, reproduce: reproduce(r) })),
    clean_errors: countBy(results.filter((r) => r.outcome === 'clean-error').map((r) => `${r.target}: ${r.cause.replace(/\/\S+\/(case|ref)-[^/\s]+\//g, '').replace(/\d+/g, 'N')}`)),
    changed_valid: results.filter((r) => r.outcome === 'changed-valid').map((r) => ({ case: r.case, target: r.target, mutation: r.mutation, cause: r.cause, reproduce: reproduce(r) })),
  };
  if (opts.only !== undefined) report.picked = results;
  if (opts.out !== null) {
    const out = opts.out ?? join(ROOT, 'bench', 'results', 'fuzz.json');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(report, null, 1) + '\n');
  }
  return report;
}

/** { item: count }, most frequent first. */
function countBy(items) {
  const m = new Map();
  for (const x of items) m.set(x, (m.get(x) ?? 0) + 1);
  return Object.fromEntries([...m].sort((a, b) => b[1] - a[1]));
}

/** The summary as a text table: one row per format, one column per outcome. */
export function table(summary) {
  const rows = [['format', ...OUTCOMES, 'total']];
  const total = Object.fromEntries(OUTCOMES.map((o) => [o, 0]));
  for (const [t, counts] of Object.entries(summary)) {
    rows.push([t, ...OUTCOMES.map((o) => String(counts[o])), String(OUTCOMES.reduce((a, o) => a + counts[o], 0))]);
    for (const o of OUTCOMES) total[o] += counts[o];
  }
  rows.push(['all', ...OUTCOMES.map((o) => String(total[o])), String(OUTCOMES.reduce((a, o) => a + total[o], 0))]);
  const w = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  return rows.map((r) => r.map((c, j) => (j ? c.padStart(w[j]) : c.padEnd(w[j]))).join('  ')).join('\n');
}

function parseArgs(argv) {
  const o = {};
  const need = (i, what) => { if (i >= argv.length) throw new Error(`${argv[i - 1]} needs ${what}`); return argv[i]; };
  const count = (v, name) => { const n = Number(v); if (!Number.isInteger(n) || n < 0) throw new Error(`${name} takes a non-negative integer, got ${JSON.stringify(v)}`); return n; };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--seed') o.seed = count(need(++i, 'a number'), a);
    else if (a === '--cases') o.cases = count(need(++i, 'a number'), a);
    else if (a === '--jobs') o.jobs = Math.max(1, count(need(++i, 'a number'), a));
    else if (a === '--timeout') o.timeoutMs = count(need(++i, 'milliseconds'), a);
    else if (a === '--rss-mb') o.rssMb = count(need(++i, 'MiB'), a);
    else if (a === '--targets') o.targets = need(++i, 'a list').split(',');
    else if (a === '--out') o.out = need(++i, 'a file');
    else if (a === '--work') o.work = need(++i, 'a folder');
    else if (a === '--case') o.only = need(++i, 'case numbers').split(',').map((v) => count(v, a));
    else if (a === '--keep') o.keep = true;
    else if (a === '--help' || a === '-h') o.help = true;
    else throw new Error(`unknown argument ${a}`);
  }
  const names = TARGETS.map((t) => t.name);
  for (const t of o.targets ?? []) if (!names.includes(t)) throw new Error(`unknown target ${t} (${names.join(', ')})`);
  return o;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  let o;
  try { o = parseArgs(process.argv.slice(2)); } catch (e) { console.error(`fuzz: ${e.message}`); process.exit(2); }
  if (o.help) {
    console.log('npm run fuzz -- [--seed S] [--cases N] [--jobs J] [--timeout MS] [--rss-mb MB] [--targets a,b] [--out FILE] [--work DIR] [--case I[,J…] [--keep]]');
    process.exit(0);
  }
  const report = await runFuzz({ ...o, out: o.only !== undefined ? null : o.out, log: (m) => console.error(`fuzz: ${m}`) });
  if (report.picked) {
    for (const c of report.picked) console.log(JSON.stringify(c, null, 1));
  } else {
    console.log(`seed ${report.seed}, ${report.cases} cases, ${report.jobs} jobs, ${report.seconds} s (${report.machine.cpu}, ${report.machine.node})\n`);
    console.log(table(report.summary));
    const byCause = new Map();
    for (const f of report.failures) byCause.set(`${f.target} ${f.outcome}: ${f.cause.replace(/\d+/g, 'N').slice(0, 100)}`, (byCause.get(`${f.target} ${f.outcome}: ${f.cause.replace(/\d+/g, 'N').slice(0, 100)}`) ?? 0) + 1);
    if (byCause.size) console.log(`\nfindings by cause:\n${[...byCause].sort((a, b) => b[1] - a[1]).map(([k, n]) => `  ${String(n).padStart(4)}  ${k}`).join('\n')}`);
    console.log(`\nreport: ${relative(process.cwd(), o.out ?? join(ROOT, 'bench', 'results', 'fuzz.json'))}`);
  }
}
