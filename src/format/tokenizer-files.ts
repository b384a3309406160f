// The tokenizer.json of a checkpoint folder, from whichever tokenizer files it ships:
// - tokenizer.json as it is;
// - GPT-2's vocab.json + merges.txt (GPT2Tokenizer: facebook/opt-*, gpt2): a byte-level BPE;
// - a SentencePiece tokenizer.model alone (Llama-1/2 derivatives): parsed here (protobuf, a small
//   varint reader) and converted as transformers does (LlamaConverter / transformers 5's
//   LlamaTokenizer: BPE with byte_fallback, merges generated from the piece scores, the Metaspace
//   normalizer or pre-tokenizer, the Llama decoders).
// plus tokenizer_config.json with special_tokens_map.json merged over it (as transformers does).
// The same SentencePiece builder serves llama GGUF files (tokenizer.ggml.model "llama").
// No node:* imports: contents arrive as strings / bytes, or through a CheckpointFS.

import { readFully } from '../io/source.js';
import { CheckpointError, type CheckpointFS } from './safetensors.js';

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown): string => {
  let s: string;
  try { s = JSON.stringify(v) ?? String(v); } catch { s = typeof v; } // a value nested too deep for the stack
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

/**
 * What is wrong with the fields of tokenizer_config.json the tokenizer reads, or undefined (null
 * stands for absent, as transformers writes it).
 */
export function tokenizerConfigProblem(config: unknown): string | undefined {
  if (!isObj(config)) return `it is ${show(config)} (an object)`;
  for (const k of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
    const v = config[k];
    if (v != null && typeof v !== 'string' && !(isObj(v) && typeof v.content === 'string')) return `${k} is ${show(v)} (a token string, {"content": string} or null)`;
  }
  for (const k of ['add_bos_token', 'add_eos_token', 'legacy', 'add_prefix_space']) {
    if (config[k] != null && typeof config[k] !== 'boolean') return `${k} is ${show(config[k])} (true, false or null)`;
  }
  if (config.tokenizer_class != null && typeof config.tokenizer_class !== 'string') return `tokenizer_class is ${show(config.tokenizer_class)} (a class name)`;
  const extra = config.additional_special_tokens;
  if (extra != null && !Array.isArray(extra)) return `additional_special_tokens is ${show(extra)} (a list)`;
  const dec = config.added_tokens_decoder;
  if (dec != null && !isObj(dec)) return `added_tokens_decoder is ${show(dec)} (an object of id: token)`;
  for (const [id, t] of Object.entries(dec ?? {})) {
    if (!/^\d{1,9}$/.test(id) || !isObj(t) || typeof t.content !== 'string') return `added_tokens_decoder entry ${show(id)} is ${show(t)} (an id: {"content": string})`;
  }
  return undefined;
}

/**
 * What is wrong with a tokenizer.json's ids, merges and model options, or undefined. Ids are
 * integers below `vocab` (the model's embedding rows) or, without it, below the file's own count of
 * tokens, so that no table is sized by an id; one id per token within the vocabulary and within
 * added_tokens. Merges are all "a b" strings or all [a, b] pairs of vocabulary tokens whose join is
 * one too, as the Rust library requires (the JS one splits whatever it gets). unk_token is null or
 * a token of the file: the JS library gives no id for an unknown one.
 */
export function tokenizerJsonProblem(json: Json, vocab?: number): string | undefined {
  const model = json.model, added = json.added_tokens ?? [];
  if (!isObj(model) || !isObj(model.vocab) || !Array.isArray(model.merges)) return 'model needs a vocab object and a merges list';
  if (!Array.isArray(added)) return `added_tokens is ${show(added)} (a list)`;
  const v = model.vocab, entries = Object.entries(v);
  const limit = vocab ?? entries.length + added.length;
  const below = vocab === undefined ? `an integer below ${limit}, the count of tokens in the file` : `an integer below ${limit}, the model's vocabulary`;
  const byId = new Map<number, string>();
  for (const [tok, id] of entries) {
    if (!Number.isSafeInteger(id) || (id as number) < 0 || (id as number) >= limit) return `vocab id of ${show(tok)} is ${show(id)} (${below})`;
    const other = byId.get(id as number);
    if (other !== undefined) return `vocab ids of ${show(other)} and ${show(tok)} are both ${id} (one id per token)`;
    byId.set(id as number, tok);
  }
  const addedById = new Map<number, string>(), addedNames = new Set<string>();
  for (const t of added as unknown[]) {
    if (!isObj(t) || typeof t.content !== 'string' || t.content === '') return `added token ${show(t)} (an object with a non-empty content)`;
    if (!Number.isSafeInteger(t.id) || (t.id as number) < 0 || (t.id as number) >= limit) return `added token ${show(t.content)} has id ${show(t.id)} (${below})`;
    const other = addedById.get(t.id as number);
    if (other !== undefined && other !== t.content) return `added tokens ${show(other)} and ${show(t.content)} both have id ${t.id} (one id per token)`;
    for (const k of ['special', 'single_word', 'lstrip', 'rstrip', 'normalized']) {
      if (t[k] != null && typeof t[k] !== 'boolean') return `added token ${show(t.content)} has ${k} ${show(t[k])} (true or false)`;
    }
    addedById.set(t.id as number, t.content);
    addedNames.add(t.content);
  }
  for (const k of ['byte_fallback', 'ignore_merges', 'fuse_unk']) {
    if (model[k] != null && typeof model[k] !== 'boolean') return `model.${k} is ${show(model[k])} (true, false or null)`;
  }
  const unk = model.unk_token;
  if (unk != null && (typeof unk !== 'string' || (!Object.hasOwn(v, unk) && !addedNames.has(unk)))) return `model.unk_token is ${show(unk)} (null or a token of the file)`;
  const merges = model.merges as unknown[], pairs = Array.isArray(merges[0]);
  for (let i = 0; i < merges.length; i++) {
    const m = merges[i];
    const ab = pairs ? (Array.isArray(m) && m.length === 2 ? m : []) : typeof m === 'string' ? m.split(' ') : [];
    if (ab.length !== 2 || typeof ab[0] !== 'string' || typeof ab[1] !== 'string') {
      return `merge ${i} is ${show(m)} (${pairs ? 'a pair [a, b] of tokens, as merge 0' : 'a string "a b": two tokens and one space, as merge 0'})`;
    }
    for (const t of [ab[0], ab[1], ab[0] + ab[1]]) {
      if (!Object.hasOwn(v, t)) return `merge ${i} ${show(ab)} needs ${show(t)}, which is not in the vocabulary (merges join two vocabulary tokens into a third)`;
    }
  }
  return undefined;
}

/** The tokenizer files of a folder that were found: text files as text, tokenizer.model as bytes. */
export interface TokenizerFiles {
  tokenizerJson?: string;
  tokenizerConfig?: string;
  specialTokensMap?: string;
  vocabJson?: string;
  mergesTxt?: string;
  tokenizerModel?: Uint8Array;
}

/** Which files each field of TokenizerFiles comes from. */
export const TOKENIZER_FILE_NAMES = {
  tokenizerJson: 'tokenizer.json',
  tokenizerConfig: 'tokenizer_config.json',
  specialTokensMap: 'special_tokens_map.json',
  vocabJson: 'vocab.json',
  mergesTxt: 'merges.txt',
  tokenizerModel: 'tokenizer.model',
} as const;

export interface BuiltTokenizer {
  /** tokenizer.json text (the folder's own, or built from its other files). */
  tokenizerJson: string;
  /** tokenizer_config.json with special_tokens_map.json merged over it; undefined when neither exists. */
  tokenizerConfig?: Json;
  /** What the tokenizer.json came from. */
  source: 'tokenizer.json' | 'vocab.json+merges.txt' | 'tokenizer.model';
}

function parseObject(text: string, file: string, label: (f: string) => string): Json {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${label(file)}: not valid JSON (${(e as Error).message})`, { file: label(file) });
  }
  if (!isObj(j)) throw new CheckpointError(`${label(file)}: must be a JSON object`, { file: label(file) });
  return j;
}

/**
 * Builds the tokenizer from the files found (see TokenizerFiles): tokenizer.json when present,
 * else vocab.json + merges.txt, else tokenizer.model. `label` names files in errors.
 */
export function tokenizerFromFiles(files: TokenizerFiles, label: (file: string) => string = (f) => f, dir = label(''), modelVocab?: number): BuiltTokenizer {
  const N = TOKENIZER_FILE_NAMES;
  const tc = files.tokenizerConfig === undefined ? undefined : parseObject(files.tokenizerConfig, N.tokenizerConfig, label);
  const stm = files.specialTokensMap === undefined ? undefined : parseObject(files.specialTokensMap, N.specialTokensMap, label);
  // transformers reads special_tokens_map.json after tokenizer_config.json; its entries win.
  let config: Json | undefined = tc || stm ? { ...tc, ...stm } : undefined;
  const cp = config && tokenizerConfigProblem(config);
  if (cp) throw new CheckpointError(`${label(N.tokenizerConfig)}: ${cp}`, { file: label(N.tokenizerConfig) });
  if (files.tokenizerJson !== undefined) {
    const j = parseObject(files.tokenizerJson, N.tokenizerJson, label);
    // Other model types are named by the Tokenizer as unsupported.
    const problem = isObj(j.model) && j.model.type === 'BPE' ? tokenizerJsonProblem(j, modelVocab) : undefined;
    if (problem) throw new CheckpointError(`${label(N.tokenizerJson)}: ${problem}`, { file: label(N.tokenizerJson) });
    return { tokenizerJson: files.tokenizerJson, tokenizerConfig: config, source: 'tokenizer.json' };
  }
  const wrap = <T>(file: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof CheckpointError) throw e;
      // A message that starts with another file's name is about that file (vocab.json, the config's added tokens).
      const m = /^(vocab\.json|tokenizer_config\.json): (.*)$/.exec((e as Error).message), at = label(m ? m[1] : file);
      throw new CheckpointError(`${at}: ${m ? m[2] : (e as Error).message}`, { file: at });
    }
  };
  if (files.vocabJson !== undefined && files.mergesTxt !== undefined) {
    const vocab = parseObject(files.vocabJson, N.vocabJson, label);
    const json = wrap(N.mergesTxt, () => gpt2TokenizerJson(vocab, files.mergesTxt!, config, modelVocab));
    return { tokenizerJson: json, tokenizerConfig: config, source: 'vocab.json+merges.txt' };
  }
  if (files.tokenizerModel !== undefined) {
    const spm = wrap(N.tokenizerModel, () => parseSentencePieceModel(files.tokenizerModel!));
    // A model without the dummy prefix: transformers' add_prefix_space (default true) follows it here.
    if (!spm.addDummyPrefix && config?.add_prefix_space === undefined) config = { ...config, add_prefix_space: false };
    const json = wrap(N.tokenizerModel, () => sentencePieceTokenizerJson(spm, config, modelVocab));
    return { tokenizerJson: json, tokenizerConfig: config, source: 'tokenizer.model' };
  }
  const half = files.vocabJson !== undefined ? ' (vocab.json is there, merges.txt is not)' : files.mergesTxt !== undefined ? ' (merges.txt is there, vocab.json is not)' : '';
  throw new CheckpointError(
    `missing tokenizer.json in ${dir}, and no vocab.json + merges.txt or tokenizer.model to build one from${half}`,
    { file: label(N.tokenizerJson) },
  );
}

/** Reads the tokenizer files of a checkpoint folder and builds its tokenizer (see tokenizerFromFiles). */
export function readCheckpointTokenizer(fs: CheckpointFS, dir = fs.label(''), modelVocab?: number): BuiltTokenizer {
  const N = TOKENIZER_FILE_NAMES;
  const files: TokenizerFiles = {};
  const text = (k: Exclude<keyof TokenizerFiles, 'tokenizerModel'>) => {
    const t = fs.readText(N[k]);
    if (t !== undefined) files[k] = t;
  };
  text('tokenizerConfig');
  text('specialTokensMap');
  text('tokenizerJson');
  if (files.tokenizerJson === undefined) {
    text('vocabJson');
    text('mergesTxt');
    if (files.vocabJson === undefined || files.mergesTxt === undefined) {
      const f = fs.open(N.tokenizerModel);
      if (f) {
        try {
          const bytes = new Uint8Array(f.size);
          if (readFully(f, bytes, 0) !== bytes.length) {
            throw new CheckpointError(`${fs.label(N.tokenizerModel)}: short read`, { file: fs.label(N.tokenizerModel) });
          }
          files.tokenizerModel = bytes;
        } finally {
          f.close?.();
        }
      }
    }
  }
  return tokenizerFromFiles(files, (f) => fs.label(f), dir, modelVocab);
}

// ---------------------------------------------------------------------------------------------
// Shared pieces of the tokenizer.json we write.

const tokenName = (t: unknown): string | undefined =>
  typeof t === 'string' ? t : isObj(t) && typeof t.content === 'string' ? t.content : undefined;

interface AddedToken { id: number; content: string; special: boolean }

/** The added_tokens entries, sorted by id. */
function addedTokensJson(list: AddedToken[]): Json[] {
  return [...list].sort((a, b) => a.id - b.id).map((t) => ({
    id: t.id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: t.special,
  }));
}

/**
 * Added tokens a slow tokenizer's config declares: added_tokens_decoder, then the special tokens
 * it names (bos, eos, unk, pad, additional_special_tokens). Names missing from `vocab` get new ids.
 */
function configAddedTokens(vocab: Map<string, number>, config: Json | undefined, known: AddedToken[]): AddedToken[] {
  const out = [...known];
  const byContent = new Map(out.map((t) => [t.content, t]));
  let next = vocab.size;
  for (const id of vocab.values()) next = Math.max(next, id + 1);
  for (const t of out) next = Math.max(next, t.id + 1);
  const add = (content: string, id: number | undefined, special: boolean) => {
    const have = byContent.get(content);
    if (have) {
      have.special ||= special;
      return;
    }
    const t = { id: id ?? vocab.get(content) ?? next++, content, special };
    out.push(t);
    byContent.set(content, t);
  };
  const dec = config?.added_tokens_decoder;
  if (isObj(dec)) {
    for (const [id, t] of Object.entries(dec)) {
      const name = tokenName(t);
      if (name !== undefined && /^\d+$/.test(id)) add(name, Number(id), isObj(t) && t.special === true);
    }
  }
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
    const name = tokenName(config?.[key]);
    if (name !== undefined) add(name, undefined, true);
  }
  const extra = config?.additional_special_tokens;
  if (Array.isArray(extra)) for (const t of extra) { const n = tokenName(t); if (n !== undefined) add(n, undefined, true); }
  return out;
}

/** TemplateProcessing that puts `bos` before and `eos` after the sequence (either may be absent); null when neither. */
function templateJson(bos: { name: string; id: number } | undefined, eos: { name: string; id: number } | undefined): Json | null {
  if (!bos && !eos) return null;
  const tok = (t: { name: string }, type_id: number) => ({ SpecialToken: { id: t.name, type_id } });
  const seq = (id: string, type_id: number) => ({ Sequence: { id, type_id } });
  const one = (type_id: number, id: string) => [...(bos ? [tok(bos, type_id)] : []), seq(id, type_id), ...(eos ? [tok(eos, type_id)] : [])];
  const special_tokens: Json = {};
  for (const t of [bos, eos]) if (t) special_tokens[t.name] = { id: t.name, ids: [t.id], tokens: [t.name] };
  return { type: 'TemplateProcessing', single: one(0, 'A'), pair: [...one(0, 'A'), ...one(1, 'B')], special_tokens };
}

function specialRef(config: Json | undefined, key: string, flag: boolean, added: AddedToken[], fallback?: string) {
  if (!flag) return undefined;
  const name = tokenName(config?.[key]) ?? fallback;
  const t = name === undefined ? undefined : added.find((a) => a.content === name);
  return t ? { name: t.content, id: t.id } : undefined;
}

// ---------------------------------------------------------------------------------------------
// GPT-2 vocab.json + merges.txt.

/**
 * tokenizer.json for GPT-2-style files, as transformers' GPT2Tokenizer reads them: byte-level BPE,
 * the special tokens tokenizer_config.json names (for OPT only `</s>` and `<pad>`: a literal `<s>`
 * in the text is ordinary text), `add_bos_token` / `add_eos_token` as a template.
 */
export function gpt2TokenizerJson(vocab: Json, mergesTxt: string, config?: Json, modelVocab?: number): string {
  const ids = new Map<string, number>(), n = modelVocab ?? Object.keys(vocab).length;
  for (const [tok, id] of Object.entries(vocab)) {
    if (!Number.isInteger(id) || (id as number) < 0) throw new Error(`vocab.json: id of ${JSON.stringify(tok)} is not an index`);
    if ((id as number) >= n) throw new Error(`vocab.json: id of ${show(tok)} is ${id} (below ${n}, the ${modelVocab ? "model's vocabulary" : 'count of tokens'})`);
    ids.set(tok, id as number);
  }
  const lines = mergesTxt.split(/\r?\n/);
  if (lines.length && lines[0].startsWith('#')) lines.shift(); // "#version: 0.2"
  const merges: [string, string][] = [];
  lines.forEach((line, i) => {
    if (line === '') return;
    const parts = line.split(' ');
    if (parts.length !== 2) throw new Error(`line ${i + 2} is not two tokens separated by one space: ${JSON.stringify(line)}`);
    const missing = [parts[0], parts[1], parts[0] + parts[1]].find((t) => !ids.has(t));
    if (missing !== undefined) throw new Error(`line ${i + 2} needs ${show(missing)}, which is not in vocab.json (merges join two tokens into a third)`);
    merges.push([parts[0], parts[1]]);
  });
  const added = configAddedTokens(ids, config, []);
  const bos = specialRef(config, 'bos_token', config?.add_bos_token === true, added);
  const eos = specialRef(config, 'eos_token', config?.add_eos_token === true, added);
  const prefixSpace = config?.add_prefix_space === true;
  return checkedJson({
    version: '1.0', truncation: null, padding: null, added_tokens: addedTokensJson(added), normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: prefixSpace, trim_offsets: true, use_regex: true },
    post_processor: templateJson(bos, eos),
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges,
    },
  }, modelVocab);
}

/** The tokenizer.json text of what was built, its ids checked (the config's added tokens included). */
function checkedJson(json: Json, modelVocab: number | undefined): string {
  const problem = tokenizerJsonProblem(json, modelVocab);
  // Added tokens past the file's own come from tokenizer_config.json (its ids are checked as vocabulary first).
  if (problem) throw new Error(`${problem.startsWith('added token') ? 'tokenizer_config.json: ' : ''}${problem}`);
  return JSON.stringify(json);
}

// ---------------------------------------------------------------------------------------------
// SentencePiece tokenizer.model.

/** SentencePiece piece types (sentencepiece_model.proto). */
export const SP_NORMAL = 1, SP_UNKNOWN = 2, SP_CONTROL = 3, SP_USER_DEFINED = 4, SP_UNUSED = 5, SP_BYTE = 6;
const MODEL_TYPES: Record<number, string> = { 1: 'UNIGRAM', 2: 'BPE', 3: 'WORD', 4: 'CHAR' };

export interface SentencePiece {
  piece: string;
  score: number;
  type: number;
}

/** What a ModelProto says that the conversion reads (defaults as in sentencepiece_model.proto). */
export interface SentencePieceModel {
  pieces: SentencePiece[];
  /** trainer_spec.model_type: 1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR. */
  modelType: number;
  byteFallback: boolean;
  treatWhitespaceAsSuffix: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  addDummyPrefix: boolean;
  /** Read for reference only: transformers' conversion ignores the SentencePiece normalizer, and so does ours. */
  removeExtraWhitespaces: boolean;
  normalizerName: string;
}

/** A protobuf wire-format reader over one message. */
class Proto {
  pos = 0;
  constructor(readonly buf: Uint8Array, readonly what: string) {}
  get done(): boolean { return this.pos >= this.buf.length; }
  fail(why: string): never { throw new Error(`not a SentencePiece model (${this.what}: ${why} at byte ${this.pos})`); }
  /** A varint: `lo` its low 32 bits (int32 fields: lo | 0), `value` the number (exact below 2^53). */
  varint(): { lo: number; value: number } {
    let lo = 0, value = 0, scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) this.fail('truncated varint');
      const b = this.buf[this.pos++];
      if (i < 5) lo = (lo | ((b & 0x7f) << (7 * i))) >>> 0;
      value += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) return { lo, value };
    }
    return this.fail('varint longer than 10 bytes');
  }
  /** Next field: number and wire type. */
  key(): { field: number; wire: number } {
    const k = this.varint().value;
    return { field: Math.floor(k / 8), wire: k % 8 };
  }
  bytes(): Uint8Array {
    const n = this.varint().value;
    if (n > this.buf.length - this.pos) this.fail('length past the end');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  fixed32(): number {
    if (this.pos + 4 > this.buf.length) this.fail('truncated float');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) { if (this.pos + 8 > this.buf.length) this.fail('truncated'); this.pos += 8; }
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.fixed32();
    else this.fail(`wire type ${wire}`);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses a SentencePiece ModelProto (tokenizer.model). Throws on anything that is not one. */
export function parseSentencePieceModel(bytes: Uint8Array): SentencePieceModel {
  const m: SentencePieceModel = {
    pieces: [], modelType: 1, byteFallback: false, treatWhitespaceAsSuffix: false, unkId: 0, bosId: 1, eosId: 2, padId: -1,
    addDummyPrefix: true, removeExtraWhitespaces: true, normalizerName: '',
  };
  const str = (p: Proto) => {
    try {
      return utf8.decode(p.bytes());
    } catch {
      return p.fail('a string is not UTF-8');
    }
  };
  const top = new Proto(bytes, 'ModelProto');
  while (!top.done) {
    const { field, wire } = top.key();
    if (field === 1 && wire === 2) {
      const p = new Proto(top.bytes(), `piece ${m.pieces.length}`);
      const piece: SentencePiece = { piece: '', score: 0, type: SP_NORMAL };
      while (!p.done) {
        const k = p.key();
        if (k.field === 1 && k.wire === 2) piece.piece = str(p);
        else if (k.field === 2 && k.wire === 5) piece.score = p.fixed32();
        else if (k.field === 3 && k.wire === 0) piece.type = p.varint().lo;
        else p.skip(k.wire);
      }
      if (piece.piece === '') p.fail('empty piece');
      if (Number.isNaN(piece.score)) p.fail('score is not a number'); // merges would sort in no defined order
      m.pieces.push(piece);
    } else if (field === 2 && wire === 2) {
      const t = new Proto(top.bytes(), 'trainer_spec');
      while (!t.done) {
        const k = t.key();
        if (k.wire !== 0) { t.skip(k.wire); continue; }
        const v = t.varint().lo | 0;
        if (k.field === 3) m.modelType = v;
        else if (k.field === 24) m.treatWhitespaceAsSuffix = v !== 0;
        else if (k.field === 35) m.byteFallback = v !== 0;
        else if (k.field === 40) m.unkId = v;
        else if (k.field === 41) m.bosId = v;
        else if (k.field === 42) m.eosId = v;
        else if (k.field === 43) m.padId = v;
      }
    } else if (field === 3 && wire === 2) {
      const n = new Proto(top.bytes(), 'normalizer_spec');
      while (!n.done) {
        const k = n.key();
        if (k.field === 1 && k.wire === 2) m.normalizerName = str(n);
        else if (k.field === 3 && k.wire === 0) m.addDummyPrefix = n.varint().lo !== 0;
        else if (k.field === 4 && k.wire === 0) m.removeExtraWhitespaces = n.varint().lo !== 0;
        else n.skip(k.wire);
      }
    } else {
      top.skip(wire);
    }
  }
  if (m.pieces.length === 0) top.fail('no pieces');
  return m;
}

/**
 * Merges from piece scores, as transformers' generate_merges: every split of every piece into two
 * pieces of the vocabulary (per piece ordered by the halves' ids), then all of them ordered by the
 * piece's score, then the left and the right half's length in code points, highest first (stable).
 */
export function mergesFromScores(pieces: readonly { piece: string; score: number }[]): [string, string][] {
  const ids = new Map<string, number>();
  pieces.forEach((p, i) => { if (!ids.has(p.piece)) ids.set(p.piece, i); });
  // Splits are found through rolling hashes of each piece's prefixes and suffixes (linear in its
  // length; trying every split is quadratic, and a hostile piece can be long), then verified.
  const P = 67108859, B = 65599, hashes = new Set<number>();
  for (const k of ids.keys()) { let h = 0; for (let i = 0; i < k.length; i++) h = (h * B + k.charCodeAt(i)) % P; hashes.add(h); }
  const all: { l: string; r: string; score: number; ll: number; lr: number }[] = [];
  for (const { piece, score } of pieces) {
    const n = piece.length, pre = [0], pw = [1];
    for (let i = 0; i < n; i++) { pre.push((pre[i] * B + piece.charCodeAt(i)) % P); pw.push((pw[i] * B) % P); }
    let cps = 0;
    for (const _ of piece) cps++;
    const local: { l: string; r: string; il: number; ir: number; ll: number; lr: number }[] = [];
    for (let o = 0, i = 0; ;) {
      o += piece.codePointAt(o)! > 0xffff ? 2 : 1;
      if (++i >= cps) break;
      if (!hashes.has(pre[o]) || !hashes.has((((pre[n] - pre[o] * pw[n - o]) % P) + P) % P)) continue;
      const l = piece.slice(0, o), r = piece.slice(o), il = ids.get(l), ir = ids.get(r);
      if (il !== undefined && ir !== undefined) local.push({ l, r, il, ir, ll: i, lr: cps - i });
    }
    local.sort((a, b) => a.il - b.il || a.ir - b.ir);
    for (const x of local) all.push({ l: x.l, r: x.r, score, ll: x.ll, lr: x.lr });
  }
  all.sort((a, b) => b.score - a.score || b.ll - a.ll || b.lr - a.lr);
  return all.map((x) => [x.l, x.r]);
}

/**
 * tokenizer.json for a SentencePiece BPE model, as transformers' LlamaConverter writes it: the
 * pieces as the vocabulary (unknown and control pieces as special added tokens, user-defined ones
 * as added tokens), merges from the scores, byte fallback, `▁` for spaces (legacy: a Prepend +
 * Replace normalizer; legacy false: a Metaspace pre-tokenizer that prepends on the first section
 * only), the Llama decoders, and BOS / EOS by template per add_bos_token (default true) /
 * add_eos_token (default false). `config` is tokenizer_config.json; legacy defaults to true and
 * add_prefix_space to the model's add_dummy_prefix.
 */
export function sentencePieceTokenizerJson(model: SentencePieceModel, config?: Json, modelVocab?: number): string {
  if (model.modelType !== 2) {
    throw new Error(`Unsupported tokenizer.model feature: model_type ${MODEL_TYPES[model.modelType] ?? model.modelType} (only BPE is converted)`);
  }
  if (model.treatWhitespaceAsSuffix) throw new Error('Unsupported tokenizer.model feature: treat_whitespace_as_suffix');
  const vocab: Json = {};
  const ids = new Map<string, number>();
  const known: AddedToken[] = [];
  model.pieces.forEach((p, id) => {
    if (ids.has(p.piece)) throw new Error(`not a SentencePiece model (piece ${JSON.stringify(p.piece)} appears twice)`);
    ids.set(p.piece, id);
    vocab[p.piece] = id;
    if (p.type === SP_UNKNOWN || p.type === SP_CONTROL || p.type === SP_USER_DEFINED) {
      known.push({ id, content: p.piece, special: p.type !== SP_USER_DEFINED });
    }
  });
  const added = configAddedTokens(ids, config, known);
  const legacy = config?.legacy !== false;
  const prefix = config?.add_prefix_space === undefined ? model.addDummyPrefix : config.add_prefix_space !== false;
  const piece = (id: number) => (id >= 0 && id < model.pieces.length ? model.pieces[id].piece : undefined);
  const bos = specialRef(config, 'bos_token', config?.add_bos_token !== false, added, piece(model.bosId));
  const eos = specialRef(config, 'eos_token', config?.add_eos_token === true, added, piece(model.eosId));
  const unk = piece(model.unkId);
  return checkedJson({
    version: '1.0', truncation: null, padding: null, added_tokens: addedTokensJson(added),
    normalizer: legacy
      ? { type: 'Sequence', normalizers: [...(prefix ? [{ type: 'Prepend', prepend: '▁' }] : []), { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] }
      : null,
    pre_tokenizer: legacy ? null : { type: 'Metaspace', replacement: '▁', prepend_scheme: prefix ? 'first' : 'never', split: false },
    post_processor: templateJson(bos, eos),
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
        ...(prefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      type: 'BPE', dropout: null, unk_token: unk ?? null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: mergesFromScores(model.pieces),
    },
  }, modelVocab);
}

/**
 * The tokenizer of a llama GGUF whose tokenizer.ggml.model is "llama" (SentencePiece): its tokens,
 * scores and token types are the model's pieces, converted as a tokenizer.model is
 * (sentencePieceTokenizerJson), with BOS / EOS / UNK and add_bos_token / add_eos_token /
 * add_space_prefix from the metadata. `get` reads one metadata key. The config names no
 * tokenizer_class: the file is read as written (`▁` prepended to every section, as llama.cpp and
 * sentencepiece do).
 */
export function ggufSentencePieceTokenizer(get: (key: string) => unknown): { tokenizerJson: string; tokenizerConfig: Json } {
  const tokens = get('tokenizer.ggml.tokens'), scores = get('tokenizer.ggml.scores'), types = get('tokenizer.ggml.token_type');
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === 'string')) throw new Error('tokenizer.ggml.tokens must be a list of strings');
  if (!Array.isArray(scores) || scores.length !== tokens.length) throw new Error('tokenizer.ggml.scores must give one score per token');
  if (types !== undefined && (!Array.isArray(types) || types.length !== tokens.length)) throw new Error('tokenizer.ggml.token_type must give one type per token');
  const num = (k: string, dflt: number): number => {
    const v = get(k);
    const n = v === undefined ? dflt : Number(v);
    if (!Number.isSafeInteger(n)) throw new Error(`${k} is not a token id`);
    return n;
  };
  const unkId = num('tokenizer.ggml.unknown_token_id', 0), bosId = num('tokenizer.ggml.bos_token_id', 1), eosId = num('tokenizer.ggml.eos_token_id', 2);
  const typeOf = (piece: string, i: number): number =>
    types ? Number(types[i]) : i === unkId ? SP_UNKNOWN : i === bosId || i === eosId ? SP_CONTROL : /^<0x[0-9A-F]{2}>$/.test(piece) ? SP_BYTE : SP_NORMAL;
  const pieces = (tokens as string[]).map((piece, i) => ({ piece, score: Number(scores[i]), type: typeOf(piece, i) }));
  const model: SentencePieceModel = {
    pieces, modelType: 2, byteFallback: pieces.some((p) => p.type === SP_BYTE), treatWhitespaceAsSuffix: false,
    unkId, bosId, eosId, padId: num('tokenizer.ggml.padding_token_id', -1),
    addDummyPrefix: get('tokenizer.ggml.add_space_prefix') !== false, removeExtraWhitespaces: false, normalizerName: 'identity',
  };
  const config: Json = { add_bos_token: get('tokenizer.ggml.add_bos_token') !== false, add_eos_token: get('tokenizer.ggml.add_eos_token') === true };
  for (const [key, id] of [['bos_token', bosId], ['eos_token', eosId], ['unk_token', unkId]] as const) {
    if (id >= 0 && id < tokens.length) config[key] = tokens[id];
  }
  if (!model.addDummyPrefix) config.add_prefix_space = false;
  return { tokenizerJson: sentencePieceTokenizerJson(model, config), tokenizerConfig: config };
}
