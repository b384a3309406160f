// What a new user waits for, end to end, written to bench/results/install.json:
// - the package: `npm pack` of the current build (size), installed offline into a new project
//   (as test/package.test.js does), then `npx flashneuron generate` there — the time to its first
//   token on stdout with an empty conversion cache (the first run converts the embedded model)
//   and again with it filled;
// - a fresh clone: the working tree's files (or, with --ref REV, that revision's) in a new folder,
//   `npm ci` there (time, node_modules bytes), then the README's `npx flashneuron generate` — the
//   time to its first token on npx's first run (npx links the clone into its own cache then).
//   Skipped with --no-clone. npm ci uses the npm cache first (--prefer-offline). With --ref the
//   figures go to install-baseline.json (the package part is always the current build's).
//   node bench/install.js [--no-clone] [--ref REV]
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installOffline, pack } from '../test/helpers/pack.js';
import { machine } from './machine.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PROMPT = 'The meaning of the word';
const args = process.argv.slice(2);
const ref = args.includes('--ref') ? args[args.indexOf('--ref') + 1] : undefined;
const work = mkdtempSync(join(tmpdir(), 'flashneuron-install-'));
const env = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };

/** Runs a command; resolves to ms until its first stdout byte, ms until it exits, and its exit code. */
function firstToken(cmd, argv, opts) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let first;
    const p = spawn(cmd, argv, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stdout.on('data', () => { first ??= performance.now() - t0; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', reject);
    p.on('close', (code) => (code === 0 && first !== undefined ? resolve({ first_token_ms: Math.round(first), total_ms: Math.round(performance.now() - t0) })
      : reject(new Error(`${cmd} ${argv.join(' ')}: exit ${code}\n${err}`))));
  });
}

const timed = (f) => { const t0 = performance.now(); f(); return Math.round(performance.now() - t0); };

/** Bytes `dir` takes on disk, as `du -sk` counts them. */
const diskBytes = (dir) => 1024 * Number(execFileSync('du', ['-sk', dir], { encoding: 'utf8' }).split(/\s/)[0]);

const result = { date: new Date().toISOString(), machine: machine(), npm: execFileSync('npm', ['--version'], { encoding: 'utf8' }).trim() };
try {
  // The package.
  const tgz = pack(work);
  const project = join(work, 'project');
  mkdirSync(project);
  const installMs = timed(() => installOffline(tgz.file, project));
  const cache = join(work, 'cache');
  const gen = ['--no-install', 'flashneuron', 'generate', '--max-tokens', '32', PROMPT];
  const cold = await firstToken('npx', gen, { cwd: project, env: { ...env, FLASHNEURON_CACHE: cache } });
  const warm = await firstToken('npx', gen, { cwd: project, env: { ...env, FLASHNEURON_CACHE: cache } });
  result.package = { pack_bytes: tgz.size, unpacked_bytes: tgz.unpacked, files: tgz.files.length, install_ms: installMs, npx_generate_cold_cache: cold, npx_generate_warm_cache: warm };
  console.log(JSON.stringify(result.package));

  if (!args.includes('--no-clone')) {
    // A fresh clone, as the README's first command meets it.
    const clone = join(work, 'clone');
    mkdirSync(clone);
    if (ref) execFileSync('sh', ['-c', `git -C "${ROOT}" archive "${ref}" | tar -x -C "${clone}"`]);
    else {
      const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
      for (const f of files) if (existsSync(join(ROOT, f))) { mkdirSync(dirname(join(clone, f)), { recursive: true }); cpSync(join(ROOT, f), join(clone, f)); }
    }
    const ciMs = timed(() => execFileSync('npm', ['ci', '--prefer-offline', '--loglevel=error'], { cwd: clone, env, stdio: ['ignore', 'ignore', 'inherit'] }));
    const nodeModules = diskBytes(join(clone, 'node_modules'));
    const npx = await firstToken('npx', ['flashneuron', 'generate', '--max-tokens', '32', PROMPT], { cwd: clone, env: { ...env, FLASHNEURON_CACHE: join(work, 'clone-cache') } });
    // The tarball as published: packed from the clone's fresh build (no stale files of a working tree).
    const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--ignore-scripts', '--json', '--loglevel=error'], { cwd: clone, env, encoding: 'utf8' }));
    result.clone = { pack_bytes: packed.size, pack_files: packed.entryCount, source: ref ? `${ref} (${execFileSync('git', ['rev-parse', '--short', ref], { cwd: ROOT, encoding: 'utf8' }).trim()})` : 'working tree', npm_ci_ms: ciMs, node_modules_disk_bytes: nodeModules, npx_first_run: npx };
    console.log(JSON.stringify(result.clone));
  }
} finally {
  // npx's own copy of the clone (a link in its cache, keyed by the clone's path) goes too.
  const npxCache = join(process.env.npm_config_cache ?? join(homedir(), '.npm'), '_npx');
  for (const d of existsSync(npxCache) ? readdirSync(npxCache) : []) {
    try {
      if ((JSON.parse(readFileSync(join(npxCache, d, 'package.json'), 'utf8'))._npx?.packages ?? []).some((p) => p.startsWith(work))) rmSync(join(npxCache, d), { recursive: true, force: true });
    } catch { /* not one of ours */ }
  }
  rmSync(work, { recursive: true, force: true });
}

// Another revision's figures are a baseline beside the current ones.
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', ref ? 'install-baseline.json' : 'install.json'), JSON.stringify(result, null, 2) + '\n');
