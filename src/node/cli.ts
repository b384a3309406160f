// The flashneuron command line. Contract (other tools rely on it; see README):
//   flashneuron generate [--model PATH] [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--json] PROMPT
//   flashneuron tokenize [--model PATH] [--no-special] TEXT
//   flashneuron perplexity [--model PATH] [--window N] [--stride S] FILE
//   flashneuron train-predictor [--model PATH] [--rank R] FILE
//   flashneuron probe [--file F]
//   flashneuron convert HF_DIR OUT
// Errors go to stderr with a non-zero exit code.
import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { cacheDir, clearCache, listCache, removeFromCache } from './cache.js';
import { resolveImage, loadModel, loadTokenizer, DEFAULT_MODEL } from './load.js';
import type { LoadOptions, Model } from '../core/model.js';
import { exportGGUF } from './gguf-file.js';
import type { Tokenizer } from '../core/tokenizer.js';
import type { Progress } from '../format/image.js';
import { convertHF, readImageHeaderFile } from './image-file.js';
import { modelFingerprint, predictorBytes } from '../predictor/format.js';
import { trainPredictor } from '../predictor/train.js';
import { loadPredictor, predictorPath, savePredictor } from './predictor-file.js';
import { probeDevice, saveProfile } from './probe.js';
import { SHAPES, synthImage } from './synth-file.js';
import { DTYPE_BYTES, DType } from '../format/dtype.js';
import type { RunOptions } from '../core/options.js';
import { startServer } from './serve.js';
import { ChatSession, chatRepl, CHAT_REPL_HELP } from './chat-repl.js';

type Flags = Record<string, string | boolean>;
interface Command {
  usage: string;
  help: string;
  flags: Record<string, 'string' | 'number' | 'boolean'>;
  run(args: string[], flags: Flags): Promise<void>;
}

class UsageError extends Error {}

const MODEL_FLAG = `  --model PATH|ID     a flashneuron image, a Hugging Face folder or GGUF file (converted once
                      into the cache: $FLASHNEURON_CACHE or ~/.cache/flashneuron; see
                      "flashneuron cache"), or a repository id org/name downloaded into the
                      Hugging Face cache ($HF_HOME/hub). Default: the embedded opt-relu-mini`;

const FLASH_FLAGS_HELP = `  --memory BYTES|PCT   cap on the memory the engine holds (weights, predictor, neuron caches,
                      KV cache, buffers): bytes (300MB, 1.5GiB) or a share of the model's
                      bytes (60%). Implies --mode sparse unless a mode is given
  --mode M            dense (all in memory, default without --memory) | naive (FFN read from
                      flash every token) | hybrid (a share of neurons kept, the rest read every
                      token) | sparse (predictor + windowed neuron cache + bundled reads)
  --window K|lru      sparse: neurons stay cached K tokens after last use (the paper: 5); lru
                      (default): as long as the neuron cache has room, least recently used
                      evicted first
  --no-window         sparse: no reuse across tokens (each token reads its whole predicted set)
  --threshold P       sparse: predictor probability cut (default: per-layer calibrated values)
  --predictor FILE    sparse: predictor file (default: flashneuron.fnpred beside the model)
  --predictor-rank R  sparse: run the predictor at rank R (default: the largest that leaves
                      the neuron caches at least half of the memory left)
  --predictor-dtype q8_0|f16  sparse: predictor weights as int8 blocks (default) or f16
  --resident-dtype q8_0|stored|auto  hold attention, embeddings and lm_head as int8 blocks
                      (quantized at load; about half their memory goes to the neuron caches),
                      as stored, or (default) int8 when, in sparse or hybrid mode, a budget
                      leaves the predictor and caches less room than the FFN with them as
                      stored (not with --device gpu)
  --hybrid-share S    hybrid: share of neurons kept in memory (default: what --memory allows)
  --context N         KV cache length in tokens (default: the model's; with --memory: the
                      prompt plus --max-tokens for generate, 128 for perplexity)
  --kv f32|f16        KV cache element type (default f32; with --memory f16)
  --device cpu|gpu|auto  where the arithmetic runs (default auto): gpu = WebGPU (Deno, browsers;
                      a software adapter will do), auto = a hardware WebGPU adapter when the
                      runtime has one, else the wasm
  --io wasi|async|thread  FFN reads: through WASI fd_pread one at a time (default); async =
                      issued by the host in parallel while cached neurons compute; thread = a
                      worker thread reads them while cached neurons compute (page cache)
  --direct            O_DIRECT reads (cold: no page cache), implies --io async
  --queue-depth N     reads in flight with --io async (default 32)
  --no-bundle         ablation: an image whose FFN parts (up, gate, down) are stored apart, so
                      each neuron takes one read per part (made once from a Hugging Face folder)
  --check-predictor   run a dense pass alongside and report per-layer recall and
                      predicted ÷ true set size (the dense pass is outside the budget)`;
