// The command line is strict: every option comes from one table (src/node/args.ts) with its range
// or choices, and whatever is given, the CLI does the right thing or prints one line on stderr
// naming the problem and exits non-zero. Also: stdin prompts, Ctrl-C (130), a full context,
// train-predictor never replacing the shipped predictor, stale temporaries, busy ports.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { loadModel, DEFAULT_MODEL, predictorPath } from '../dist/src/index.js';
import { COMMANDS, optionsOf, accepts } from '../dist/src/node/args.js';
import { trainedPredictorPath } from '../dist/src/node/predictor-file.js';
import { describeRange, RANGES } from '../dist/src/core/options.js';
import { ROOT, golden, modelDir } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';
import { inParallel } from './helpers/parallel.js';

after(cleanupTmp);
const BIN = join(ROOT, 'bin', 'flashneuron.js');
/** Above Linux's largest pid_max (2^22): signal 0 to it always fails with ESRCH. */
const DEAD_PID = 2 ** 22 + 1;

let env;
before(() => { env = { ...process.env, FLASHNEURON_CACHE: tmpDir('argscache') }; });

/**
 * Runs the CLI (or another script) with `input` on stdin; `onStdout(child)` is called at the
 * first chunk of stdout. Resolves to { code, signal, stdout, stderr }.
 */
function run(args, { input, onStdout, script = BIN, nodeArgs = [], extraEnv = {} } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...nodeArgs, script, ...args], { env: { ...env, ...extraEnv }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '', stderr = '', first = true;
    p.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; if (first && onStdout) { first = false; onStdout(p); } });
    p.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    p.on('error', reject);
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    p.stdin.end(input ?? '');
  });
}
const cli = (...args) => run(args);

/** Exit code `code`, nothing on stdout, one line on stderr matching `re`. */
function refused(r, code, re, what) {
  assert.equal(r.code, code, `${what}: exit ${r.code}, stderr ${r.stderr}`);
  assert.equal(r.stdout, '', what);
  assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: more than one line: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `${what}: a stack`);
  assert.match(r.stderr, re, what);
}

