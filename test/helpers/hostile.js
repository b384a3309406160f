// Helpers for building hostile / synthetic checkpoints at test time (in os.tmpdir(), never committed).
//
//   copyModel(src)                     → fresh temp copy of a checkpoint folder (real copies, never links)
//   tmpDir()                           → fresh empty temp folder
//   cleanupTmp()                       → removes every folder these helpers created
//   readSafetensors(path)              → { header, headerLength, dataStart, data }
//   writeSafetensors(path, tensors, metadata?) → writes a valid file (encodeSafetensors: its bytes)
//   writeRawSafetensors(path, header, data, { headerLength })  → writes any header/data, valid or not
//                                        (encodeRawSafetensors: its bytes)
//   patchHeader(path, fn)              → rewrites the JSON header (fn mutates or returns it); data kept
//   setHeaderLength(path, n)           → overwrites the u64 header length
//   truncateFile(path, len)            → cuts a file to len bytes (negative: from the end)
//   readJson(path) / patchJson(path, fn)
//   shardOf(dir, tensorName)           → absolute path of the shard that holds a tensor
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const created = [];

/** A new empty temp folder, removed by cleanupTmp(). */
export function tmpDir(tag = 'fn') {
  const d = mkdtempSync(join(tmpdir(), `flashneuron-${tag}-`));
  created.push(d);
  return d;
}

/** Copies every regular file of a checkpoint folder (not recursive) into a fresh temp folder. */
export function copyModel(src, { skip = [] } = {}) {
  const dst = tmpDir('model');
  for (const name of readdirSync(src)) {
    if (skip.includes(name)) continue;
    const p = join(src, name);
    if (statSync(p).isFile()) copyFileSync(p, join(dst, name));
  }
  return dst;
}

export function cleanupTmp() {
  while (created.length) rmSync(created.pop(), { recursive: true, force: true });
}

const DTYPE_SIZE = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError('tensor data must be a typed array or ArrayBuffer');
}

/** Header bytes padded with spaces to a multiple of 8 (as the reference writer does). */
function headerBytes(header) {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  let b = Buffer.from(text, 'utf8');
  const pad = (8 - (b.length % 8)) % 8;
  if (pad) b = Buffer.concat([b, Buffer.alloc(pad, 0x20)]);
  return b;
}

/**
 * Writes a valid safetensors file. `tensors`: { name: { dtype: 'F32'|'F16'|..., shape: number[],
 * data?: TypedArray|Uint8Array } } — data defaults to zeros of the right size.
 */
export function writeSafetensors(path, tensors, metadata = { format: 'pt' }) {
  writeFileSync(path, encodeSafetensors(tensors, metadata));
}

/** The bytes writeSafetensors would write. */
export function encodeSafetensors(tensors, metadata = { format: 'pt' }) {
  const header = {};
  if (metadata) header.__metadata__ = metadata;
  const chunks = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const size = DTYPE_SIZE[t.dtype];
    const bytes = t.data !== undefined ? asBytes(t.data) : new Uint8Array(size === undefined ? 0 : numel * size);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + bytes.length] };
    chunks.push(bytes);
    off += bytes.length;
  }
  return encodeRawSafetensors(header, Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength))));
}

/** Writes header (object or raw string) + data; `headerLength` overrides the stored u64 length. */
export function writeRawSafetensors(path, header, data = new Uint8Array(0), opts = {}) {
  writeFileSync(path, encodeRawSafetensors(header, data, opts));
}

/** The bytes writeRawSafetensors would write. */
export function encodeRawSafetensors(header, data = new Uint8Array(0), { headerLength } = {}) {
  const hb = headerBytes(header);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerLength ?? hb.length));
  return Buffer.concat([len, hb, Buffer.from(asBytes(data))]);
}

/** Parses a safetensors file without validation. */
export function readSafetensors(path) {
  const buf = readFileSync(path);
  const headerLength = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLength).toString('utf8'));
  const dataStart = 8 + headerLength;
  return { header, headerLength, dataStart, data: buf.subarray(dataStart) };
}

/** Rewrites a file's JSON header, keeping its data region byte for byte. */
export function patchHeader(path, fn) {
  const { header, data } = readSafetensors(path);
  const out = fn(header) ?? header;
  writeRawSafetensors(path, out, data);
}

export function setHeaderLength(path, n) {
  const fd = openSync(path, 'r+');
  try {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    writeSync(fd, b, 0, 8, 0);
  } finally {
    closeSync(fd);
  }
}

/** Cuts a file to `len` bytes; a negative `len` removes that many bytes from the end. */
export function truncateFile(path, len) {
  const size = statSync(path).size;
  truncateSync(path, len < 0 ? size + len : len);
}

export function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** Rewrites a JSON file; `fn` mutates its argument or returns a replacement. */
export function patchJson(path, fn) {
  const j = readJson(path);
  const out = fn(j) ?? j;
  writeFileSync(path, JSON.stringify(out, null, 2));
}

/** Absolute path of the shard that holds `tensor` (index or single model.safetensors). */
export function shardOf(dir, tensor) {
  let idx;
  try {
    idx = readJson(join(dir, 'model.safetensors.index.json'));
  } catch {
    return join(dir, 'model.safetensors');
  }
  const shard = idx.weight_map[tensor];
  if (!shard) throw new Error(`tensor ${tensor} is not in the index of ${dir}`);
  return join(dir, shard);
}

/** A seeded integer in [0, n) for a test's label (the same on every run): FNV-1a of the label. */
export function seeded(label, n) {
  let h = 2166136261;
  for (const c of label) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  return h % n;
}