const FLASH_FLAGS = {
  memory: 'string', mode: 'string', window: 'string', 'no-window': 'boolean', threshold: 'number', predictor: 'string',
  'hybrid-share': 'number', context: 'number', 'check-predictor': 'boolean', io: 'string', direct: 'boolean', 'queue-depth': 'number', kv: 'string', device: 'string', 'no-bundle': 'boolean', 'predictor-rank': 'number', 'predictor-dtype': 'string', 'resident-dtype': 'string',
} as const;

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
                      {"prompt_ids":[..],"ids":[..generated..],"text":"..","stats":{"tokens":n,"ms_per_token":x,..}}
                      stats also give bytes_read_per_token, reads_per_token, io_ms_per_token,
                      mem_ms_per_token, compute_ms_per_token, ffn_bytes_total, model_bytes,
                      resident_bytes_peak, ffn_cache_fraction
${FLASH_FLAGS_HELP}`,
    flags: { model: 'string', 'max-tokens': 'number', temperature: 'number', 'top-k': 'number', 'top-p': 'number', seed: 'number', json: 'boolean', 'no-stop': 'boolean', ...FLASH_FLAGS },
    async run(args, f) {
      const prompt = args.join(' ');
      if (!prompt) throw new UsageError('generate needs a PROMPT');
      // Under a budget the KV cache is sized to the job: the prompt plus the tokens asked for.
      let jobTokens: number | undefined, tokenizer: Tokenizer | undefined;
      if (f.memory !== undefined && f.context === undefined) {
        tokenizer = await loadTokenizer(str(f.model) ?? DEFAULT_MODEL, { onProgress: bar('convert') });
        jobTokens = tokenizer.encode(prompt).length + (num(f['max-tokens']) ?? 128);
      }
      const model = await load(f, { tokenizer, jobTokens });
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      const it = model.generate(prompt, {
        maxTokens: num(f['max-tokens']), temperature: num(f.temperature), topK: num(f['top-k']), topP: num(f['top-p']),
        seed: num(f.seed), stopAtEos: !f['no-stop'], signal: ac.signal,
      });
      for (;;) {
        const r = await it.next();
        if (r.done) {
          const check = model.predictorCheck();
          if (f.json) process.stdout.write(JSON.stringify({ ...r.value, ...(check ? { predictor_check: check } : {}), options: model.options }) + '\n');
          else {
            process.stdout.write('\n');
            const s = r.value.stats;
            const io = s.mode === 'dense' ? '' : `, ${s.mode}: ${(s.bytes_read_per_token / 1024).toFixed(1)} KiB read/token (${(100 * s.ffn_read_fraction).toFixed(1)}% of FFN), io ${s.io_ms_per_token} / mem ${s.mem_ms_per_token} / compute ${s.compute_ms_per_token} ms, ${(s.resident_bytes_peak / 2 ** 20).toFixed(1)} MiB held${s.resident_dtype === 'q8_0' ? ' (resident matrices as Q8_0)' : ''}`;
            process.stderr.write(`[${s.tokens} tokens, ${s.ms_per_token} ms/token, ${s.tokens_per_s} tokens/s, prompt ${s.prompt_tokens} tokens in ${s.prompt_ms} ms, ${s.simd ? 'SIMD' : 'scalar'} wasm${io}]\n`);
            if (check) process.stderr.write(check.map((c) => `layer ${c.layer}: recall ${c.recall}, predicted/true ${c.over_prediction}`).join('\n') + '\n');
          }
          break;
        }
        if (!f.json) process.stdout.write(r.value.text);
      }
      model.close();
    },
  },
  chat: {
    usage: 'flashneuron chat [--model PATH|ID] [--system TEXT] [--chat-template FILE] [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--stats] [FLASH OPTIONS]',
    help: `An interactive conversation with the model (its chat template, or --chat-template's).
Type a turn at the "> " prompt; the answer streams to stdout (prompt and notices go to stderr).
A line ending in \\ goes on with the next; a pasted block is one turn. Ctrl-C stops an answer
(the turn is dropped, the conversation kept); at an empty prompt it leaves (exit code 130), as
do /exit and Ctrl-D (0). When stdin is not a terminal there is no prompt: each line is a turn
and each answer goes to stdout followed by a newline.

Commands:
${CHAT_REPL_HELP.replace(/^/gm, '  ')}

${MODEL_FLAG}
  --system TEXT       the system prompt (kept by /reset)
  --chat-template FILE  a Jinja chat template instead of the model's
  --max-tokens N      tokens per answer at most (default 128)
  --temperature T     0 = greedy; default 0.8
  --top-k K           sample among the K most likely tokens (default 40, 0 = off)
  --top-p P           nucleus sampling mass (default 0.95, 1 = off)
  --seed S            RNG seed of every answer (default: random)
  --stats             print each answer's stats on stderr (tokens, tokens/s, prefill/prompt
                      tokens, flash figures); /stats toggles it
  --no-stop           do not stop at the end-of-sequence token
