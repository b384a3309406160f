// Test-time mutations of GGUF and safetensors files (the hostile cases of
// test/hostile-formats.test.js). No validation here: these read and write whatever they are given.
//
//   decodeGGUF(buf)        → { version, kv: [{ key, type, arrayType?, value }], tensors: [{ name, dims, type, offset }], alignment, data }
//   encodeGGUF(g)          → Buffer (header, padding to g.alignment, g.data); counts from the arrays
//                            unless g.nTensors / g.nKv override them
//   layoutGGUF(buf)        → byte positions: { nTensorsAt, nKvAt, kv: [{ key, typeAt, valueAt, countAt? }],
//                            tensors: [{ name, nameLenAt, ndAt, dimsAt, typeAt, offsetAt }] }
//   setKV(g, key, type, value, arrayType?) / dropKV(g, key) / kvOf(g, key)
//   GGUF_T                 → the metadata value type codes
//   rewriteSafetensors(path, fn) → fn edits { name: { dtype, shape, data } }; written back valid
//   tensorBytesOf(path, name)    → { dtype, shape, data } of one safetensors tensor
import { readSafetensors, writeSafetensors } from './hostile.js';

export const GGUF_T = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 };
const SIZE = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

function reader(buf) {
  let pos = 0;
  const r = {
    get pos() { return pos; },
    u32() { const v = buf.readUInt32LE(pos); pos += 4; return v; },
    u64() { const v = buf.readBigUInt64LE(pos); pos += 8; return v; },
    str() { const n = Number(r.u64()); const s = buf.subarray(pos, pos + n).toString('utf8'); pos += n; return s; },
    scalar(t) {
      const at = pos;
      pos += SIZE[t];
      switch (t) {
        case 0: return buf.readUInt8(at); case 1: return buf.readInt8(at); case 2: return buf.readUInt16LE(at); case 3: return buf.readInt16LE(at);
        case 4: return buf.readUInt32LE(at); case 5: return buf.readInt32LE(at); case 6: return buf.readFloatLE(at); case 7: return buf[at] === 1;
        case 10: return buf.readBigUInt64LE(at); case 11: return buf.readBigInt64LE(at); case 12: return buf.readDoubleLE(at);
        default: throw new Error(`type ${t}`);
      }
    },
  };
  return r;
}

/** Every position the hostile tests patch, without decoding values. */
export function layoutGGUF(buf) {
  const r = reader(buf);
  r.u32(); r.u32();
  const nTensorsAt = r.pos, nTensors = Number(r.u64()), nKvAt = r.pos, nKv = Number(r.u64());
  const kv = [];
  for (let i = 0; i < nKv; i++) {
    const key = r.str(), typeAt = r.pos, type = r.u32(), valueAt = r.pos;
    const e = { key, typeAt, valueAt, type };
    if (type === GGUF_T.ARRAY) {
      const et = r.u32();
      e.countAt = r.pos;
      const n = Number(r.u64());
      for (let j = 0; j < n; j++) (et === GGUF_T.STRING ? r.str() : r.scalar(et));
    } else if (type === GGUF_T.STRING) r.str();
    else r.scalar(type);
    kv.push(e);
  }
  const tensors = [];
  for (let i = 0; i < nTensors; i++) {
    const nameLenAt = r.pos, name = r.str(), ndAt = r.pos, nd = r.u32(), dimsAt = r.pos;
    for (let j = 0; j < nd; j++) r.u64();
    const typeAt = r.pos; r.u32();
    const offsetAt = r.pos; r.u64();
    tensors.push({ name, nameLenAt, ndAt, dimsAt, typeAt, offsetAt });
  }
  return { nTensorsAt, nKvAt, kv, tensors, headerEnd: r.pos };
}

export function decodeGGUF(buf) {
  const r = reader(buf);
  r.u32();
  const version = r.u32(), nTensors = Number(r.u64()), nKv = Number(r.u64());
  const kv = [];
  for (let i = 0; i < nKv; i++) {
    const key = r.str(), type = r.u32();
    if (type === GGUF_T.ARRAY) {
      const arrayType = r.u32(), n = Number(r.u64()), value = [];
      for (let j = 0; j < n; j++) value.push(arrayType === GGUF_T.STRING ? r.str() : r.scalar(arrayType));
      kv.push({ key, type, arrayType, value });
    } else kv.push({ key, type, value: type === GGUF_T.STRING ? r.str() : r.scalar(type) });
  }
  const tensors = [];
  for (let i = 0; i < nTensors; i++) {
    const name = r.str(), nd = r.u32(), dims = [];
    for (let j = 0; j < nd; j++) dims.push(Number(r.u64()));
    tensors.push({ name, dims, type: r.u32(), offset: Number(r.u64()) });
  }
  const alignment = Number(kv.find((e) => e.key === 'general.alignment')?.value ?? 32);
  const dataStart = Math.ceil(r.pos / alignment) * alignment;
  return { version, kv, tensors, alignment, data: buf.subarray(dataStart) };
}

