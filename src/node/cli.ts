// The flashneuron command line. Its options, their ranges and the help live in args.ts (one
// table, one parser); this file runs the commands. Contract (other tools rely on it; see README):
//   flashneuron generate [--model PATH] [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--json] PROMPT
//   flashneuron tokenize [--model PATH] [--no-special] TEXT
//   flashneuron perplexity [--model PATH] [--context N] [--stride S] FILE
//   flashneuron train-predictor [--model PATH] [--rank R] [--out FILE] [--force] FILE
//   flashneuron probe [--file F]
//   flashneuron convert HF_DIR OUT
// Errors go to stderr as one line with a non-zero exit code: 1 the model or input, 2 the command
// line, 130 interrupted.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { cacheDir, clearCache, listCache, listTrained, removeFromCache, resolveModelPath, trainedPredictorPath } from './cache.js';
import { resolveImage, loadModel, loadTokenizer, DEFAULT_MODEL } from './load.js';
import type { Model } from '../core/model.js';
import { exportGGUF } from './gguf-file.js';
import type { Tokenizer } from '../core/tokenizer.js';
import type { Progress } from '../format/image.js';
import { convertHF, readImageHeaderFile } from './image-file.js';
import { modelFingerprint, predictorBytes } from '../predictor/format.js';
import { trainPredictor } from '../predictor/train.js';
import { loadPredictor, predictorPath, savePredictor } from './predictor-file.js';
import { probeDevice, saveProfile } from './probe.js';
import { synthImage } from './synth-file.js';
import type { DType } from '../format/dtype.js';
import type { RunOptions } from '../core/options.js';
import { startServer } from './serve.js';
import { calibrateCommand } from './calibrate.js';
import { ChatSession, chatRepl } from './chat-repl.js';
import { closest, helpText, parse, TOP_HELP, UsageError, type Flags } from './args.js';

/** A command's body: its positional arguments and checked flags; a number is the exit code. */
type Run = (args: string[], flags: Flags) => Promise<number | void>;

/** The exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it. */
const INTERRUPTED = 130;