${FLASH_FLAGS_HELP}`,
    flags: { model: 'string', system: 'string', 'chat-template': 'string', 'max-tokens': 'number', temperature: 'number', 'top-k': 'number', 'top-p': 'number', seed: 'number', stats: 'boolean', 'no-stop': 'boolean', ...FLASH_FLAGS },
    async run(args, f) {
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
      if (code) process.exit(code);
    },
  },
  serve: {
    usage: 'flashneuron serve [--model PATH] [--host H] [--port N] [--api-key KEY] [--chat-template FILE] [FLASH OPTIONS]',
    help: `Serves the model over HTTP with OpenAI's API: POST /v1/chat/completions (messages rendered
with the model's chat template), POST /v1/completions, GET /v1/models, GET /health. Answers whole
or streamed (server-sent events); requests take turns on the model; a client that disconnects
aborts its generation. Prints "listening on http://HOST:PORT (model ID)" on stderr when ready;
Ctrl-C or SIGTERM stops it.

${MODEL_FLAG}
  --model-id ID       the id /v1/models lists (default: the model path's basename; requests
                      may also name "default")
  --host H            interface to listen on (default 127.0.0.1)
  --port N            port (default 8080; 0: a free one, printed in the listening line)
  --api-key KEY       require "Authorization: Bearer KEY" on /v1 requests (default:
                      $FLASHNEURON_API_KEY; unset: no key needed)
  --chat-template FILE  a Jinja chat template instead of the model's
  --max-body BYTES    largest request body (default 1048576); larger ones get 413
