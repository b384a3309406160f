#!/usr/bin/env node
// CI size check: every .ts file under src/ and assembly/ (generated ones such as
// src/gpu/shaders.ts included; .wgsl and other files are not counted) has at most MAX lines.
// Usage: node scripts/check-lines.js [--max N] [DIR ...]   (defaults: 600, src assembly)
// Prints one summary line and exits 0, or lists the offenders (longest first) and exits 1.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
let max = 600;
const dirs = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--max') max = Number(args[++i]);
  else dirs.push(args[i]);
}
if (!Number.isInteger(max) || max < 1) {
  console.error('check-lines: --max takes a positive integer');
  process.exit(2);
}
if (!dirs.length) dirs.push('src', 'assembly');

/** .ts files under dir, recursively (a missing dir has none). */
function tsFiles(dir) {
  let entries;
  try { entries = readdirSync(dir, { withFileTypes: true }); } catch (e) { if (e.code === 'ENOENT') return []; throw e; }
  const out = [];
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== 'node_modules') out.push(...tsFiles(p)); }
    else if (e.isFile() && e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Lines as `wc -l` would count them, plus a last line without its newline. */
function lineCount(text) {
  if (!text.length) return 0;
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return text.endsWith('\n') ? n : n + 1;
}

const files = dirs.flatMap((d) => tsFiles(join(ROOT, d)));
const over = files.map((f) => ({ f: relative(ROOT, f), n: lineCount(readFileSync(f, 'utf8')) }))
  .filter((x) => x.n > max).sort((a, b) => b.n - a.n);
if (over.length) {
  console.error(`check-lines: ${over.length} of ${files.length} .ts files under ${dirs.join(', ')} have more than ${max} lines:`);
  for (const { f, n } of over) console.error(`  ${String(n).padStart(6)}  ${f}`);
  process.exit(1);
}
console.log(`check-lines: ${files.length} .ts files under ${dirs.join(', ')}, none over ${max} lines`);
