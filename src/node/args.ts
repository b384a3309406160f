// The command line's options in one table — each option's kind, range or choices, short alias
// and help — and the one parser over it. Every command's --help is generated from the same
// table, so what the help says is what the parser accepts. The flash options' ranges are the
// API's (RANGES in src/core/options.ts): the CLI and resolveOptions refuse the same values.
import { describeRange, inRange, MODES, parseMemory, RANGES, type Range } from '../core/options.js';
import { SHAPES } from '../format/synth.js';
import { CHAT_REPL_HELP } from './chat-repl.js';

/** A mistake on the command line (exit code 2; the usage line follows the message). */
export class UsageError extends Error {}

export interface Opt {
  kind: 'flag' | 'string' | 'int' | 'number' | 'enum' | 'custom';
  /** Placeholder in the help: PATH, N, … (enums: their choices, unless given). */
  arg?: string;
  /** One-letter alias, as llama.cpp's (-m, -n, -p, -c, -t, -s). */
  short?: string;
  range?: Range;
  choices?: readonly string[];
  /** custom: converts the text or throws (UsageError, or Error for the API's own messages). */
  parse?: (v: string, label: string) => string | number;
  /** custom: what it accepts, for --help. */
  accepts?: string;
  help: string;
}

export type Flags = Record<string, string | number | boolean | undefined>;

const SEED: Range = { int: true, min: 0, max: 2 ** 32 - 1 };

const MODEL: Opt = {
  kind: 'string', arg: 'PATH|ID', short: 'm',
  help: 'a flashneuron image, a Hugging Face folder or GGUF file (converted once into the cache: $FLASHNEURON_CACHE or ~/.cache/flashneuron; see "flashneuron cache"), or a repository id org/name downloaded into the Hugging Face cache ($HF_HOME/hub). Default: the embedded opt-relu-mini',
};
const JSON_OUT: Opt = { kind: 'flag', help: 'print one JSON object' };
const THREADS: Opt = { kind: 'int', arg: 'N', short: 't', range: RANGES.threads, help: 'threads for the arithmetic (default: one per core, os.availableParallelism())' };
const PROMPT: Opt = { kind: 'string', arg: 'TEXT', short: 'p', help: 'the prompt, instead of PROMPT ("-" reads it from stdin)' };

const SAMPLING: Record<string, Opt> = {
  'max-tokens': { kind: 'int', arg: 'N', short: 'n', range: { int: true, min: 1 }, help: 'tokens to generate at most (default 128)' },
  temperature: { kind: 'number', arg: 'T', range: { min: 0 }, help: '0 = greedy; default 0.8' },
  'top-k': { kind: 'int', arg: 'K', range: { int: true, min: 0 }, help: 'sample among the K most likely tokens (default 40, 0 = off)' },
  'top-p': { kind: 'number', arg: 'P', range: { above: 0, max: 1 }, help: 'nucleus sampling mass (default 0.95, 1 = off)' },
  seed: { kind: 'int', arg: 'S', short: 's', range: SEED, help: 'RNG seed (default: random)' },
  'no-stop': { kind: 'flag', help: 'do not stop at the end-of-sequence token' },
};

/** --window K|lru: the CLI's 0 is --no-window, so K starts at 1 here. */
const WINDOW: Range = { ...RANGES.window, min: 1 };