${FLASH_FLAGS_HELP}`,
    flags: { model: 'string', 'model-id': 'string', host: 'string', port: 'number', 'api-key': 'string', 'chat-template': 'string', 'max-body': 'number', ...FLASH_FLAGS },
    async run(args, f) {
      if (args.length) throw new UsageError(`serve takes no arguments (got "${args.join(' ')}")`);
      const port = num(f.port) ?? 8080, maxBody = num(f['max-body']);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be an integer from 0 to 65535 (got ${f.port})`);
      if (maxBody !== undefined && !(Number.isInteger(maxBody) && maxBody > 0)) throw new UsageError(`--max-body must be a positive number of bytes (got ${f['max-body']})`);
      const template = str(f['chat-template']);
      const chatTemplate = template === undefined ? undefined : readFileSync(template, 'utf8');
      const apiKey = str(f['api-key']) ?? (process.env.FLASHNEURON_API_KEY || undefined);
      const model = await load(f);
      const modelId = str(f['model-id']) ?? basename((str(f.model) ?? DEFAULT_MODEL).replace(/[\\/]+$/, ''));
      try {
        const srv = await startServer(model, { host: str(f.host), port, apiKey, modelId, chatTemplate, maxBody });
        process.stderr.write(`listening on ${srv.url} (model ${srv.modelId})\n`);
        await new Promise<void>((resolve) => { process.once('SIGINT', () => resolve()); process.once('SIGTERM', () => resolve()); });
        await srv.close();
      } finally { model.close(); }
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

The text is encoded once (with BOS) and cut into windows of --context tokens, each run
from an empty KV cache (and empty neuron caches) as BOS followed by its slice. The first
window scores every token; each later window starts --context - 1 - --stride tokens before
the end of the previous one and scores only its last --stride tokens, so every token is
scored exactly once, with at least that much context. With --json the output adds "stats"
(the per-token flash figures, as for generate).

${MODEL_FLAG}
  --stride S          tokens scored per window after the first (default: half a window)
  --json              add "stats" (and "predictor_check") to the output
${FLASH_FLAGS_HELP}`,
    flags: { model: 'string', stride: 'number', json: 'boolean', ...FLASH_FLAGS },
    async run(args, f) {
      if (args.length !== 1) throw new UsageError('perplexity needs one FILE');
      const text = readFileSync(args[0], 'utf8');
      const model = await load(f);
      const r = await model.perplexity(text, { stride: num(f.stride), onProgress: bar('perplexity') });
      const out: Record<string, unknown> = { tokens: r.tokens, nll: round6(r.nll), ppl: round6(r.ppl) };
      if (f.json) { out.stats = r.stats; const c = model.predictorCheck(); if (c) out.predictor_check = c; out.options = model.options; }
      process.stdout.write(JSON.stringify(out) + '\n');
      model.close();
    },
  },
  'train-predictor': {
    usage: 'flashneuron train-predictor [options] FILE',
    help: `Trains the sparsity predictor of every FFN layer on the text in FILE: a low-rank
network d -> r -> ffn (z = W2 relu(W1 x + b1) + b2) fed with the FFN's input, trained against
the model's true activations with a loss that weighs active and inactive neurons equally,
its per-layer thresholds calibrated to a recall target on a validation split. The end of the
text is held out; the report gives per layer the recall (share of truly active neurons
predicted) and the predicted ÷ true set size there. Writes flashneuron.fnpred beside the
model (in a Hugging Face folder, or x.fnpred beside an image x.fnimg), where sparse mode finds it.