const commands: Record<string, Run> = {
  async generate(args, f) {
    const prompt = await promptOf(args, f, 'generate needs a PROMPT');
    // Under a budget the KV cache is sized to the job: the prompt plus the tokens asked for.
    let jobTokens: number | undefined, tokenizer: Tokenizer | undefined;
    if (f.memory !== undefined && f.context === undefined) {
      tokenizer = await loadTokenizer(str(f.model) ?? DEFAULT_MODEL, { onProgress: bar('convert') });
      jobTokens = tokenizer.encode(prompt).length + (num(f['max-tokens']) ?? 128);
    }
    const model = await load(f, { tokenizer, jobTokens });
    const ac = new AbortController();
    const stop = () => ac.abort();
    process.once('SIGINT', stop);
    try {
      const it = model.generate(prompt, {
        maxTokens: num(f['max-tokens']), temperature: num(f.temperature), topK: num(f['top-k']), topP: num(f['top-p']),
        seed: num(f.seed), stopAtEos: !f['no-stop'], signal: ac.signal,
      });
      for (;;) {
        const r = await it.next();
        if (!r.done) { if (!f.json) process.stdout.write(r.value.text); continue; }
        const c = r.value, check = model.predictorCheck();
        if (f.json) process.stdout.write(JSON.stringify({ ...c, ...(check ? { predictor_check: check } : {}), options: model.options }) + '\n');
        else {
          process.stdout.write('\n');
          const s = c.stats;
          const io = s.mode === 'dense' ? '' : `, ${s.mode}: ${(s.bytes_read_per_token / 1024).toFixed(1)} KiB read/token (${(100 * s.ffn_read_fraction).toFixed(1)}% of FFN), io ${s.io_ms_per_token} / mem ${s.mem_ms_per_token} / compute ${s.compute_ms_per_token} ms, ${(s.resident_bytes_peak / 2 ** 20).toFixed(1)} MiB held${s.resident_dtype === 'q8_0' ? ' (resident matrices as Q8_0)' : ''}`;
          process.stderr.write(`[${s.tokens} tokens, ${s.ms_per_token} ms/token, ${s.tokens_per_s} tokens/s, prompt ${s.prompt_tokens} tokens in ${s.prompt_ms} ms, ${ranOn(s.device, s.simd, s.threads)}${io}]\n`);
          if (check) process.stderr.write(check.map((x) => `layer ${x.layer}: recall ${x.recall}, predicted/true ${x.over_prediction}`).join('\n') + '\n');
        }
        if (c.finish_reason === 'context') {
          const ctx = model.engine.contextLength, max = model.config.maxPositions;
          process.stderr.write(`flashneuron: stopped after ${c.ids.length} of ${num(f['max-tokens']) ?? 128} tokens: the context (${ctx} tokens, ${c.prompt_ids.length} of them the prompt) is full` +
            `${ctx < max ? `; --context up to ${max} gives more room` : ''}\n`);
        }
        return ac.signal.aborted ? INTERRUPTED : 0;
      }
    } finally {
      process.off('SIGINT', stop);
      model.close();
    }
  },

  async chat(args, f) {
    if (args.length) throw new UsageError(`chat takes no arguments (got "${args.join(' ')}"); type the turns at its prompt`);
    const template = str(f['chat-template']) === undefined ? undefined : readFileSync(str(f['chat-template'])!, 'utf8');
    const model = await load(f);
    let code: number;
    try {
      const session = new ChatSession(model, { system: str(f.system), template });
      code = await chatRepl(session, {
        stats: !!f.stats,
        generate: { maxTokens: num(f['max-tokens']), temperature: num(f.temperature), topK: num(f['top-k']), topP: num(f['top-p']), seed: num(f.seed), stopAtEos: !f['no-stop'] },
      });
    } finally { model.close(); }
    // The terminal's input stays open after the REPL leaves this way: exit at once.
    if (code) process.exit(code);
  },

  async serve(args, f) {
    if (args.length) throw new UsageError(`serve takes no arguments (got "${args.join(' ')}")`);
    const port = num(f.port) ?? 8080;
    const template = str(f['chat-template']);
    const chatTemplate = template === undefined ? undefined : readFileSync(template, 'utf8');
    const apiKey = str(f['api-key']) ?? (process.env.FLASHNEURON_API_KEY || undefined);
    const model = await load(f);
    const modelId = str(f['model-id']) ?? basename((str(f.model) ?? DEFAULT_MODEL).replace(/[\\/]+$/, ''));
    try {
      const srv = await startServer(model, { host: str(f.host), port, apiKey, modelId, chatTemplate, maxBody: num(f['max-body']) });
      process.stderr.write(`listening on ${srv.url} (model ${srv.modelId})\n`);
      await new Promise<void>((resolve) => { process.once('SIGINT', () => resolve()); process.once('SIGTERM', () => resolve()); });
      await srv.close();
    } finally { model.close(); }
  },

  async tokenize(args, f) {
    const text = await promptOf(args, f, 'tokenize needs TEXT');
    const model = await load(f);
    try {
      process.stdout.write(JSON.stringify(model.tokenize(text, { addSpecialTokens: !f['no-special'] })) + '\n');
    } finally { model.close(); }
  },

  async perplexity(args, f) {
    if (args.length !== 1) throw new UsageError('perplexity needs one FILE');
    const text = await textFile(args[0]);
    const model = await load(f);
    try {
      const r = await model.perplexity(text, { stride: num(f.stride), onProgress: bar('perplexity') });
      if (!(r.tokens > 0 && Number.isFinite(r.ppl))) throw new Error(`${args[0]} is too short to score: it gives no token after the BOS`);
      const out: Record<string, unknown> = { tokens: r.tokens, nll: round6(r.nll), ppl: round6(r.ppl) };
      if (f.json) { out.stats = r.stats; const c = model.predictorCheck(); if (c) out.predictor_check = c; out.options = model.options; }
      process.stdout.write(JSON.stringify(out) + '\n');
    } finally { model.close(); }
  },

  async 'train-predictor'(args, f) {
    if (args.length !== 1) throw new UsageError('train-predictor needs one FILE of text');
    const text = await textFile(args[0]);
    const spec = str(f.model) ?? DEFAULT_MODEL;
    // Keyed as loading asks (predictorPath): the folder, or the image a file runs as.
    const full = resolveModelPath(spec);
    const key = statSync(full).isDirectory() ? full : await resolveImage(full, { onProgress: bar('convert') });
    const out = str(f.out) ?? trainedPredictorPath(key);
    if (existsSync(out) && !f.force) {
      throw new Error(`${out} exists${f.out === undefined ? ' (a predictor trained earlier for this model)' : ''}: --force replaces it${f.out === undefined ? ', --out FILE writes elsewhere' : ''}`);
    }
    const model = await loadModel(spec, { onProgress: bar('load') });
    try {
      const p = await trainPredictor(model, text, {
        rank: num(f.rank), epochs: num(f.epochs), maxTokens: num(f['max-tokens']), targetRecall: num(f.recall), onProgress: bar('train'),
      });
      savePredictor(out, p);
      if (f.json) process.stdout.write(JSON.stringify({ path: out, bytes: predictorBytes(p), ...p.report }) + '\n');
      else {
        const used = f.out === undefined ? '; sparse mode uses it for this model ("flashneuron cache rm MODEL" removes it)' : '';
        process.stderr.write(`wrote ${out} (rank ${p.rank}, ${(predictorBytes(p) / 1024).toFixed(0)} KiB in memory, ${p.report.seconds.toFixed(0)} s)${used}\n`);
        process.stdout.write(`held-out text (${p.report.heldout_tokens} tokens):\n` + p.report.layers.map((L) =>
          `layer ${L.layer}: recall ${L.recall.toFixed(3)}, predicted/true ${L.ratio.toFixed(2)}, active ${(100 * L.true_share).toFixed(1)}%, predicted ${(100 * L.predicted_share).toFixed(1)}%`).join('\n') + '\n');
      }
    } finally { model.close(); }
  },

  async calibrate(args, f) {
    if (args.length !== 1) throw new UsageError('calibrate needs one FILE of text');
    if (f.sparsity === undefined) throw new UsageError('calibrate needs --sparsity S (the share of down_proj inputs to drop, e.g. 0.5)');
    await calibrateCommand(await textFile(args[0]), f, bar);
  },

  async 'export-gguf'(args, f) {
    if (args.length !== 1) throw new UsageError('export-gguf needs one OUT path');
    if (f.predictor !== undefined && !f.powerinfer) throw new UsageError('--predictor goes with --powerinfer');
    const path = str(f.model) ?? DEFAULT_MODEL;
    const image = await resolveImage(path, { onProgress: bar('convert') });
    let predictor;
    if (f.powerinfer) {
      const file = str(f.predictor) ?? predictorPath(statSync(path).isDirectory() ? path : image);
      predictor = loadPredictor(file, modelFingerprint(readImageHeaderFile(image)));
    }
    const r = exportGGUF(image, args[0], bar('export'), { predictor, downTransposed: !!f.powerinfer });
    process.stderr.write(`wrote ${args[0]}: ${r.tensors} tensors, ${(r.bytes / 2 ** 20).toFixed(1)} MiB\n`);
  },

  async synth(args, f) {
    if (args.length !== 1) throw new UsageError('synth needs one OUT path');
    const shape = str(f.shape);
    if (!shape) throw new UsageError('synth needs --shape');
    const dtype = dtypeOf(f.dtype) ?? 'f16';
    const h = synthImage(shape, args[0], { dtype, seed: num(f.seed), layout: f['no-bundle'] ? 'split' : 'bundled', onProgress: bar('synth') });
    process.stderr.write(`wrote ${args[0]} (${shape}, ${dtype}, ${(h.sections.at(-1)!.offset / 2 ** 30).toFixed(2)} GiB)\n`);
  },

  async probe(args, f) {
    if (args.length) throw new UsageError(`probe takes no arguments (got "${args.join(' ')}")`);
    const prof = await probeDevice({ file: str(f.file), seconds: num(f.seconds), onProgress: bar('probe') });
    if (!f['no-save']) saveProfile(prof);
    process.stdout.write(JSON.stringify(prof) + '\n');
  },

  async cache(args, f) {
    const [op, ...rest] = args;
    if (op === 'ls' && !rest.length) {
      const all = listCache(), trained = listTrained();
      if (f.json) { process.stdout.write(JSON.stringify({ dir: cacheDir(), images: all, predictors: trained }) + '\n'); return; }
      const total = all.reduce((a, e) => a + e.bytes, 0) + trained.reduce((a, t) => a + t.bytes, 0);
      for (const e of all) process.stdout.write(`${(e.bytes / 2 ** 20).toFixed(1).padStart(9)} MiB  ${basename(e.image)}  ${e.record ? `${e.record.kind} ${e.record.source}` : '(no record)'}\n`);
      for (const t of trained) process.stdout.write(`${(t.bytes / 2 ** 20).toFixed(1).padStart(9)} MiB  ${basename(t.path)}  trained predictor\n`);
      process.stdout.write(`${(total / 2 ** 20).toFixed(1).padStart(9)} MiB  in ${all.length} image${all.length === 1 ? '' : 's'} under ${cacheDir()}\n`);
    } else if (op === 'rm' && rest.length === 1) {
      const gone = removeFromCache(rest[0]);
      if (!gone.length) throw new Error(`nothing in the cache was made from ${rest[0]} (see flashneuron cache ls)`);
      process.stderr.write(gone.map((g) => `removed ${basename(g)}`).join('\n') + '\n');
    } else if (op === 'clear' && !rest.length) {
      const gone = clearCache(), trained = gone.filter((g) => g.endsWith('.fnpred')).length;
      process.stderr.write(`removed ${gone.length - trained} cached image(s)${trained ? ` and ${trained} trained predictor(s)` : ''}\n`);
    } else throw new UsageError('cache takes ls, rm MODEL_OR_IMAGE or clear');
  },

  async convert(args, f) {
    if (args.length !== 2) throw new UsageError('convert needs HF_DIR and OUT');
    const h = await convertHF(args[0], args[1], bar('convert'), { layout: f['no-bundle'] ? 'split' : 'bundled', dtype: dtypeOf(f.dtype) });
    process.stderr.write(`wrote ${args[1]}: ${h.config.architecture}, ${h.config.nLayers} layers, d=${h.config.hidden}, ffn=${h.config.ffn}, ${h.ffn.dtype}, bundle ${h.ffn.bundle_bytes} bytes\n`);
  },
};