const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const sha = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('command line: the option table', function () {
  it('refuses every out-of-range or malformed number, naming the flag and its range (exit 2)', async () => {
    const cases = [
      ['generate', '--max-tokens', '-1', 'an integer ≥ 1'], ['generate', '--max-tokens', '1.5', 'an integer ≥ 1'],
      ['generate', '-n', '0', 'an integer ≥ 1'], ['generate', '--context', '3.7', 'an integer ≥ 1'],
      ['generate', '--context', '-5', 'an integer ≥ 1'], ['generate', '-c', '1e2', 'an integer ≥ 1'],
      ['generate', '--top-k', '-5', 'an integer ≥ 0'], ['generate', '--top-k', 'many', 'an integer ≥ 0'],
      ['generate', '--hybrid-share', '2', 'a number from 0 to 1'], ['generate', '--temperature', '-1', 'a number ≥ 0'],
      ['generate', '--temperature', 'NaN', 'a number ≥ 0'], ['generate', '--temperature', 'Infinity', 'a number ≥ 0'],
      ['generate', '--top-p', '1.5', 'a number > 0 and ≤ 1'], ['generate', '--top-p', '0', 'a number > 0 and ≤ 1'],
      ['generate', '--seed', '1.5', 'an integer from 0 to 4294967295'], ['generate', '-s', '-1', 'an integer from 0 to 4294967295'],
      ['generate', '--threshold', '2', 'a number > 0 and < 1'], ['generate', '--predictor-rank', '0', 'an integer from 1 to 4096'],
      ['generate', '--window', '0', 'an integer from 1 to 16777215'], ['generate', '--window', '2.5', 'an integer from 1 to 16777215'],
      ['generate', '--queue-depth', '0', 'an integer from 1 to 4096'], ['generate', '-t', '0', 'an integer from 1 to 256'],
      ['generate', '--threads', '0x10', 'an integer from 1 to 256'],
      ['perplexity', '--stride', '0', 'an integer ≥ 1'], ['train-predictor', '--epochs', '-1', 'an integer from 0 to 1000'],
      ['train-predictor', '--rank', '0', 'an integer from 1 to 4096'], ['train-predictor', '--recall', '1', 'a number > 0 and < 1'],
      ['serve', '--port', '70000', 'an integer from 0 to 65535'], ['serve', '--max-body', '0', 'an integer ≥ 1'],
      ['probe', '--seconds', '0', 'a number > 0 and ≤ 600'], ['synth', '--seed', '-3', 'an integer from 0 to 4294967295'],
    ];
    // Each a process that stops at its arguments: they run at once, one per core.
    const runs = await inParallel(cases, ([cmd, flag, v]) => cli(cmd, flag, v, 'x'));
    cases.forEach(([cmd, flag, v, range], i) => {
      refused(runs[i], 2, new RegExp(`^flashneuron ${cmd}: ${esc(flag)}( \\(--[a-z-]+\\))? must be .*${esc(range)}.*\\(got "${esc(v)}"\\)`), `${cmd} ${flag} ${v}`);
    });
  });

  it('enum options list their choices; a flag that needs a value says what it takes', async () => {
    const enums = [['generate', '--mode', 'turbo', 'dense, naive, hybrid or sparse'], ['generate', '--io', 'mmap', 'wasi, async or thread'],
      ['generate', '--kv', 'f8', 'f32 or f16'], ['generate', '--device', 'tpu', 'cpu, gpu or auto'], ['convert', '--dtype', 'f8', 'f32, f16, bf16, int8 or int4'],
      ['generate', '--predictor-dtype', 'int4', 'q8_0 or f16'], ['synth', '--shape', 'gpt-5', 'opt-125m']];
    const values = [[['generate', 'x', '--max-tokens'], /--max-tokens needs a value: an integer ≥ 1/, 'missing value'],
      [['generate', '--json=yes', 'x'], /--json takes no value/, 'flag with a value'], [['generate', '--model', '--json', 'x'], /--model needs a value \(got the option --json\)/, 'forgotten value']];
    const runs = await inParallel([...enums.map(([cmd, flag, v]) => [cmd, flag, v, 'x']), ...values.map(([args]) => args)], (args) => cli(...args));
    enums.forEach(([cmd, flag, v, choices], i) => refused(runs[i], 2, new RegExp(`${esc(flag)} must be .*${esc(choices)}.*\\(got "${esc(v)}"\\)`), `${cmd} ${flag}`));
    values.forEach(([, re, what], i) => refused(runs[enums.length + i], 2, re, what));
  });

  it('--help of every command lists every option with its range or choices', async () => {
    const helps = await inParallel(Object.keys(COMMANDS), (name) => cli(name, '--help'));
    for (const [i, [name, spec]] of Object.entries(COMMANDS).entries()) {
      const r = helps[i];
      assert.equal(r.code, 0, name);
      assert.match(r.stdout, new RegExp(`^Usage: flashneuron ${name}`));
      const text = r.stdout.replace(/\s+/g, ' ');
      for (const [opt, o] of Object.entries(optionsOf(spec))) {
        assert.ok(text.includes(`--${opt}`), `${name} --help lacks --${opt}`);
        if (o.short) assert.ok(text.includes(`-${o.short}, --${opt}`), `${name} --help lacks -${o.short}`);
        if (o.kind === 'enum') assert.ok(o.choices.every((c) => text.includes(c)), `${name} --help lacks a choice of --${opt}`);
        else if (accepts(o)) assert.ok(text.includes(accepts(o)), `${name} --help lacks the range of --${opt}: ${accepts(o)}`);
      }
    }
  });

  it('unknown options: a suggestion for near misses, and an unknown -x is an error, never the prompt', async () => {
    const unknown = [[['generate', '--max-token', '5', 'x'], /unknown option --max-token; did you mean --max-tokens\?/, 'near miss'],
      [['generate', '--temprature', '0', 'x'], /did you mean --temperature\?/, 'typo'],
      [['tokenize', '--port', '3', 'x'], /unknown option --port \(serve takes it, tokenize does not\)/, 'other command'],
      ...['-x', '-5', '-q'].map((s) => [['generate', s, 'Hello'], new RegExp(`unknown option ${s} .*goes after --`), s]),
      [['generat', 'x'], /unknown command "generat"; did you mean generate\?/, 'command']];
    const runs = await inParallel(unknown, ([args]) => cli(...args));
    unknown.forEach(([, re, what], i) => refused(runs[i], 2, re, what));
    // after -- a text that starts with "-" is the prompt
    const r = await cli('tokenize', '--', '-5 degrees');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), JSON.parse((await cli('tokenize', '-p', '-5 degrees')).stdout));
  });

  it('llama.cpp-style aliases -m -n -p -c -s -t give what the long options give; --version', async () => {
    const p = golden('llama-relu-mini').prompts[0];
    const long = await cli('generate', '--model', modelDir('llama-relu-mini'), '--max-tokens', '6', '--seed', '7', '--context', '64', '--threads', '2', '--json', '--no-stop', p.text);
    const short = await cli('generate', '-m', modelDir('llama-relu-mini'), '-n', '6', '-s', '7', '-c', '64', '-t', '2', '--json', '--no-stop', '-p', p.text);
    const glued = await cli('generate', `-m${modelDir('llama-relu-mini')}`, '-n6', '-s7', '-c64', '-t2', '--json', '--no-stop', '-p', p.text);
    for (const r of [long, short, glued]) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(short.stdout).ids, JSON.parse(long.stdout).ids);
    assert.deepEqual(JSON.parse(glued.stdout).ids, JSON.parse(long.stdout).ids);
    assert.equal(JSON.parse(long.stdout).ids.length, 6);
    refused(await cli('generate', '-p', 'a', 'b'), 2, /give the text once/, 'prompt twice');
    const v = await cli('--version');
    assert.equal(v.code, 0);
    assert.equal(v.stdout, `flashneuron ${JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version}\n`);
  });

  it('"-" (or -p -) reads the prompt from stdin', async () => {
    const p = golden('opt-relu-mini').prompts[0];
    const args = ['--json', '--temperature', '0', '--max-tokens', '4', '--no-stop'];
    const want = JSON.parse((await cli('generate', ...args, p.text)).stdout);
    for (const tail of [['-'], ['-p', '-']]) {
      const r = await run(['generate', ...args, ...tail], { input: p.text + '\n' });
      assert.equal(r.code, 0, r.stderr);
      const got = JSON.parse(r.stdout);
      assert.deepEqual([got.prompt_ids, got.ids], [want.prompt_ids, want.ids]);
    }
    const t = await run(['tokenize', '-'], { input: p.text });
    assert.deepEqual(JSON.parse(t.stdout), p.ids);
  });
});