${MODEL_FLAG}
  --rank R            predictor width (default 192); smaller rungs are stored too
  --epochs E          BCE fine-tuning passes after the PCA start (default 1; 0: PCA only)
  --max-tokens N      training tokens at most (default 16000)
  --recall R          recall the thresholds are calibrated to (default 0.975)
  --out FILE          where to write the predictor (default: beside the model)
  --json              print the report as JSON`,
    flags: { model: 'string', rank: 'number', epochs: 'number', 'max-tokens': 'number', recall: 'number', out: 'string', json: 'boolean' },
    async run(args, f) {
      if (args.length !== 1) throw new UsageError('train-predictor needs one FILE of text');
      const text = readFileSync(args[0], 'utf8');
      const modelPath = typeof f.model === 'string' ? f.model : DEFAULT_MODEL;
      const model = await loadModel(modelPath, { onProgress: bar('load') });
      try {
        const p = await trainPredictor(model, text, {
          rank: num(f.rank), epochs: num(f.epochs), maxTokens: num(f['max-tokens']), targetRecall: num(f.recall), onProgress: bar('train'),
        });
        const out = str(f.out) ?? predictorPath(modelPath);
        savePredictor(out, p);
        if (f.json) process.stdout.write(JSON.stringify({ path: out, bytes: predictorBytes(p), ...p.report }) + '\n');
        else {
          process.stderr.write(`wrote ${out} (rank ${p.rank}, ${(predictorBytes(p) / 1024).toFixed(0)} KiB in memory, ${p.report.seconds.toFixed(0)} s)\n`);
          process.stdout.write(`held-out text (${p.report.heldout_tokens} tokens):\n` + p.report.layers.map((L) =>
            `layer ${L.layer}: recall ${L.recall.toFixed(3)}, predicted/true ${L.ratio.toFixed(2)}, active ${(100 * L.true_share).toFixed(1)}%, predicted ${(100 * L.predicted_share).toFixed(1)}%`).join('\n') + '\n');
        }
      } finally { model.close(); }
    },
  },
  'export-gguf': {
    usage: 'flashneuron export-gguf [--model PATH] [--powerinfer [--predictor FILE]] OUT',
    help: `Writes the model (an image or a Hugging Face folder, Llama family) as a GGUF file that
llama.cpp and its bindings load: llama architecture keys, the GPT-2 byte-level tokenizer
(tokens, merges, BOS/EOS), the weights in the image's types (f32, f16, bf16, int8 as Q8_0,
int4 as Q4_0). llama.cpp's llama graph applies SiLU: a ReLU model runs there at the same cost
but with different text.

${MODEL_FLAG}
  --powerinfer        PowerInfer's layout: ffn_down stored transposed (ffn_down_t, a neuron's
                      down column per row) and the model's sparsity predictor (the one sparse
                      mode uses) as blk.N.fc1 / fc2 (+ biases). flashneuron reads such files
                      and uses their predictor; stock llama.cpp refuses them
  --predictor FILE    with --powerinfer: this .fnpred file instead`,
    flags: { model: 'string', powerinfer: 'boolean', predictor: 'string' },
    async run(args, f) {
      if (args.length !== 1) throw new UsageError('export-gguf needs one OUT path');
      const path = typeof f.model === 'string' ? f.model : DEFAULT_MODEL;
      const image = await resolveImage(path, { onProgress: bar('convert') });
      let predictor;
      if (typeof f.predictor === 'string' && !f.powerinfer) throw new UsageError('--predictor goes with --powerinfer');
      if (f.powerinfer) {
        const file = str(f.predictor) ?? predictorPath(statSync(path).isDirectory() ? path : image);
        predictor = loadPredictor(file, modelFingerprint(readImageHeaderFile(image)));
      }
      const r = exportGGUF(image, args[0], bar('export'), { predictor, downTransposed: !!f.powerinfer });
      process.stderr.write(`wrote ${args[0]}: ${r.tensors} tensors, ${(r.bytes / 2 ** 20).toFixed(1)} MiB\n`);
    },
  },
  synth: {
    usage: 'flashneuron synth --shape SHAPE [--dtype f16|bf16|f32|int8|int4] [--seed S] [--no-bundle] OUT',
    help: `Writes an image of a real model's shape with seeded random weights, for benchmarks at