export function encodeGGUF(g) {
  const parts = [];
  const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); parts.push(b); };
  const u64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); parts.push(b); };
  const str = (s) => { const b = Buffer.from(s, 'utf8'); u64(b.length); parts.push(b); };
  const scalar = (t, v) => {
    const b = Buffer.alloc(SIZE[t]);
    switch (t) {
      case 0: b.writeUInt8(v); break; case 1: b.writeInt8(v); break; case 2: b.writeUInt16LE(v); break; case 3: b.writeInt16LE(v); break;
      case 4: b.writeUInt32LE(v >>> 0); break; case 5: b.writeInt32LE(v | 0); break; case 6: b.writeFloatLE(v); break; case 7: b[0] = v ? 1 : 0; break;
      case 10: b.writeBigUInt64LE(BigInt(v)); break; case 11: b.writeBigInt64LE(BigInt(v)); break; case 12: b.writeDoubleLE(v); break;
      default: throw new Error(`type ${t}`);
    }
    parts.push(b);
  };
  u32(0x46554747); u32(g.version ?? 3); u64(g.nTensors ?? g.tensors.length); u64(g.nKv ?? g.kv.length);
  for (const e of g.kv) {
    str(e.key); u32(e.type);
    if (e.type === GGUF_T.ARRAY) {
      u32(e.arrayType); u64(e.value.length);
      for (const v of e.value) (e.arrayType === GGUF_T.STRING ? str(v) : scalar(e.arrayType, v));
    } else if (e.type === GGUF_T.STRING) str(e.value);
    else scalar(e.type, e.value);
  }
  for (const t of g.tensors) {
    str(t.name); u32(t.dims.length);
    for (const d of t.dims) u64(d);
    u32(t.type); u64(t.offset);
  }
  const head = Buffer.concat(parts), alignment = g.alignment ?? 32;
  const pad = Buffer.alloc(Math.ceil(head.length / alignment) * alignment - head.length);
  return Buffer.concat([head, pad, g.data]);
}

export const kvOf = (g, key) => g.kv.find((e) => e.key === key);

/** Sets (or adds) a metadata entry; `arrayType` for an array. */
export function setKV(g, key, type, value, arrayType) {
  const next = { key, type, value, ...(arrayType !== undefined ? { arrayType } : {}) };
  const i = g.kv.findIndex((e) => e.key === key);
  if (i >= 0) g.kv[i] = next;
  else g.kv.push(next);
  return g;
}

export function dropKV(g, key) {
  g.kv = g.kv.filter((e) => e.key !== key);
  return g;
}

// ---- safetensors: rewrite a file's tensors, keeping it valid (tiled, padded as the writer does) ----

/**
 * Rewrites safetensors file `path`: `fn` gets { name: { dtype, shape, data } } in data order and
 * mutates it (add, delete, rename, reshape); the file is written back valid.
 */
export function rewriteSafetensors(path, fn) {
  const { header, data } = readSafetensors(path);
  const entries = Object.entries(header).filter(([k]) => k !== '__metadata__').sort(([, a], [, b]) => a.data_offsets[0] - b.data_offsets[0]);
  const tensors = {};
  for (const [k, v] of entries) tensors[k] = { dtype: v.dtype, shape: v.shape, data: Buffer.from(data.subarray(v.data_offsets[0], v.data_offsets[1])) };
  fn(tensors);
  writeSafetensors(path, tensors, header.__metadata__ ?? null);
}

/** The bytes of tensor `name` in safetensors file `path`. */
export function tensorBytesOf(path, name) {
  const { header, data } = readSafetensors(path);
  const [b, e] = header[name].data_offsets;
  return { dtype: header[name].dtype, shape: header[name].shape, data: Buffer.from(data.subarray(b, e)) };
}