/** The options of the FFN on flash (generate, chat, serve, perplexity); see resolveOptions. */
export const FLASH: Record<string, Opt> = {
  memory: {
    kind: 'custom', arg: 'BYTES|PCT', accepts: 'a share of the model (over 0% to 100%) or bytes with a unit (600MB, 1.5GiB, 4096B)',
    help: 'cap on the memory the engine holds (weights, predictor, neuron caches, KV cache, buffers). Implies --mode sparse (hybrid without a predictor) unless a mode is given',
    // The API's own check and message (parseMemory), so both refuse a budget alike; a bad budget
    // is an error of the input, exit 1, as one too small for the model is.
    parse: (v, label) => {
      try { parseMemory(v, 2 ** 40); } catch (e) { throw new Error(`${label}: ${(e as Error).message}`); }
      return v;
    },
  },
  mode: { kind: 'enum', arg: 'M', choices: MODES, help: 'dense (all in memory, default without --memory) | naive (FFN read from flash every token) | hybrid (a share of neurons kept, the rest read every token) | sparse (predictor + windowed neuron cache + bundled reads)' },
  window: {
    kind: 'custom', arg: 'K|lru', accepts: `${describeRange(WINDOW)} or lru`,
    help: 'sparse: neurons stay cached K tokens after last use (the paper: 5); lru (default): as long as the neuron cache has room, least recently used evicted first',
    parse: (v, label) => {
      if (v === 'lru') return v;
      if (/^\d+$/.test(v) && inRange(Number(v), WINDOW)) return Number(v);
      throw new UsageError(`${label} must be a number of tokens or lru: ${describeRange(WINDOW)} (--no-window for none) or lru (got "${v}")`);
    },
  },
  'no-window': { kind: 'flag', help: 'sparse: no reuse across tokens (each token reads its whole predicted set)' },
  threshold: { kind: 'number', arg: 'P', range: RANGES.threshold, help: 'sparse: predictor probability cut (default: per-layer calibrated values)' },
  predictor: { kind: 'string', arg: 'FILE', help: 'sparse: predictor file (default: one train-predictor wrote into the cache for this model, else flashneuron.fnpred beside the model)' },
  thresholds: { kind: 'string', arg: 'FILE', help: 'sparse on a SiLU model: the calibrated thresholds file (default: the one calibrate wrote into the cache for this model, else NAME.fnthr beside it)' },
  sparsity: { kind: 'number', arg: 'S', range: RANGES.sparsity, help: "sparse on a SiLU model: the share of down_proj inputs to drop, from the calibration's per-layer quantiles (default: the thresholds file's)" },
  teal: { kind: 'flag', help: 'SiLU model, dense or sparse mode: TEAL input sparsity — the entries of the inputs of q/k/v, o and gate/up under their calibrated cuts (calibrate --teal S) count as zero (the wasm only)' },
  'predictor-rank': { kind: 'int', arg: 'R', range: RANGES.predictorRank, help: 'sparse: run the predictor at rank R (default: the largest that leaves the neuron caches at least half of the memory left)' },
  'predictor-dtype': { kind: 'enum', choices: ['q8_0', 'f16'], help: 'sparse: predictor weights as int8 blocks (default) or f16' },
  'resident-dtype': { kind: 'enum', choices: ['q8_0', 'stored', 'auto'], help: 'hold attention, embeddings and lm_head as int8 blocks (quantized at load; about half their memory goes to the neuron caches), as stored, or (default) int8 when, in sparse or hybrid mode, a budget leaves the predictor and caches less room than the FFN with them as stored (not with --device gpu)' },
  'hybrid-share': { kind: 'number', arg: 'S', range: RANGES.hybridShare, help: 'hybrid: share of neurons kept in memory (default: what --memory allows)' },
  context: { kind: 'int', arg: 'N', short: 'c', range: RANGES.contextLength, help: "KV cache length in tokens, at most the model's (default: the model's; with --memory: the prompt plus --max-tokens for generate, 128 otherwise)" },
  kv: { kind: 'enum', choices: ['f32', 'f16'], help: 'KV cache element type (default f32; with --memory f16)' },
  device: { kind: 'enum', choices: ['cpu', 'gpu', 'auto'], help: 'where the arithmetic runs (default auto): gpu = WebGPU (Deno, browsers; a software adapter will do), auto = a hardware WebGPU adapter when the runtime has one, else the wasm' },
  io: { kind: 'enum', choices: ['wasi', 'async', 'thread'], help: 'FFN reads: through WASI fd_pread one at a time (default); async = issued by the host in parallel while cached neurons compute; thread = a worker thread reads them while cached neurons compute (page cache)' },
  direct: { kind: 'flag', help: 'O_DIRECT reads (cold: no page cache), implies --io async' },
  'queue-depth': { kind: 'int', arg: 'N', range: RANGES.queueDepth, help: 'reads in flight with --io async (default 32)' },
  'no-bundle': { kind: 'flag', help: 'ablation: an image whose FFN parts (up, gate, down) are stored apart, so each neuron takes one read per part (made once from a Hugging Face folder)' },
  verify: { kind: 'enum', choices: ['first', 'always', 'off'], help: "check FFN bundles read from flash against the image's per-neuron checksums: the first time each neuron is read (default), on every read, or not at all" },
  check: { kind: 'flag', help: "check every layer's output for NaN/Inf and name the first layer where one appears (the logits are checked every token regardless)" },
  'check-predictor': { kind: 'flag', help: 'run a dense pass alongside and report per-layer recall and predicted ÷ true set size (the dense pass is outside the budget)' },
};