sizes no test fixture has (the text it generates is noise; its reads and arithmetic are those
of the real model). Shapes: ${Object.keys(SHAPES).join(', ')} (Llama with ReLU, as ReluLLaMA).

  --shape SHAPE       one of the shapes above
  --dtype DT          weight type of the matrices: f16 (default), bf16, f32, int8 or int4
  --seed S            random seed (default 1)
  --no-bundle         store up, gate and down apart (the unbundled ablation baseline)`,
    flags: { shape: 'string', dtype: 'string', seed: 'number', 'no-bundle': 'boolean' },
    async run(args, f) {
      if (args.length !== 1) throw new UsageError('synth needs one OUT path');
      const shape = str(f.shape);
      if (!shape) throw new UsageError('synth needs --shape');
      const dtype = dtypeFlag(f.dtype) ?? 'f16';
      const h = synthImage(shape, args[0], { dtype, seed: num(f.seed), layout: f['no-bundle'] ? 'split' : 'bundled', onProgress: bar('synth') });
      process.stderr.write(`wrote ${args[0]} (${shape}, ${dtype}, ${(h.sections.at(-1)!.offset / 2 ** 30).toFixed(2)} GiB)\n`);
    },
  },
  probe: {
    usage: 'flashneuron probe [options]',
    help: `Measures the flash device: random reads by chunk size and queue depth (O_DIRECT where
the filesystem allows it), and fits the cost model the read planner uses (latency per read,
bandwidth, parallelism). Prints the profile as JSON and saves it where the engine finds it
($FLASHNEURON_CACHE or ~/.cache/flashneuron/device.json).

  --file F            probe this file (default: a temporary 512 MiB file)
  --seconds S         time per point (default 0.4)
  --no-save           do not save the profile`,
    flags: { file: 'string', seconds: 'number', 'no-save': 'boolean' },
    async run(_args, f) {
      const prof = await probeDevice({ file: str(f.file), seconds: num(f.seconds), onProgress: bar('probe') });
      if (!f['no-save']) saveProfile(prof);
      process.stdout.write(JSON.stringify(prof) + '\n');
    },
  },
  cache: {
    usage: 'flashneuron cache ls [--json] | rm MODEL_OR_IMAGE | clear',
    help: `Manages the conversion cache ($FLASHNEURON_CACHE, else ~/.cache/flashneuron): the images