async function load(f: Flags, job: { tokenizer?: Tokenizer; jobTokens?: number } = {}): Promise<Model> {
  if (f.window !== undefined && f['no-window']) throw new UsageError('--window and --no-window exclude each other');
  const model = await loadModel(str(f.model) ?? DEFAULT_MODEL, {
    ...runOptions(f), onProgress: bar('load'), tokenizer: job.tokenizer, jobTokens: job.jobTokens, predictorPath: str(f.predictor),
    thresholdsPath: str(f.thresholds), sparsity: num(f.sparsity),
    layout: f['no-bundle'] ? 'split' : undefined, check: f.check === true ? true : undefined,
  });
  for (const note of model.options?.notes ?? []) process.stderr.write(`flashneuron: ${note}\n`);
  if (f['check-predictor']) model.checkPredictor();
  return model;
}

/** The flash flags as the options every host passes to resolveOptions (src/core/options.ts). */
export function runOptions(f: Flags): RunOptions {
  return {
    memory: str(f.memory), mode: str(f.mode) as RunOptions['mode'],
    window: f['no-window'] ? 0 : f.window === 'lru' ? 'lru' : num(f.window), threshold: num(f.threshold),
    predictorRank: num(f['predictor-rank']), predictorDtype: str(f['predictor-dtype']) as RunOptions['predictorDtype'],
    residentDtype: str(f['resident-dtype']) as RunOptions['residentDtype'], hybridShare: num(f['hybrid-share']),
    contextLength: num(f.context), kvDtype: str(f.kv) as RunOptions['kvDtype'],
    io: str(f.io) as RunOptions['io'], direct: f.direct === true ? true : undefined, queueDepth: num(f['queue-depth']),
    device: str(f.device) as RunOptions['device'], verify: str(f.verify) as RunOptions['verify'], threads: num(f.threads),
    teal: f.teal === true ? true : undefined,
  };
}