const DTYPES = ['f32', 'f16', 'bf16', 'int8', 'int4'];

export interface CommandSpec {
  usage: string;
  about: string;
  options: Record<string, Opt>;
  /** Takes the flash options (listed apart in --help). */
  flash?: boolean;
}

export const COMMANDS: Record<string, CommandSpec> = {
  generate: {
    usage: 'flashneuron generate [options] PROMPT',
    about: `Streams a continuation of PROMPT to stdout and a line of stats to stderr. PROMPT "-" (or
-p -) reads the prompt from stdin (one trailing newline dropped); a PROMPT that starts with "-"
goes after --. Ctrl-C stops it: the text so far stays, the exit code is 130. When the context
fills up before --max-tokens, a line on stderr says so.`,
    options: {
      model: MODEL, prompt: PROMPT, ...SAMPLING, threads: THREADS,
      json: { kind: 'flag', help: 'print one JSON object instead of streaming: {"prompt_ids":[..],"ids":[..generated..],"text":"..","finish_reason":"stop|length|context|abort","stats":{..},"options":{..}}; stats give tokens, ms_per_token, bytes_read_per_token, reads_per_token, io_ms_per_token, mem_ms_per_token, compute_ms_per_token, ffn_bytes_total, model_bytes, resident_bytes_peak, ffn_cache_fraction' },
    },
    flash: true,
  },
  chat: {
    usage: 'flashneuron chat [options]',
    about: `An interactive conversation with the model (its chat template, or --chat-template's).
Type a turn at the "> " prompt; the answer streams to stdout (prompt and notices go to stderr).
A line ending in \\ goes on with the next; a pasted block is one turn. Ctrl-C stops an answer
(the turn is dropped, the conversation kept); at an empty prompt it leaves (exit code 130), as
do /exit and Ctrl-D (0). When stdin is not a terminal there is no prompt: each line is a turn
and each answer goes to stdout followed by a newline.

Commands:
${CHAT_REPL_HELP.replace(/^/gm, '  ')}`,
    options: {
      model: MODEL,
      system: { kind: 'string', arg: 'TEXT', help: 'the system prompt (kept by /reset)' },
      'chat-template': { kind: 'string', arg: 'FILE', help: "a Jinja chat template instead of the model's" },
      ...SAMPLING,
      'max-tokens': { ...SAMPLING['max-tokens'], help: 'tokens per answer at most (default 128)' },
      seed: { ...SAMPLING.seed, help: 'RNG seed of every answer (default: random)' },
      threads: THREADS,
      stats: { kind: 'flag', help: "print each answer's stats on stderr (tokens, tokens/s, prefill/prompt tokens, flash figures); /stats toggles it" },
    },
    flash: true,
  },
  serve: {
    usage: 'flashneuron serve [options]',
    about: `Serves the model over HTTP with OpenAI's API: POST /v1/chat/completions (messages rendered
with the model's chat template), POST /v1/completions, GET /v1/models, GET /health. Answers whole
or streamed (server-sent events); requests take turns on the model; a client that disconnects
aborts its generation. Prints "listening on http://HOST:PORT (model ID)" on stderr when ready;
Ctrl-C or SIGTERM stops it. A port in use is an error (exit 1).`,
    options: {
      model: MODEL,
      'model-id': { kind: 'string', arg: 'ID', help: 'the id /v1/models lists (default: the model path\'s basename; requests may also name "default")' },
      host: { kind: 'string', arg: 'H', help: 'interface to listen on (default 127.0.0.1)' },
      port: { kind: 'int', arg: 'N', range: { int: true, min: 0, max: 65535 }, help: 'port (default 8080; 0: a free one, printed in the listening line)' },
      'api-key': { kind: 'string', arg: 'KEY', help: 'require "Authorization: Bearer KEY" on /v1 requests (default: $FLASHNEURON_API_KEY; unset: no key needed)' },
      'chat-template': { kind: 'string', arg: 'FILE', help: "a Jinja chat template instead of the model's" },
      'max-body': { kind: 'int', arg: 'BYTES', range: { int: true, min: 1 }, help: 'largest request body (default 1048576); larger ones get 413' },
      threads: THREADS,
    },
    flash: true,
  },
  tokenize: {
    usage: 'flashneuron tokenize [options] TEXT',
    about: 'Prints the token ids of TEXT as a JSON array. TEXT "-" (or -p -) reads it from stdin.',
    options: { model: MODEL, prompt: { ...PROMPT, help: 'the text, instead of TEXT ("-" reads it from stdin)' }, 'no-special': { kind: 'flag', help: 'leave out special tokens (BOS)' } },
  },
  perplexity: {
    usage: 'flashneuron perplexity [options] FILE',
    about: `Prints {"tokens":n,"nll":x,"ppl":y} for the text in FILE ("-": stdin).

The text is encoded once (with BOS) and cut into windows of --context tokens, each run
from an empty KV cache (and empty neuron caches) as BOS followed by its slice. The first
window scores every token; each later window starts --context - 1 - --stride tokens before
the end of the previous one and scores only its last --stride tokens, so every token is
scored exactly once, with at least that much context. With --json the output adds "stats"
(the per-token flash figures, as for generate). A text with no token to score is an error.`,
    options: {
      model: MODEL,
      stride: { kind: 'int', arg: 'S', range: { int: true, min: 1 }, help: 'tokens scored per window after the first (default: half a window)' },
      json: { kind: 'flag', help: 'add "stats" (and "predictor_check", "options") to the output' },
      threads: THREADS,
    },
    flash: true,
  },
  'train-predictor': {
    usage: 'flashneuron train-predictor [options] FILE',
    about: `Trains the sparsity predictor of every FFN layer on the text in FILE ("-": stdin): a low-rank
network d -> r -> ffn (z = W2 relu(W1 x + b1) + b2) fed with the FFN's input, trained against
the model's true activations with a loss that weighs active and inactive neurons equally,
its per-layer thresholds calibrated to a recall target on a validation split. The end of the
text is held out; the report gives per layer the recall (share of truly active neurons
predicted) and the predicted ÷ true set size there.

Without --out the predictor goes into the conversion cache, never over the one shipped beside
the model; sparse mode then uses it for this model before the shipped one (--predictor FILE
overrides both; "flashneuron cache rm MODEL" removes it). An existing file is replaced only
with --force.`,
    options: {
      model: MODEL,
      rank: { kind: 'int', arg: 'R', range: { int: true, min: 1, max: 4096 }, help: 'predictor width (default 192); smaller rungs are stored too' },
      epochs: { kind: 'int', arg: 'E', range: { int: true, min: 0, max: 1000 }, help: 'BCE fine-tuning passes after the PCA start (default 1; 0: PCA only)' },
      'max-tokens': { ...SAMPLING['max-tokens'], help: 'training tokens at most (default 16000)' },
      recall: { kind: 'number', arg: 'R', range: { above: 0, below: 1 }, help: 'recall the thresholds are calibrated to (default 0.975)' },
      out: { kind: 'string', arg: 'FILE', help: 'where to write the predictor (default: the conversion cache, see above)' },
      force: { kind: 'flag', help: 'replace an existing predictor file' },
      threads: THREADS,
      json: { kind: 'flag', help: 'print the report as JSON' },
    },
  },
  calibrate: {
    usage: 'flashneuron calibrate --sparsity S [options] FILE',
    about: `Calibrates training-free activation sparsity for a SiLU-gated model (Llama, Mistral, Qwen2
with hidden_act silu): the dense model runs over the first 85 % of the text in FILE ("-": stdin)
and per layer the cut on |silu(gate·x)·up·x| below which the share S of the FFN's down_proj
inputs falls is stored (with every percentile, so --sparsity can differ at run time). Sparse
mode on the model then keeps gate and up in memory, drops the neurons under the cut and reads
only the down columns of the rest from flash. The report gives the sparsity measured with these
cuts on the held-out last 15 %.

Without --out the file goes into the conversion cache (NAME-KEY.fnthr), where sparse mode finds
it for this model (--thresholds FILE overrides it); an existing file is replaced only with
--force.`,
    options: {
      model: MODEL,
      sparsity: { kind: 'number', arg: 'S', range: RANGES.sparsity, help: 'the share of down_proj inputs to drop, ≥ 0 and < 1 (required; 0.5 costs ≈ 2-3 % perplexity)' },
      rule: { kind: 'enum', choices: ['product', 'gate'], help: "what is cut: product = |silu(gate·x)·up·x| (default: gate and up resident, down columns read), gate = CATS' |silu(gate·x)| (gate resident, up rows and down columns read; more perplexity at the same sparsity)" },
      teal: { kind: 'number', arg: 'S', range: RANGES.sparsity, help: 'also calibrate TEAL input sparsity (--teal at run time): per layer the cuts under which the share S of the inputs of q/k/v, o and gate/up falls (0.4 is typical)' },
      'max-tokens': { ...SAMPLING['max-tokens'], help: 'calibration tokens at most (default 16000)' },
      out: { kind: 'string', arg: 'FILE', help: 'where to write the thresholds (default: the conversion cache, see above)' },
      force: { kind: 'flag', help: 'replace an existing thresholds file' },
      threads: THREADS,
      json: { kind: 'flag', help: 'print the report as JSON' },
    },
  },
  'export-gguf': {
    usage: 'flashneuron export-gguf [--model PATH] [--powerinfer [--predictor FILE]] OUT',
    about: `Writes the model (an image or a Hugging Face folder, Llama family) as a GGUF file that
llama.cpp and its bindings load: llama architecture keys, the GPT-2 byte-level tokenizer
(tokens, merges, BOS/EOS), the weights in the image's types (f32, f16, bf16, int8 as Q8_0,
int4 as Q4_0). llama.cpp's llama graph applies SiLU: a ReLU model runs there at the same cost
but with different text.`,
    options: {
      model: MODEL,
      powerinfer: { kind: 'flag', help: "PowerInfer's layout: ffn_down stored transposed (ffn_down_t, a neuron's down column per row) and the model's sparsity predictor (the one sparse mode uses) as blk.N.fc1 / fc2 (+ biases). flashneuron reads such files and uses their predictor; stock llama.cpp refuses them" },
      predictor: { kind: 'string', arg: 'FILE', help: 'with --powerinfer: this .fnpred file instead' },
    },
  },
  synth: {
    usage: 'flashneuron synth --shape SHAPE [--dtype f16|bf16|f32|int8|int4] [--seed S] [--no-bundle] OUT',
    about: `Writes an image of a real model's shape with seeded random weights, for benchmarks at
sizes no test fixture has (the text it generates is noise; its reads and arithmetic are those
of the real model). Shapes are Llama with ReLU, as ReluLLaMA.`,
    options: {
      shape: { kind: 'enum', arg: 'SHAPE', choices: Object.keys(SHAPES), help: 'the model shape' },
      dtype: { kind: 'enum', arg: 'DT', choices: DTYPES, help: 'weight type of the matrices (default f16)' },
      seed: { kind: 'int', arg: 'S', short: 's', range: SEED, help: 'random seed (default 1)' },
      'no-bundle': { kind: 'flag', help: 'store up, gate and down apart (the unbundled ablation baseline)' },
    },
  },
  probe: {
    usage: 'flashneuron probe [options]',
    about: `Measures the flash device: random reads by chunk size and queue depth (O_DIRECT where
the filesystem allows it), and fits the cost model the read planner uses (latency per read,
bandwidth, parallelism). Prints the profile as JSON and saves it where the engine finds it
($FLASHNEURON_CACHE or ~/.cache/flashneuron/device.json).`,
    options: {
      file: { kind: 'string', arg: 'F', help: 'probe this file (default: a temporary 512 MiB file)' },
      seconds: { kind: 'number', arg: 'S', range: { above: 0, max: 600 }, help: 'time per point (default 0.4)' },
      'no-save': { kind: 'flag', help: 'do not save the profile' },
    },
  },
  cache: {
    usage: 'flashneuron cache ls [--json] | rm MODEL_OR_IMAGE | clear',
    about: `Manages the conversion cache ($FLASHNEURON_CACHE, else ~/.cache/flashneuron): the images
made from Hugging Face folders and GGUF files, one per source, replaced when the source
changes, and the predictors train-predictor wrote there. A 7B model's image takes about
13.5 GB as f16 (3.8 GB as int4).

  ls                  the cached images, largest first: size and what each was made from
  rm MODEL|IMAGE      remove the image(s) and trained predictor of a source folder or file,
                      or an image by name
  clear               remove every cached image and trained predictor (the device profile stays)`,
    options: { json: { ...JSON_OUT, help: 'ls as JSON' } },
  },
  convert: {
    usage: 'flashneuron convert [--no-bundle] [--dtype f32|f16|bf16|int8|int4] HF_DIR OUT',
    about: `Converts a Hugging Face checkpoint folder (config.json, tokenizer.json, safetensors,
single or sharded; F32/F16/BF16) into a flashneuron image file OUT: resident weights,
then each layer's FFN as 4096-aligned row-column bundles, with checksums. See README.`,
    options: {
      'no-bundle': { kind: 'flag', help: 'store up, gate and down apart (the unbundled ablation baseline)' },
      dtype: { kind: 'enum', arg: 'DT', choices: DTYPES, help: 'store every matrix as f32, f16, bf16, int8 (GGUF Q8_0 blocks) or int4 (Q4_0 blocks) (default: as the checkpoint does)' },
    },
  },
};