describe('command line: memory budgets, the CLI and the API alike', function () {
  it('a bare number is refused (give a unit), a budget below the model\'s minimum is a clear error, with the API\'s words', async () => {
    // perplexity: its KV cache under a budget is the API's default (no job to size it to), so the messages match to the byte
    const text = join(tmpDir('memtext'), 't.txt');
    writeFileSync(text, 'The meaning of the word.');
    for (const [memory, re] of [['60', /memory budget "60" has no unit: give a share of the model \(60%\) or bytes with a unit \(600MB, 2GiB\)/],
      ['150%', /memory budget "150%" must be a share over 0% and at most 100%/], ['lots', /memory budget "lots" is neither bytes/],
      ['60B', /memory budget .* is too small for sparse mode.*give at least [\d.]+ MiB/]]) {
      const r = await cli('perplexity', '--memory', memory, text);
      refused(r, 1, re, `--memory ${memory}`);
      let api;
      await loadModel(undefined, { memory, cacheDir: env.FLASHNEURON_CACHE }).then((m) => m.close(), (e) => { api = e; });
      assert.ok(api, `the API accepted memory: ${memory}`);
      assert.match(api.message, re);
      assert.ok(r.stderr.includes(api.message), `CLI "${r.stderr.trim()}" vs API "${api.message}"`);
    }
  });

  it('a value out of range: the CLI and resolveOptions refuse it with the same range', async () => {
    for (const [flag, key, v, range] of [['--context', 'contextLength', -5, RANGES.contextLength], ['--predictor-rank', 'predictorRank', 0, RANGES.predictorRank],
      ['--queue-depth', 'queueDepth', 0, RANGES.queueDepth], ['--threshold', 'threshold', 2, RANGES.threshold], ['--hybrid-share', 'hybridShare', 2, RANGES.hybridShare]]) {
      const words = describeRange(range);
      refused(await cli('generate', flag, String(v), 'x'), 2, new RegExp(`${esc(flag)} must be ${esc(words)}`), flag);
      await assert.rejects(loadModel(undefined, { [key]: v, cacheDir: env.FLASHNEURON_CACHE }), new RegExp(`${key} must be ${esc(words)} \\(got ${v}\\)`));
    }
  });
});

