// Old-vs-new benchmark comparison, shared by bench/e2e.js and bench/flash.js (`--baseline REV`).
//
// - prepareTrees(): the "old" tree is a git worktree of REV in a temp dir (`git worktree add
//   --detach`), with this repo's node_modules symlinked into it and built there (`npm run build`);
//   the "new" tree is this checkout as it is (its dist/ must be built: `npm run build`), or the
//   directory given by the hidden `--tree DIR` option. The worktree is removed at the end, on
//   error and on SIGINT/SIGTERM too.
// - Child: each tree's code runs in its own process, `node bench/baseline.js --child --tree DIR`,
//   which imports only DIR/dist/src/index.js (the public API: loadModel, Model#complete,
//   #tokenize, #close) and answers JSON requests on stdin, one per line, with one
//   `@@baseline {...}` line each on stdout. Models and prompts come from this repo (ROOT/models),
//   the same files for both trees.
// - order(round): which tree runs first in a round (alternating, so drift hits both alike).
// - ratioTable(): the printed new ÷ old table.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const TAG = '@@baseline ';

export const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
export const r3 = (v) => (Number.isFinite(v) ? +v.toFixed(3) : null);
/** new ÷ old, 3 decimals; null where either is missing or old is 0 (1 where both are 0). */
export const ratio = (n, o) => (typeof n !== 'number' || typeof o !== 'number' ? null : o === 0 ? (n === 0 ? 1 : null) : r3(n / o));

/** `--name value` from args. */
export const argOf = (args, name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };

function git(cwd, ...a) {
  const r = spawnSync('git', a, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ${a.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout.trim();
}

/** Newest mtime (ms) of the files under dir (0 when it does not exist). */
function newest(dir) {
  let t = 0;
  if (!existsSync(dir)) return 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p));
    else if (e.isFile()) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

/** What a tree is: its HEAD commit and whether its files differ from it. */
function describe(dir) {
  try {
    return { commit: git(dir, 'rev-parse', 'HEAD'), dirty: git(dir, 'status', '--porcelain', '--untracked-files=no').length > 0 };
  } catch {
    return { commit: null, dirty: null };
  }
}

// Clean-up on every way out: the worktree and the child processes.
const cleanups = new Set();
function runCleanups() {
  for (const f of [...cleanups].reverse()) { cleanups.delete(f); try { f(); } catch (e) { console.error(`baseline clean-up: ${e.message}`); } }
}
let hooked = false;
function hookExit() {
  if (hooked) return;
  hooked = true;
  process.on('exit', runCleanups);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { runCleanups(); process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1)); });
}