/** Every option a command takes, the flash ones included. */
export function optionsOf(cmd: CommandSpec): Record<string, Opt> {
  return cmd.flash ? { ...cmd.options, ...FLASH } : cmd.options;
}

/** "a, b or c". */
const list = (xs: readonly string[]) => (xs.length > 1 ? `${xs.slice(0, -1).join(', ')} or ${xs[xs.length - 1]}` : xs.join(''));

/** What an option accepts, in words (--help and errors). */
export function accepts(o: Opt): string | undefined {
  if (o.kind === 'enum') return `one of ${list(o.choices!)}`;
  if (o.kind === 'custom') return o.accepts;
  if (o.kind === 'int' || o.kind === 'number') return describeRange(o.range ?? {});
  return undefined;
}

const INT = /^[+-]?\d+$/;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** The option's value from its text, or a UsageError naming the option and what it accepts. */
function convert(o: Opt, v: string, label: string): string | number {
  switch (o.kind) {
    case 'int': case 'number': {
      const x = Number(v);
      if (!(o.kind === 'int' ? INT : NUMBER).test(v) || !inRange(x, { ...o.range, int: o.kind === 'int' })) {
        throw new UsageError(`${label} must be ${describeRange({ ...o.range, int: o.kind === 'int' })} (got "${v}")`);
      }
      return x;
    }
    case 'enum':
      if (!o.choices!.includes(v)) throw new UsageError(`${label} must be ${list(o.choices!)} (got "${v}")`);
      return v;
    case 'custom': return o.parse!(v, label);
    default: return v;
  }
}

