// The flashneuron command line. Contract (other tools rely on it; see README):
//   flashneuron generate [--model PATH] [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--json] PROMPT
//   flashneuron tokenize [--model PATH] [--no-special] TEXT
//   flashneuron perplexity [--model PATH] [--window N] [--stride S] FILE
//   flashneuron convert HF_DIR OUT
// Errors go to stderr with a non-zero exit code.
import { readFileSync } from 'node:fs';
import { loadModel, DEFAULT_MODEL, Model } from './model.js';
import { convertHF, Progress } from './image.js';

type Flags = Record<string, string | boolean>;
interface Command {
  usage: string;
  help: string;
  flags: Record<string, 'string' | 'number' | 'boolean'>;
  run(args: string[], flags: Flags): Promise<void>;
}

class UsageError extends Error {}

const MODEL_FLAG = `  --model PATH        a flashneuron image or a Hugging Face folder (converted once into the
                      cache: $FLASHNEURON_CACHE or ~/.cache/flashneuron). Default: the embedded
                      opt-relu-mini`;

const commands: Record<string, Command> = {
  generate: {
    usage: 'flashneuron generate [options] PROMPT',
    help: `Streams a continuation of PROMPT to stdout.

${MODEL_FLAG}
  --max-tokens N      tokens to generate at most (default 128)
  --temperature T     0 = greedy; default 0.8
  --top-k K           sample among the K most likely tokens (default 40, 0 = off)
  --top-p P           nucleus sampling mass (default 0.95, 1 = off)
  --seed S            RNG seed (default: random)
  --no-stop           do not stop at the end-of-sequence token
  --json              print one JSON object instead of streaming:
                      {"prompt_ids":[..],"ids":[..generated..],"text":"..","stats":{"tokens":n,"ms_per_token":x,..}}`,
    flags: { model: 'string', 'max-tokens': 'number', temperature: 'number', 'top-k': 'number', 'top-p': 'number', seed: 'number', json: 'boolean', 'no-stop': 'boolean' },
    async run(args, f) {
      const prompt = args.join(' ');
      if (!prompt) throw new UsageError('generate needs a PROMPT');
      const model = await load(f);
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      const it = model.generate(prompt, {
        maxTokens: num(f['max-tokens']), temperature: num(f.temperature), topK: num(f['top-k']), topP: num(f['top-p']),
        seed: num(f.seed), stopAtEos: !f['no-stop'], signal: ac.signal,
      });
      for (;;) {
        const r = await it.next();
        if (r.done) {
          if (f.json) process.stdout.write(JSON.stringify(r.value) + '\n');
          else {
            process.stdout.write('\n');
            const s = r.value.stats;
            process.stderr.write(`[${s.tokens} tokens, ${s.ms_per_token} ms/token, ${s.tokens_per_s} tokens/s, prompt ${s.prompt_tokens} tokens in ${s.prompt_ms} ms, ${s.simd ? 'SIMD' : 'scalar'} wasm]\n`);
          }
          break;
        }
        if (!f.json) process.stdout.write(r.value.text);
      }
      model.close();
    },
  },
  tokenize: {
    usage: 'flashneuron tokenize [options] TEXT',
    help: `Prints the token ids of TEXT as a JSON array.

${MODEL_FLAG}
  --no-special        leave out special tokens (BOS)`,
    flags: { model: 'string', 'no-special': 'boolean' },
    async run(args, f) {
      if (!args.length) throw new UsageError('tokenize needs TEXT');
      const model = await load(f);
      process.stdout.write(JSON.stringify(model.tokenize(args.join(' '), { addSpecialTokens: !f['no-special'] })) + '\n');
      model.close();
    },
  },
  perplexity: {
    usage: 'flashneuron perplexity [options] FILE',
    help: `Prints {"tokens":n,"nll":x,"ppl":y} for the text in FILE.

The text is encoded once (with BOS) and cut into windows of --window tokens, each run
from an empty KV cache as BOS followed by its slice. The first window scores every token;
each later window starts --window - 1 - --stride tokens before the end of the previous one
and scores only its last --stride tokens, so every token is scored exactly once, with at
least that much context.

${MODEL_FLAG}
  --window N          tokens per window, BOS included (default: the model's context length)
  --stride S          tokens scored per window after the first (default: half a window)`,
    flags: { model: 'string', window: 'number', stride: 'number' },
    async run(args, f) {
      if (args.length !== 1) throw new UsageError('perplexity needs one FILE');
      const text = readFileSync(args[0], 'utf8');
      const model = await load(f);
      const r = await model.perplexity(text, { window: num(f.window), stride: num(f.stride), onProgress: bar('perplexity') });
      process.stdout.write(JSON.stringify({ tokens: r.tokens, nll: round6(r.nll), ppl: round6(r.ppl) }) + '\n');
      model.close();
    },
  },
  convert: {
    usage: 'flashneuron convert HF_DIR OUT',
    help: `Converts a Hugging Face checkpoint folder (config.json, tokenizer.json, safetensors,
single or sharded; F32/F16/BF16) into a flashneuron image file OUT: resident weights,
then each layer's FFN as 4096-aligned row-column bundles, with checksums. See README.`,
    flags: {},
    async run(args) {
      if (args.length !== 2) throw new UsageError('convert needs HF_DIR and OUT');
      const h = await convertHF(args[0], args[1], bar('convert'));
      process.stderr.write(`wrote ${args[1]}: ${h.config.architecture}, ${h.config.nLayers} layers, d=${h.config.hidden}, ffn=${h.config.ffn}, ${h.ffn.dtype}, bundle ${h.ffn.bundle_bytes} bytes\n`);
    },
  },
};