made from Hugging Face folders and GGUF files, one per source, replaced when the source
changes. A 7B model's image takes about 13.5 GB as f16 (3.8 GB as int4).

  ls                  the cached images, largest first: size and what each was made from
  rm MODEL|IMAGE      remove the image(s) of a source folder or file, or an image by name
  clear               remove every cached image (the device profile stays)
  --json              ls as JSON`,
    flags: { json: 'boolean' },
    async run(args, f) {
      const [op, ...rest] = args;
      if (op === 'ls' && !rest.length) {
        const all = listCache();
        if (f.json) { process.stdout.write(JSON.stringify({ dir: cacheDir(), images: all }) + '\n'); return; }
        const total = all.reduce((a, e) => a + e.bytes, 0);
        for (const e of all) process.stdout.write(`${(e.bytes / 2 ** 20).toFixed(1).padStart(9)} MiB  ${basename(e.image)}  ${e.record ? `${e.record.kind} ${e.record.source}` : '(no record)'}\n`);
        process.stdout.write(`${(total / 2 ** 20).toFixed(1).padStart(9)} MiB  in ${all.length} image${all.length === 1 ? '' : 's'} under ${cacheDir()}\n`);
      } else if (op === 'rm' && rest.length === 1) {
        const gone = removeFromCache(rest[0]);
        if (!gone.length) throw new Error(`nothing in the cache was made from ${rest[0]} (see flashneuron cache ls)`);
        process.stderr.write(gone.map((g) => `removed ${basename(g)}`).join('\n') + '\n');
      } else if (op === 'clear' && !rest.length) {
        process.stderr.write(`removed ${clearCache().length} cached image(s)\n`);
      } else throw new UsageError('cache takes ls, rm MODEL_OR_IMAGE or clear');
    },
  },
  convert: {
    usage: 'flashneuron convert [--no-bundle] [--dtype f32|f16|bf16|int8|int4] HF_DIR OUT',
    help: `Converts a Hugging Face checkpoint folder (config.json, tokenizer.json, safetensors,
single or sharded; F32/F16/BF16) into a flashneuron image file OUT: resident weights,
then each layer's FFN as 4096-aligned row-column bundles, with checksums. See README.

  --no-bundle         store up, gate and down apart (the unbundled ablation baseline)
  --dtype DT          store every matrix as f32, f16, bf16, int8 (GGUF Q8_0 blocks) or int4
                      (Q4_0 blocks) (default: as the checkpoint does)`,
    flags: { 'no-bundle': 'boolean', dtype: 'string' },
    async run(args, f) {
      if (args.length !== 2) throw new UsageError('convert needs HF_DIR and OUT');
      const dtype = dtypeFlag(f.dtype);
      const h = await convertHF(args[0], args[1], bar('convert'), { layout: f['no-bundle'] ? 'split' : 'bundled', dtype });
      process.stderr.write(`wrote ${args[1]}: ${h.config.architecture}, ${h.config.nLayers} layers, d=${h.config.hidden}, ffn=${h.config.ffn}, ${h.ffn.dtype}, bundle ${h.ffn.bundle_bytes} bytes\n`);
    },
  },
};

async function load(f: Flags, job: { tokenizer?: Tokenizer; jobTokens?: number } = {}): Promise<Model> {
  const mode = str(f.mode);
  if (mode !== undefined && !['dense', 'naive', 'hybrid', 'sparse'].includes(mode)) throw new UsageError(`--mode must be dense, naive, hybrid or sparse (got "${mode}")`);
  if (f.window !== undefined && f['no-window']) throw new UsageError('--window and --no-window exclude each other');
  if (f.window !== undefined && f.window !== 'lru' && !/^\d+$/.test(String(f.window))) throw new UsageError(`--window must be a number of tokens or lru (got "${f.window}")`);
  if (f.io !== undefined && f.io !== 'wasi' && f.io !== 'async' && f.io !== 'thread') throw new UsageError(`--io must be wasi, async or thread (got "${f.io}")`);
  const pdt = str(f['predictor-dtype']);
  if (pdt !== undefined && pdt !== 'q8_0' && pdt !== 'f16') throw new UsageError(`--predictor-dtype must be q8_0 or f16 (got "${pdt}")`);
  const rdt = str(f['resident-dtype']);
  if (rdt !== undefined && !['q8_0', 'stored', 'auto'].includes(rdt)) throw new UsageError(`--resident-dtype must be q8_0, stored or auto (got "${rdt}")`);
  const device = str(f.device);
  if (device !== undefined && !['cpu', 'gpu', 'auto'].includes(device)) throw new UsageError(`--device must be cpu, gpu or auto (got "${device}")`);
  const kv = str(f.kv);
  if (kv !== undefined && kv !== 'f32' && kv !== 'f16') throw new UsageError(`--kv must be f32 or f16 (got "${kv}")`);
  const model = await loadModel(typeof f.model === 'string' ? f.model : DEFAULT_MODEL, {
    ...runOptions(f), onProgress: bar('load'), tokenizer: job.tokenizer, jobTokens: job.jobTokens, predictorPath: str(f.predictor),
    layout: f['no-bundle'] ? 'split' : undefined,
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
    device: str(f.device) as RunOptions['device'],
  };
}

const str = (v: string | boolean | undefined) => (typeof v === 'string' ? v : undefined);

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

/** --dtype: f32, f16, bf16, int8 (= q8_0) or int4 (= q4_0). */
function dtypeFlag(v: string | boolean | undefined): DType | undefined {
  if (typeof v !== 'string') return undefined;
  const dt = ({ int8: 'q8_0', int4: 'q4_0' } as Record<string, DType>)[v] ?? v;
  if (!Object.hasOwn(DTYPE_BYTES, dt)) throw new UsageError(`--dtype must be f32, f16, bf16, int8 or int4 (got ${v})`);
  return dt as DType;
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