/** Levenshtein distance (small strings: option and command names). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** The closest of `names` to `given` (one it begins, or within a few edits), if any. */
export function closest(given: string, names: string[]): string | undefined {
  const prefixed = names.filter((n) => n.startsWith(given));
  if (given.length >= 3 && prefixed.length === 1) return prefixed[0];
  let best: string | undefined, bestD = Math.max(1, Math.min(3, Math.floor(given.length / 3)));
  for (const n of names) { const d = distance(given, n); if (d <= bestD && (best === undefined || d < distance(given, best))) { best = n; bestD = d; } }
  return best;
}

function unknownLong(name: string, command: string, opts: Record<string, Opt>): UsageError {
  const near = closest(name, Object.keys(opts));
  if (near) return new UsageError(`unknown option --${name}; did you mean --${near}?`);
  const others = Object.keys(COMMANDS).filter((c) => c !== command && Object.hasOwn(optionsOf(COMMANDS[c]), name));
  return new UsageError(`unknown option --${name}${others.length ? ` (${others.join(', ')} ${others.length > 1 ? 'take' : 'takes'} it, ${command} does not)` : ''}`);
}

/**
 * Parses a command's arguments over its table: --name VALUE, --name=VALUE, -x VALUE, -xVALUE,
 * flags, and "--" ending the options. Every value is checked here (numbers strictly: digits,
 * within the option's range); an option given twice keeps the last value. Anything else that
 * starts with "-" (but "-" alone, which means stdin) is an error.
 */
