// llama.cpp's own `llama-bench`, built once from the llama.cpp source that node-llama-cpp bundles
// (bench/node_modules/node-llama-cpp/llama/gitRelease.bundle, release named in
// llama.cpp.info.json) into the cache folder ($FLASHNEURON_CACHE, else $XDG_CACHE_HOME/flashneuron,
// else ~/.cache/flashneuron) under llama-bench/<tag>/: git clone from the bundle, cmake Release with
// GGML_NATIVE (the CPU backend only, static, no server/tests/examples), only the llama-bench target.
// Later calls reuse the binary while its build.json names the bundle's commit.
//   node bench/llama-bench.js                 builds (once) and prints where the binary is
//   node bench/llama-bench.js -- -m x.gguf …  builds (once) and runs llama-bench with these arguments
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { homedir, availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensurePeers, PEERS } from './peer-deps.js';

const LLAMA = join(PEERS, 'node-llama-cpp', 'llama');

export const CMAKE_FLAGS = ['-DCMAKE_BUILD_TYPE=Release', '-DGGML_NATIVE=ON', '-DLLAMA_CURL=OFF', '-DLLAMA_OPENSSL=OFF',
  '-DBUILD_SHARED_LIBS=OFF', '-DLLAMA_BUILD_TESTS=OFF', '-DLLAMA_BUILD_EXAMPLES=OFF', '-DLLAMA_BUILD_SERVER=OFF',
  '-DLLAMA_BUILD_APP=OFF', '-DGGML_CUDA=OFF', '-DGGML_VULKAN=OFF', '-DGGML_METAL=OFF'];

function cacheRoot() {
  return process.env.FLASHNEURON_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'flashneuron');
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.code === 'ETIMEDOUT' ? `${args.join(' ')}: over ${opts.timeout / 1000} s, killed` : r.error.message}`);
  if (r.signal) throw new Error(`${cmd} ${args.join(' ')}: killed by ${r.signal}${r.signal === 'SIGKILL' && opts.timeout ? ` (over ${opts.timeout / 1000} s)` : r.signal === 'SIGSEGV' ? ' (segmentation fault)' : ''}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status})\n${(r.stderr || '').slice(-4000)}`);
  return r.stdout ?? '';
}

/**
 * The CPU a GGML_NATIVE build is made for: its model and (Linux) a hash of its feature flags. The
 * cache may outlive the machine (a VM moved to another host): a different CPU rebuilds.
 */
export function cpuSignature() {
  let flags = '';
  try { flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1].trim().split(/\s+/).sort().join(' ') ?? ''; } catch { /* not Linux */ }
  return `${cpus()[0]?.model ?? 'unknown'} ${process.arch}${flags ? ` flags:${createHash('sha256').update(flags).digest('hex').slice(0, 12)}` : ''}`;
}

/** The bundled llama.cpp source: the git bundle, its release tag and commit. */
export function llamaCppSource() {
  ensurePeers();
  const bundle = join(LLAMA, 'gitRelease.bundle');
  const info = JSON.parse(readFileSync(join(LLAMA, 'llama.cpp.info.json'), 'utf8'));
  const commit = run('git', ['bundle', 'list-heads', bundle]).trim().split('\n').find((l) => l.endsWith(' HEAD'))?.split(' ')[0]
    ?? run('git', ['bundle', 'list-heads', bundle]).trim().split(/\s/)[0];
  const nodeLlamaCpp = JSON.parse(readFileSync(join(PEERS, 'node-llama-cpp', 'package.json'), 'utf8')).version;
  return { bundle, tag: info.tag, repo: info.llamaCppGithubRepo, commit, nodeLlamaCpp };
}

/** Where llama-bench lives (or will) for the bundled release. */
export function llamaBenchDir(src = llamaCppSource()) {
  return join(cacheRoot(), 'llama-bench', src.tag.replace(/[^\w.-]/g, '_'));
}

/**
 * Builds llama-bench once (clone from the bundle, cmake, the one target) and returns
 * { binary, dir, tag, commit, built: whether this call built it }.
 */
export function ensureLlamaBench({ log = (s) => console.error(s), jobs = availableParallelism() } = {}) {
  const src = llamaCppSource();
  const dir = llamaBenchDir(src);
  const binary = join(dir, 'build', 'bin', 'llama-bench');
  const stampFile = join(dir, 'build.json');
  const stamp = existsSync(stampFile) ? JSON.parse(readFileSync(stampFile, 'utf8')) : null;
  const cpu = cpuSignature();
  if (stamp?.commit === src.commit && stamp.cpu === cpu && existsSync(binary)) return { binary, dir, tag: src.tag, commit: src.commit, cpu, built: false };
  if (stamp && existsSync(binary)) log(`llama-bench: the build in ${dir} is for ${stamp.commit === src.commit ? `another CPU (${stamp.cpu})` : `commit ${stamp.commit}`}: rebuilding`);

  log(`llama-bench: building llama.cpp ${src.tag} (${src.commit.slice(0, 10)}, bundled with node-llama-cpp ${src.nodeLlamaCpp}) into ${dir}, once`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, '..'), { recursive: true });
  run('git', ['clone', '--quiet', src.bundle, dir]);
  run('git', ['-C', dir, '-c', 'advice.detachedHead=false', 'checkout', '--quiet', src.commit]);
  const ninja = spawnSync('ninja', ['--version']).status === 0;
  const t0 = Date.now();
  run('cmake', ['-S', dir, '-B', join(dir, 'build'), ...(ninja ? ['-G', 'Ninja'] : []), ...CMAKE_FLAGS], { stdio: ['ignore', 'ignore', 'pipe'] });
  run('cmake', ['--build', join(dir, 'build'), '--target', 'llama-bench', '-j', String(jobs)], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (!existsSync(binary)) throw new Error(`llama-bench: the build finished but ${binary} is missing`);
  writeFileSync(stampFile, JSON.stringify({ tag: src.tag, repo: src.repo, commit: src.commit, cpu, node_llama_cpp: src.nodeLlamaCpp, cmake_flags: CMAKE_FLAGS,
    generator: ninja ? 'Ninja' : 'default', build_seconds: Math.round((Date.now() - t0) / 1000), built_at: new Date().toISOString() }, null, 2) + '\n');
  log(`llama-bench: built in ${Math.round((Date.now() - t0) / 1000)} s: ${binary}`);
  return { binary, dir, tag: src.tag, commit: src.commit, cpu, built: true };
}

/**
 * Runs llama-bench on one GGUF and returns its JSON rows (one per test: pp and/or tg), each with
 * n_threads, n_prompt, n_gen, avg_ts, stddev_ts, samples_ts. threads: a number, or undefined for
 * llama-bench's own default (the physical cores).
 */
export function llamaBench(binary, gguf, { threads, nGen = 128, nPrompt = 0, reps = 5, extra = [], timeoutMs = 180_000 } = {}) {
  const args = ['-m', gguf, '-o', 'json', '-n', String(nGen), '-p', String(nPrompt), '-r', String(reps), ...(threads ? ['-t', String(threads)] : []), ...extra];
  const out = run(binary, args, { timeout: timeoutMs, killSignal: 'SIGKILL' });
  return JSON.parse(out.slice(out.indexOf('[')));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const b = ensureLlamaBench();
  const sep = process.argv.indexOf('--');
  if (sep < 0) {
    console.log(JSON.stringify({ binary: b.binary, tag: b.tag, commit: b.commit, built: b.built }));
  } else {
    const r = spawnSync(b.binary, process.argv.slice(sep + 1), { stdio: 'inherit' });
    process.exit(r.status ?? 1);
  }
}