/** A detached worktree of rev in a temp dir, this repo's node_modules linked in, built. */
export function addWorktree(rev, log = console.error) {
  const commit = git(ROOT, 'rev-parse', '--verify', '--end-of-options', `${rev}^{commit}`);
  const base = mkdtempSync(join(tmpdir(), 'flashneuron-baseline-'));
  const dir = join(base, 'tree');
  const remove = () => {
    try { unlinkSync(join(dir, 'node_modules')); } catch { /* not there */ }
    const r = spawnSync('git', ['worktree', 'remove', '--force', dir], { cwd: ROOT, encoding: 'utf8' });
    rmSync(base, { recursive: true, force: true });
    if (r.status !== 0) spawnSync('git', ['worktree', 'prune'], { cwd: ROOT });
  };
  hookExit();
  cleanups.add(remove);
  log(`baseline: worktree of ${rev} (${commit.slice(0, 12)}) in ${dir}`);
  git(ROOT, 'worktree', 'add', '--detach', dir, commit);
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  const t0 = Date.now();
  const b = spawnSync('npm', ['run', 'build'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20 });
  if (b.status !== 0) throw new Error(`npm run build in the worktree of ${rev} failed: ${b.error?.message ?? `exit ${b.status ?? b.signal}`}\n${`${b.stdout ?? ''}${b.stderr ?? ''}`.split('\n').slice(-40).join('\n')}`);
  log(`baseline: built ${rev} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return { rev, commit, dir, remove: () => { cleanups.delete(remove); remove(); } };
}

/**
 * Parses --baseline REV (and the hidden --tree DIR: the new side, default this checkout), makes
 * and builds the worktree, and returns { old, new } tree descriptions, or null without --baseline.
 */
export function prepareTrees(args, log = console.error) {
  const rev = argOf(args, '--baseline');
  if (rev === undefined) return null;
  if (!rev || rev.startsWith('--')) throw new Error('--baseline takes a git revision');
  const newDir = resolve(argOf(args, '--tree') ?? ROOT);
  if (!existsSync(join(newDir, 'dist/src/index.js'))) throw new Error(`${newDir}/dist/src/index.js is missing: run npm run build there`);
  const mtime = (f) => statSync(join(newDir, f), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  if (newest(join(newDir, 'src')) > mtime('dist/src/index.js') || newest(join(newDir, 'assembly')) > mtime('build/flashneuron.simd.wasm')) {
    log(`baseline: warning: ${newDir}: src/ or assembly/ is newer than its build (dist/, build/): run npm run build there for a fair comparison`);
  }
  const wt = addWorktree(rev, log);
  return {
    old: { label: 'old', dir: wt.dir, rev, commit: wt.commit },
    new: { label: 'new', dir: newDir, ...describe(newDir) },
    remove: wt.remove,
  };
}

/** JSON description of the two trees for a results file. */
export function treesInfo(trees) {
  return {
    old: { rev: trees.old.rev, commit: trees.old.commit },
    new: { tree: trees.new.dir === resolve(ROOT) ? '.' : trees.new.dir, commit: trees.new.commit, dirty: trees.new.dirty },
  };
}

/** Round r's order of the two sides: old first in even rounds, new first in odd ones. */
export const order = (round, sides) => (round % 2 ? [sides[1], sides[0]] : [sides[0], sides[1]]);

/** A child process running one tree's public API (see serve() below). */
export class Child {
  constructor(tree, { env = process.env } = {}) {
    this.label = tree.label;
    this.proc = spawn(process.execPath, [...process.execArgv, SELF, '--child', '--tree', tree.dir], { stdio: ['pipe', 'pipe', 'inherit'], env });
    this.pending = new Map();
    this.next = 1;
    this.exited = null;
    const kill = () => { if (this.exited === null) this.proc.kill('SIGKILL'); };
    this.kill = kill;
    hookExit();
    cleanups.add(kill);
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      if (!line.startsWith(TAG)) { process.stderr.write(`[${this.label}] ${line}\n`); return; }
      const msg = JSON.parse(line.slice(TAG.length));
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error !== undefined) p.reject(Object.assign(new Error(`[${this.label}] ${msg.error}`), { remote: true }));
      else p.resolve(msg.result);
    });
    this.proc.on('exit', (code, signal) => {
      this.exited = code ?? signal;
      cleanups.delete(kill);
      for (const p of this.pending.values()) p.reject(new Error(`[${this.label}] child exited (${this.exited}) during a request`));
      this.pending.clear();
    });
    this.ready = this.call('hello');
  }

  /** Sends one request; resolves with its result, rejects with the child's error message. */
  call(op, args = {}) {
    if (this.exited !== null) return Promise.reject(new Error(`[${this.label}] child has exited (${this.exited})`));
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.proc.stdin.write(JSON.stringify({ id, op, ...args }) + '\n');
    });
  }

  /** Asks the child to exit and waits for it. */
  async close() {
    if (this.exited !== null) return;
    const done = new Promise((r) => this.proc.once('exit', r));
    this.proc.stdin.end();
    const t = setTimeout(() => this.kill(), 10000);
    await done;
    clearTimeout(t);
  }
}

/** Starts one Child per side and waits until both have loaded their tree's index. */
export async function startChildren(trees, opts) {
  const sides = [new Child(trees.old, opts), new Child(trees.new, opts)];
  const hello = await Promise.all(sides.map((c) => c.ready));
  return { sides, hello };
}

/**
 * Prints rows as a table: rows = [{ row, ...values }], columns = [{ key, title, fmt? }].
 * Values null / undefined print as '-'.
 */
export function ratioTable(rows, columns, out = console.log) {
  const fmt = (c, v) => (v === null || v === undefined ? '-' : c.fmt ? c.fmt(v) : typeof v === 'number' ? String(+v.toFixed(3)) : String(v));
  const head = [{ key: 'row', title: 'row' }, ...columns];
  const cells = rows.map((r) => head.map((c) => fmt(c, r[c.key])));
  const w = head.map((c, i) => Math.max(c.title.length, ...cells.map((x) => x[i].length)));
  const line = (xs) => xs.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ');
  out(line(head.map((c) => c.title)));
  out(line(w.map((n) => '-'.repeat(n))));
  for (const x of cells) out(line(x));
}

// ---- the child: one tree's public API behind JSON lines on stdin/stdout ----

async function serve(tree) {
  const send = (msg) => process.stdout.write(TAG + JSON.stringify(msg) + '\n');
  let api;
  const models = new Map();
  const ops = {
    async hello() {
      api = await import(pathToFileURL(join(tree, 'dist/src/index.js')).href);
      return { tree, exports: Object.keys(api).sort() };
    },
    async open({ key, dir, opts }) {
      if (models.has(key)) throw new Error(`model ${key} is open already`);
      models.set(key, await api.loadModel(dir, opts));
      return true;
    },
    async tokenize({ key, text }) {
      return models.get(key).tokenize(text);
    },
    async complete({ key, input, opts }) {
      const c = await models.get(key).complete(input, opts);
      return { ids: c.ids, stats: c.stats };
    },
    async close({ key }) {
      models.get(key)?.close();
      models.delete(key);
      return true;
    },
  };
  // Requests run one at a time, in order.
  let chain = Promise.resolve();
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    const req = JSON.parse(line);
    chain = chain.then(async () => {
      try {
        if (!ops[req.op]) throw new Error(`unknown op ${req.op}`);
        if (req.op !== 'hello' && !api) throw new Error('hello first');
        send({ id: req.id, result: await ops[req.op](req) });
      } catch (e) {
        send({ id: req.id, error: e?.message ?? String(e) });
      }
    });
  });
  rl.on('close', () => chain.then(() => {
    for (const m of models.values()) { try { m.close(); } catch { /* exiting */ } }
    process.exit(0);
  }));
}

if (process.argv[1] && resolve(process.argv[1]) === SELF && process.argv.includes('--child')) {
  // node:wasi warns on every instance; the parent's stderr is no place for it.
  const emitWarning = process.emitWarning;
  process.emitWarning = function (w, ...rest) {
    const type = typeof rest[0] === 'string' ? rest[0] : rest[0]?.type;
    if (type === 'ExperimentalWarning') return;
    return emitWarning.call(process, w, ...rest);
  };
  const tree = argOf(process.argv, '--tree');
  if (!tree) { console.error('baseline child: --tree DIR missing'); process.exit(2); }
  await serve(resolve(tree));
}