export function parse(command: string, argv: string[]): { args: string[]; flags: Flags } {
  const opts = optionsOf(COMMANDS[command]);
  const shorts = new Map(Object.entries(opts).filter(([, o]) => o.short).map(([n, o]) => [o.short!, n]));
  const args: string[] = [], flags: Flags = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { args.push(...argv.slice(i + 1)); break; }
    if (a === '-' || !a.startsWith('-')) { args.push(a); continue; }
    let name: string, inline: string | undefined, label: string;
    if (a.startsWith('--')) {
      [name, inline] = a.slice(2).split(/=(.*)/s, 2);
      if (!Object.hasOwn(opts, name)) throw unknownLong(name, command, opts);
      label = `--${name}`;
    } else {
      const long = shorts.get(a[1]);
      if (long === undefined) {
        const near = Object.hasOwn(opts, a.slice(1)) ? a.slice(1) : undefined;
        throw new UsageError(`unknown option ${a}${near ? `; did you mean --${near}?` : ''} (text that starts with "-" goes after --)`);
      }
      name = long;
      inline = a.length > 2 ? a.slice(2) : undefined;
      label = `-${a[1]} (--${name})`;
    }
    const o = opts[name];
    if (o.kind === 'flag') {
      if (inline !== undefined) throw new UsageError(`${label} takes no value (got "${inline}")`);
      flags[name] = true;
      continue;
    }
    const v = inline ?? argv[++i];
    // "--model --json": the value was forgotten (a value that is an option name is never meant).
    const forgot = v !== undefined && inline === undefined && v.startsWith('--') && Object.hasOwn(opts, v.slice(2).split('=')[0]);
    if (v === undefined || forgot) throw new UsageError(`${label} needs a value${accepts(o) ? `: ${accepts(o)}` : ''}${forgot ? ` (got the option ${v})` : ''}`);
    flags[name] = convert(o, v, label);
  }
  return { args, flags };
}