async function load(f: Flags): Promise<Model> {
  return loadModel(typeof f.model === 'string' ? f.model : DEFAULT_MODEL, { onProgress: bar('load') });
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

const num = (v: string | boolean | undefined) => (typeof v === 'string' ? Number(v) : undefined);
const round6 = (x: number) => Math.round(x * 1e6) / 1e6;

function parse(cmd: Command, argv: string[]): { args: string[]; flags: Flags } {
  const args: string[] = [], flags: Flags = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { args.push(...argv.slice(i + 1)); break; }
    if (!a.startsWith('--') || a === '-') { args.push(a); continue; }
    const [name, inline] = a.slice(2).split(/=(.*)/s, 2);
    const kind = cmd.flags[name];
    if (!kind) throw new UsageError(`unknown option --${name}`);
    if (kind === 'boolean') { flags[name] = true; continue; }
    const v = inline ?? argv[++i];
    if (v === undefined) throw new UsageError(`--${name} needs a value`);
    if (kind === 'number' && !Number.isFinite(Number(v))) throw new UsageError(`--${name} needs a number (got "${v}")`);
    flags[name] = v;
  }
  return { args, flags };
}

const TOP_HELP = `flashneuron — run ReLU-family language models from flash with a WebAssembly SIMD engine

Usage:
${Object.values(commands).map((c) => `  ${c.usage}`).join('\n')}

Run "flashneuron COMMAND --help" for a command's options.`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(TOP_HELP + '\n');
    return name ? 0 : 1;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`flashneuron: unknown command "${name}"\n\n${TOP_HELP}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`Usage: ${cmd.usage}\n\n${cmd.help}\n`);
    return 0;
  }
  try {
    const { args, flags } = parse(cmd, rest);
    await cmd.run(args, flags);
    return 0;
  } catch (e) {
    const err = e as Error;
    process.stderr.write(`flashneuron ${name}: ${err.message}\n`);
    if (err instanceof UsageError) process.stderr.write(`Usage: ${cmd.usage}\n`);
    if (process.env.FLASHNEURON_DEBUG) process.stderr.write(`${err.stack}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}
