// Runs one fuzz case in a child process with a hard time limit and a memory cap, and classifies
// what came back:
//   correct        exit 0, the reference's prompt ids and generated ids
//   changed-valid  exit 0, other ids, from a mutation that makes another valid input
//   clean-error    exit 1 or 2, one line on stderr (a "Usage:" line may follow), no stack trace,
//                  none of TypeError / RangeError / RuntimeError / unreachable / out of bounds, and
//                  not a JavaScript or wasm built-in error underneath (the children run with
//                  FLASHNEURON_DEBUG=1, so the CLI appends the error's stack: its class tells)
//   hang           still running at the time limit (killed)
//   crash          a signal, an abort, another exit code, an internal error or stack trace, the
//                  resident memory past the cap, or more than one line of error
//   garbage        exit 0 with other ids (or unreadable output) from a mutation that must be refused
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const INTERNAL = /TypeError|RangeError|ReferenceError|RuntimeError|unreachable|memory access out of bounds|internal error|Maximum call stack|FATAL ERROR|Aborted|Segmentation fault/;
const STACK = /^\s+at .+[:(]/m;
const BUILTIN = /^(TypeError|RangeError|ReferenceError|SyntaxError|EvalError|URIError|InternalError|AggregateError|RuntimeError|CompileError|LinkError)\b/;

/**
 * Splits stderr into the lines a user sees and the stack FLASHNEURON_DEBUG appends after them:
 * { lines, head } where head is the stack's first line ("TypeError: …"), if there is a stack.
 */
export function splitStack(stderr) {
  const all = stderr.split('\n');
  const at = all.findIndex((l) => /^\s+at /.test(l));
  let start = at;
  if (at > 0) {
    // The stack's header: the last line before the frames that starts with a class name and a colon (its message may span lines).
    for (let i = at - 1; i >= 1; i--) if (/^[A-Za-z_$][\w$.]*(?: \[[\w_]+\])?:/.test(all[i])) { start = i; break; }
  }
  const shown = start > 0 ? all.slice(0, start) : all;
  return { lines: shown.map((l) => l.trimEnd()).filter((l) => l && !/^Usage: /.test(l)), head: start > 0 ? all[start] : undefined, frame: at > 0 ? all[at].trim() : undefined };
}

/** Resident set size of `pid` in bytes (Linux /proc), or 0 where it cannot be read. */
function rss(pid) {
  try { return 1024 * Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0); } catch { return 0; }
}

/**
 * Runs `node [--max-old-space-size=heapMb] argv` in `cwd` with `env`; kills it past `timeoutMs`
 * or past `rssBytes` resident. Resolves { code, signal, stdout, stderr, ms, timedOut, peakRss, overMemory }.
 */
export function runChild(argv, { env, cwd, timeoutMs, heapMb = 512, rssBytes = 2 ** 30 }) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [`--max-old-space-size=${heapMb}`, ...argv], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '', timedOut = false, overMemory = false, peakRss = 0;
    const cap = 1 << 20;
    child.stdout.setEncoding('utf8').on('data', (d) => { if (stdout.length < cap) stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { if (stderr.length < cap) stderr += d; });
    const kill = () => { try { child.kill('SIGKILL'); } catch { /* gone */ } };
    const timer = setTimeout(() => { timedOut = true; kill(); }, timeoutMs);
    const poll = setInterval(() => {
      const m = rss(child.pid);
      if (m > peakRss) peakRss = m;
      if (m > rssBytes) { overMemory = true; kill(); }
    }, 25);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearInterval(poll);
      resolve({ code, signal, stdout, stderr, ms: Math.round(performance.now() - t0), timedOut, overMemory, peakRss });
    });
  });
}

/** The ids a run printed (generate --json), or undefined when stdout is not that. */
export function outputIds(stdout) {
  try {
    const o = JSON.parse(stdout);
    if (!Array.isArray(o.prompt_ids) || !Array.isArray(o.ids)) return undefined;
    return { prompt_ids: o.prompt_ids, ids: o.ids };
  } catch { return undefined; }
}

/** { outcome, cause } for a finished run against the reference ids; `legit` from the mutation. */
export function classify(run, reference, legit) {
  if (run.timedOut) return { outcome: 'hang', cause: `no exit within ${run.ms} ms` };
  if (run.overMemory) return { outcome: 'crash', cause: `resident memory past the cap (${(run.peakRss / 2 ** 20).toFixed(0)} MiB)` };
  if (run.signal) return { outcome: 'crash', cause: `killed by ${run.signal}` };
  if (run.code !== 0) {
    const { lines, head, frame } = splitStack(run.stderr);
    if (head && BUILTIN.test(head)) return { outcome: 'crash', cause: `${head.slice(0, 200)} ${frame ?? ''}` };
    const shown = lines.join('\n');
    const internal = INTERNAL.exec(shown) ?? (STACK.test(shown) ? ['stack trace'] : null);
    if (internal) return { outcome: 'crash', cause: firstLine(shown, internal[0]) };
    if (run.code !== 1 && run.code !== 2) return { outcome: 'crash', cause: `exit code ${run.code}: ${lines[0] ?? ''}` };
    if (lines.length !== 1) return { outcome: 'crash', cause: `${lines.length} lines on stderr: ${lines.slice(0, 2).join(' | ').slice(0, 200)}` };
    return { outcome: 'clean-error', cause: lines[0] };
  }
  const internal = INTERNAL.exec(run.stderr) ?? (STACK.test(run.stderr) ? ['stack trace'] : null);
  if (internal) return { outcome: 'crash', cause: `exit 0 with ${firstLine(run.stderr, internal[0])}` };
  const got = outputIds(run.stdout);
  if (!got) return { outcome: 'garbage', cause: `exit 0 without the JSON result: ${run.stdout.slice(0, 120)}` };
  if (same(got, reference)) return { outcome: 'correct', cause: '' };
  const diff = `ids ${JSON.stringify(got.ids)} (prompt ${got.prompt_ids.length} ids) vs ${JSON.stringify(reference.ids)} (prompt ${reference.prompt_ids.length})`;
  return legit ? { outcome: 'changed-valid', cause: diff } : { outcome: 'garbage', cause: diff };
}

const same = (a, b) => JSON.stringify(a.prompt_ids) === JSON.stringify(b.prompt_ids) && JSON.stringify(a.ids) === JSON.stringify(b.ids);

function firstLine(text, hit) {
  const line = text.split('\n').find((l) => l.includes(hit)) ?? text.split('\n')[0];
  return line.trim().slice(0, 240);
}