/** Wraps `text` to `width` columns, each line after the first indented by `indent`. */
function wrap(text: string, indent: number, width = 100): string {
  const out: string[] = [];
  let line = '';
  for (const w of text.split(/\s+/)) {
    if (line && indent + line.length + 1 + w.length > width) { out.push(line); line = w; } else line = line ? `${line} ${w}` : w;
  }
  out.push(line);
  return out.join('\n' + ' '.repeat(indent));
}

function optionLines(opts: Record<string, Opt>): string {
  const COL = 28;
  return Object.entries(opts).map(([name, o]) => {
    const arg = o.kind === 'flag' ? '' : ` ${o.arg ?? o.choices!.join('|')}`;
    const head = `  ${o.short ? `-${o.short}, ` : '    '}--${name}${arg}`;
    const range = accepts(o);
    // The range is kept on one line (its spaces held while wrapping).
    const text = range && !(o.kind === 'enum' && !o.arg) ? `${o.help}. [${range.replaceAll(' ', '\u0001')}]` : o.help;
    const body = wrap(text, COL).replaceAll('\u0001', ' ');
    return head.length + 1 >= COL ? `${head}\n${' '.repeat(COL)}${body}` : `${head.padEnd(COL)}${body}`;
  }).join('\n');
}

/** A command's --help: usage, what it does, then each option with its range or choices. */
export function helpText(command: string): string {
  const c = COMMANDS[command];
  let s = `Usage: ${c.usage}\n\n${c.about}\n\nOptions:\n${optionLines(c.options)}\n  -h, --help                show this help\n`;
  if (c.flash) s += `\nFlash options (the FFN on flash under a memory budget; see README):\n${optionLines(FLASH)}\n`;
  return s;
}

export const TOP_HELP = `flashneuron — run ReLU-family language models from flash with a WebAssembly SIMD engine

Usage:
${Object.values(COMMANDS).map((c) => `  ${c.usage}`).join('\n')}
  flashneuron --version

Run "flashneuron COMMAND --help" for a command's options, their ranges and choices.
Exit codes: 0 done, 1 the model or input is bad, 2 the command line is, 130 interrupted (Ctrl-C).`;