describe('command line: runs that stop early', function () {
  it('Ctrl-C during generate: the text so far stays printed, exit code 130', async () => {
    const r = await run(['generate', '--no-stop', '--temperature', '0', '--max-tokens', '100000', 'The meaning of the word'], { onStdout: (p) => p.kill('SIGINT') });
    assert.equal(r.code, 130, r.stderr);
    assert.ok(r.stdout.trim().length > 0, 'the answer so far is printed');
    assert.doesNotMatch(r.stderr, /context .* is full/);
  });

  it('a full context stops generate with one line on stderr (finish_reason "context" in --json)', async () => {
    const r = await cli('generate', '--context', '8', '--max-tokens', '20', '--no-stop', '--temperature', '0', 'The meaning of');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^flashneuron: stopped after 4 of 20 tokens: the context \(8 tokens, 4 of them the prompt\) is full; --context up to 512 gives more room$/m);
    const j = await cli('generate', '--json', '-c', '8', '-n', '20', '--no-stop', '--temperature', '0', 'The meaning of');
    assert.equal(JSON.parse(j.stdout).finish_reason, 'context');
    const fits = await cli('generate', '--json', '-n', '3', '--no-stop', 'The meaning of');
    assert.equal(fits.stderr, '');
    assert.equal(JSON.parse(fits.stdout).finish_reason, 'length');
  });

  it('perplexity of an empty or blank file is an error, not "ppl": null', async () => {
    const dir = tmpDir('pplempty');
    for (const [name, text] of [['empty.txt', ''], ['blank.txt', ' \n\n ']]) {
      writeFileSync(join(dir, name), text);
      refused(await cli('perplexity', join(dir, name)), 1, new RegExp(`${esc(join(dir, name))} is empty`), name);
    }
    refused(await run(['perplexity', '-'], { input: '' }), 1, /stdin is empty/, 'stdin');
  });
});