const str = (v: Flags[string]) => (typeof v === 'string' ? v : undefined);
const num = (v: Flags[string]) => (typeof v === 'number' ? v : undefined);
const round6 = (x: number) => Math.round(x * 1e6) / 1e6;

/** --dtype: int8 and int4 are GGUF's Q8_0 and Q4_0 (the parser checked the name). */
const dtypeOf = (v: Flags[string]): DType | undefined => (typeof v === 'string' ? (({ int8: 'q8_0', int4: 'q4_0' } as Record<string, DType>)[v] ?? v as DType) : undefined);

/** All of stdin as text. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The prompt of generate / tokenize: -p TEXT or the arguments; "-" reads stdin (a trailing newline dropped). */
async function promptOf(args: string[], f: Flags, missing: string): Promise<string> {
  if (f.prompt !== undefined && args.length) throw new UsageError(`give the text once: -p TEXT or as arguments (got both: "${args.join(' ')}")`);
  const text = str(f.prompt) ?? args.join(' ');
  if (text === '-') return (await readStdin()).replace(/\r?\n$/, '');
  if (!text) throw new UsageError(missing);
  return text;
}

/** A text FILE ("-": stdin); an empty one is refused before any model is loaded. */
async function textFile(file: string): Promise<string> {
  const text = file === '-' ? await readStdin() : readFileSync(file, 'utf8');
  if (!text.trim()) throw new Error(`${file === '-' ? 'stdin' : file} is empty: there is no text to use`);
  return text;
}

/** A progress bar on stderr, drawn only on a terminal and at most every 100 ms. */
function bar(label: string): Progress {
  let last = 0;
  return (done, total, phase) => {
    if (!process.stderr.isTTY) return;
    const t = Date.now();
    if (t - last < 100 && done < total) return;
    last = t;
    const w = 30, frac = total ? done / total : 1, fill = Math.round(frac * w);
    process.stderr.write(`\r${(phase || label).padEnd(10)} [${'#'.repeat(fill)}${'.'.repeat(w - fill)}] ${(frac * 100).toFixed(0).padStart(3)}%`);
    if (done >= total) process.stderr.write('\r\x1b[K');
  };
}

/** The package's version (package.json two folders above dist/src/node). */
function version(): string {
  return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** Runs the command line; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(TOP_HELP + '\n');
    return name ? 0 : 1;
  }
  if (name === '--version' || name === '-V') { process.stdout.write(`flashneuron ${version()}\n`); return 0; }
  const run = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!run) {
    const near = closest(name.replace(/^-+/, ''), Object.keys(commands));
    process.stderr.write(`flashneuron: unknown ${name.startsWith('-') ? 'option' : 'command'} "${name}"${near ? `; did you mean ${near}?` : ''} (flashneuron --help lists the commands)\n`);
    return 2;
  }
  const end = rest.indexOf('--');
  if ((end < 0 ? rest : rest.slice(0, end)).some((a) => a === '--help' || a === '-h')) {
    process.stdout.write(helpText(name));
    return 0;
  }
  try {
    const { args, flags } = parse(name, rest);
    return (await run(args, flags)) ?? 0;
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    const hint = err instanceof UsageError ? ` (see flashneuron ${name} --help)` : err.name === 'NotCapable' ? DENO_PERMISSIONS : '';
    process.stderr.write(`flashneuron ${name}: ${oneLine(err.message)}${hint}\n`);
    if (envSet('FLASHNEURON_DEBUG')) process.stderr.write(`${err.stack}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}

/** What ran a generation's arithmetic, for the stats line: the wasm build, or the WebGPU adapter (stats.device). */
const ranOn = (device: string, simd: boolean, threads = 1) => (device.startsWith("wasm") ? `${simd ? (device.includes("relaxed") ? "relaxed SIMD" : "SIMD") : "scalar"} wasm${threads > 1 ? `, ${threads} threads` : ""}` : `WebGPU (${device})`);

/** Deno refused an access: what the CLI needs there (README, "Deno and Bun"). */
const DENO_PERMISSIONS = ' (Deno: flashneuron needs --allow-read --allow-env; --allow-write to keep conversions in the cache; serve: --allow-net)';

/** Whether an environment variable is set, false where reading it is not permitted (Deno without --allow-env). */
function envSet(name: string): boolean {
  try { return !!process.env[name]; } catch { return false; }
}

/** An error's message as one line (a wasm trap or a library may bring several). */
const oneLine = (m: string) => m.split('\n').map((l) => l.trim()).filter(Boolean).join(' ') || 'failed';