describe('train-predictor: into the cache, never over the shipped predictor', function () {
  it('writes into the cache, loading uses it first, an existing file needs --force; cache rm goes back to the shipped one', async () => {
    const shipped = join(DEFAULT_MODEL, 'flashneuron.fnpred'), before = sha(shipped);
    const dir = tmpDir('trainp'), text = join(dir, 'text.txt');
    writeFileSync(text, golden('opt-relu-mini').activations.map((a) => a.text).join('\n').repeat(2));
    const train = ['train-predictor', '--rank', '8', '--epochs', '0', '--max-tokens', '300', '--json'];
    // Two trainings, into the cache and (--force) over a file of ours, run at once: the image is
    // converted into the cache first, so that neither writes anything the other reads.
    (await loadModel(DEFAULT_MODEL, { cacheDir: env.FLASHNEURON_CACHE })).close();
    const mine = join(dir, 'mine.fnpred');
    writeFileSync(mine, 'old');
    writeFileSync(`${mine}.tmp-${DEAD_PID}`, 'left by a killed run');
    const forcing = cli(...train, '--out', mine, '--force', text);
    const r = await cli(...train, text);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout).path;
    assert.equal(out, trainedPredictorPath(DEFAULT_MODEL, { cacheDir: env.FLASHNEURON_CACHE }));
    assert.ok(out.startsWith(env.FLASHNEURON_CACHE) && existsSync(out));
    assert.equal(sha(shipped), before, 'the shipped predictor is untouched');
    // predictorPath (what loading asks) finds the trained one first
    const saved = process.env.FLASHNEURON_CACHE;
    process.env.FLASHNEURON_CACHE = env.FLASHNEURON_CACHE;
    try { assert.equal(predictorPath(DEFAULT_MODEL), out); } finally { if (saved === undefined) delete process.env.FLASHNEURON_CACHE; else process.env.FLASHNEURON_CACHE = saved; }
    assert.equal((await cli('generate', '--memory', '60%', '-n', '2', 'Hi')).code, 0);
    assert.deepEqual(JSON.parse((await cli('cache', 'ls', '--json')).stdout).predictors.map((p) => p.path), [out]);

    // an existing file: refused before training, without --force, in the cache or at --out
    refused(await cli(...train, text), 1, new RegExp(`${esc(out)} exists .*--force replaces it`), 'cache');
    refused(await cli(...train, '--out', shipped, text), 1, new RegExp(`${esc(shipped)} exists: --force replaces it`), 'shipped');
    const forced = await forcing;
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(readFileSync(mine, 'utf8').slice(0, 3), 'old');
    assert.ok(!existsSync(`${mine}.tmp-${DEAD_PID}`), 'the stale temporary went');
    assert.equal(sha(shipped), before);

    // a damaged trained predictor shows it is the one loaded; cache rm brings the shipped one back
    writeFileSync(out, 'not a predictor');
    refused(await cli('generate', '--memory', '60%', 'Hi'), 1, new RegExp(esc(out)), 'damaged');
    const rm = await cli('cache', 'rm', DEFAULT_MODEL);
    assert.equal(rm.code, 0, rm.stderr);
    assert.ok(!existsSync(out));
    assert.equal((await cli('generate', '--memory', '60%', '-n', '2', 'Hi')).code, 0);
  });
});

describe('stale temporaries and busy ports', function () {
  it('a killed writer\'s .tmp-PID files are removed when the cache or output folder is next used; live ones and others\' stay', async () => {
    const cache = tmpDir('stalecache');
    mkdirSync(cache, { recursive: true });
    const live = `x.fnimg.tmp-${process.pid}`;
    for (const f of [`opt-relu-mini-1.fnimg.tmp-${DEAD_PID}`, `a.fnpred.tmp-${DEAD_PID}`, live]) writeFileSync(join(cache, f), 'partial');
    const r = await run(['tokenize', 'Hi'], { extraEnv: { FLASHNEURON_CACHE: cache } });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readdirSync(cache).filter((f) => f.includes('.tmp-')), [live]);

    const outDir = tmpDir('staleout');
    const others = `notes.txt.tmp-${DEAD_PID}`;
    for (const f of [`llama.fnimg.tmp-${DEAD_PID}`, others]) writeFileSync(join(outDir, f), 'partial');
    const c = await cli('convert', modelDir('llama-relu-mini'), join(outDir, 'llama.fnimg'));
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(readdirSync(outDir).filter((f) => f.includes('.tmp-')), [others]);
  });

  it('serve and the demo server on a busy port: one line, exit 1', async () => {
    const busy = createServer();
    await new Promise((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = busy.address().port;
    try {
      refused(await cli('serve', '--port', String(port)), 1, new RegExp(`^flashneuron serve: port ${port} is in use \\(--port N to choose another\\)$`, 'm'), 'serve');
      // as npm run demo starts it
      refused(await run(['--port', String(port)], { script: join(ROOT, 'web', 'server.js'), nodeArgs: ['--disable-warning=ExperimentalWarning'] }), 1,
        new RegExp(`port ${port} is in use \\(--port N to choose another\\)`), 'demo');
    } finally { busy.close(); }
  });
});
