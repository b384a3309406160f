// Builds PyTorch-style `.bin` checkpoints at test time (valid ones and hostile ones): a zip writer
// that lays entries out as torch.save does, a pickle byte writer, and a state-dict pickler.
//
//   encodeZip(entries, opts)        → Buffer; entries [{ name, data, method?, flags?, zip64Extra? }]
//   listZip(buf)                    → { entries: [{ name, dataOffset, size, cdhOffset, lfhOffset }], cdOffset, eocdOffset, z64Offset }
//   new Pickle()                    → opcode writer (.proto().global(m, n).mark() … .bytes())
//   stateDictPickle(tensors)        → data.pkl bytes as torch.save writes them
//   encodeTorchBin(tensors, opts)   → a whole .bin (zip of data.pkl + data/<key>); writeTorchBin(path, …)
//   torchBinWithPickle(pkl, storages, opts) → a .bin around any pickle bytes
//   f16Bits(x)                      → IEEE half bits of a number (for fp16 test data)
import { writeFileSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(b) {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const toBuf = (d) => (Buffer.isBuffer(d) ? d : Buffer.from(d.buffer ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : d));

/**
 * A zip laid out like PyTorch's writer: local headers with flag bit 3 and zero sizes, data padded
 * to `align` bytes with an "FB" extra field, a data descriptor after each entry, and zip64 end
 * records. Per entry: `method` (8 deflates the data), `flags` (extra flag bits), `zip64Extra`
 * (put sizes and offset in a zip64 extra field of the central directory).
 */
export function encodeZip(entries, { align = 64, zip64 = true } = {}) {
  const parts = [];
  let off = 0;
  const central = [];
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const raw = toBuf(e.data);
    const method = e.method ?? 0;
    const data = method === 8 ? deflateRawSync(raw) : raw;
    const crc = crc32(raw);
    const flags = 0x0808 | (e.flags ?? 0);
    const lfhOff = off;
    let pad = (align - ((off + 30 + name.length + 4) % align)) % align;
    const extra = Buffer.alloc(4 + pad, 0x5a);
    extra.writeUInt16LE(0x4246, 0); // "FB"
    extra.writeUInt16LE(pad, 2);
    const lfh = Buffer.alloc(30);
    lfh.writeUInt32LE(0x04034b50, 0);
    lfh.writeUInt16LE(flags, 6);
    lfh.writeUInt16LE(method, 8);
    lfh.writeUInt16LE(name.length, 26);
    lfh.writeUInt16LE(extra.length, 28);
    const dd = Buffer.alloc(16);
    dd.writeUInt32LE(0x08074b50, 0);
    dd.writeUInt32LE(crc, 4);
    dd.writeUInt32LE(data.length, 8);
    dd.writeUInt32LE(raw.length, 12);
    parts.push(lfh, name, extra, data, dd);
    off += 30 + name.length + extra.length + data.length + 16;
    central.push({ name, crc, csize: data.length, usize: raw.length, method, flags, lfhOff, zip64Extra: e.zip64Extra });
  }
  const cdOffset = off;
  for (const c of central) {
    let extra = Buffer.alloc(0);
    if (c.zip64Extra) {
      extra = Buffer.alloc(28);
      extra.writeUInt16LE(1, 0);
      extra.writeUInt16LE(24, 2);
      extra.writeBigUInt64LE(BigInt(c.usize), 4);
      extra.writeBigUInt64LE(BigInt(c.csize), 12);
      extra.writeBigUInt64LE(BigInt(c.lfhOff), 20);
    }
    const h = Buffer.alloc(46);
    h.writeUInt32LE(0x02014b50, 0);
    h.writeUInt16LE(0x031e, 4);
    h.writeUInt16LE(45, 6);
    h.writeUInt16LE(c.flags, 8);
    h.writeUInt16LE(c.method, 10);
    h.writeUInt32LE(c.crc, 16);
    h.writeUInt32LE(c.zip64Extra ? 0xffffffff : c.csize, 20);
    h.writeUInt32LE(c.zip64Extra ? 0xffffffff : c.usize, 24);
    h.writeUInt16LE(c.name.length, 28);
    h.writeUInt16LE(extra.length, 30);
    h.writeUInt32LE(c.zip64Extra ? 0xffffffff : c.lfhOff, 42);
    parts.push(h, c.name, extra);
    off += 46 + c.name.length + extra.length;
  }
  const cdSize = off - cdOffset;
  if (zip64) {
    const z = Buffer.alloc(56);
    z.writeUInt32LE(0x06064b50, 0);
    z.writeBigUInt64LE(44n, 4);
    z.writeUInt16LE(0x031e, 12);
    z.writeUInt16LE(45, 14);
    z.writeBigUInt64LE(BigInt(central.length), 24);
    z.writeBigUInt64LE(BigInt(central.length), 32);
    z.writeBigUInt64LE(BigInt(cdSize), 40);
    z.writeBigUInt64LE(BigInt(cdOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(off), 8);
    loc.writeUInt32LE(1, 16);
    parts.push(z, loc);
    off += 76;
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(central.length, 8);
  eocd.writeUInt16LE(central.length, 10);
  eocd.writeUInt32LE(cdSize, 12);
  eocd.writeUInt32LE(cdOffset, 16);
  parts.push(eocd);
  return Buffer.concat(parts);
}

/** Where things are in a zip (no validation; for tests that corrupt a file in a chosen place). */
export function listZip(buf) {
  const eocdOffset = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  let cdOffset = buf.readUInt32LE(eocdOffset + 16);
  let count = buf.readUInt16LE(eocdOffset + 10);
  let z64Offset = -1;
  if (eocdOffset >= 20 && buf.readUInt32LE(eocdOffset - 20) === 0x07064b50) {
    z64Offset = Number(buf.readBigUInt64LE(eocdOffset - 12));
    count = Number(buf.readBigUInt64LE(z64Offset + 32));
    cdOffset = Number(buf.readBigUInt64LE(z64Offset + 48));
  }
  const entries = [];
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    const nameLen = buf.readUInt16LE(p + 28), extraLen = buf.readUInt16LE(p + 30), commentLen = buf.readUInt16LE(p + 32);
    const name = buf.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    let size = buf.readUInt32LE(p + 24);
    let lfhOffset = buf.readUInt32LE(p + 42);
    if (lfhOffset === 0xffffffff) {
      size = Number(buf.readBigUInt64LE(p + 46 + nameLen + 4));
      lfhOffset = Number(buf.readBigUInt64LE(p + 46 + nameLen + 20));
    }
    const dataOffset = lfhOffset + 30 + buf.readUInt16LE(lfhOffset + 26) + buf.readUInt16LE(lfhOffset + 28);
    entries.push({ name, size, dataOffset, cdhOffset: p, lfhOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return { entries, cdOffset, eocdOffset, z64Offset };
}

/** Pickle opcode writer (only what the tests need; every method returns this). */
export class Pickle {
  constructor() {
    this.parts = [];
  }
  raw(...bytes) {
    this.parts.push(Buffer.from(bytes.flat()));
    return this;
  }
  buf(b) {
    this.parts.push(toBuf(b));
    return this;
  }
  proto(v = 2) { return this.raw(0x80, v); }
  stop() { return this.raw(0x2e); }
  mark() { return this.raw(0x28); }
  none() { return this.raw(0x4e); }
  bool(v) { return this.raw(v ? 0x88 : 0x89); }
  emptyTuple() { return this.raw(0x29); }
  emptyDict() { return this.raw(0x7d); }
  emptyList() { return this.raw(0x5d); }
  tuple() { return this.raw(0x74); }
  tupleN(n) { return this.raw([0, 0x85, 0x86, 0x87][n]); }
  append() { return this.raw(0x61); }
  setitems() { return this.raw(0x75); }
  reduce() { return this.raw(0x52); }
  build() { return this.raw(0x62); }
  binpersid() { return this.raw(0x51); }
  binput(i) { return i < 256 ? this.raw(0x71, i) : this.raw(0x72).u32(i); }
  binget(i) { return i < 256 ? this.raw(0x68, i) : this.raw(0x6a).u32(i); }
  u32(n) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n >>> 0);
    return this.buf(b);
  }
  int(n) {
    if (n >= 0 && n < 256) return this.raw(0x4b, n);
    if (n >= 0 && n < 65536) return this.raw(0x4d, n & 0xff, n >> 8);
    if (n >= -(2 ** 31) && n < 2 ** 31) return this.raw(0x4a).u32(n);
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(n));
    return this.raw(0x8a, 8).buf(b); // LONG1
  }
  str(s) {
    const b = Buffer.from(s, 'utf8');
    return this.raw(0x58).u32(b.length).buf(b); // BINUNICODE
  }
  global(module, name) {
    return this.raw(0x63).buf(Buffer.from(`${module}\n${name}\n`, 'latin1'));
  }
  stackGlobal(module, name) {
    const m = Buffer.from(module), n = Buffer.from(name);
    return this.raw(0x8c, m.length).buf(m).raw(0x8c, n.length).buf(n).raw(0x93); // SHORT_BINUNICODE ×2, STACK_GLOBAL
  }
  intTuple(xs) {
    if (xs.length === 0) return this.emptyTuple();
    if (xs.length <= 3) {
      for (const x of xs) this.int(x);
      return this.tupleN(xs.length);
    }
    this.mark();
    for (const x of xs) this.int(x);
    return this.tuple();
  }
  bytes() {
    return Buffer.concat(this.parts);
  }
}

const STORAGE = { F32: ['FloatStorage', 4], F16: ['HalfStorage', 2], BF16: ['BFloat16Storage', 2], I64: ['LongStorage', 8], F64: ['DoubleStorage', 8] };

/** Contiguous strides of a shape. */
export const contiguous = (shape) => shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));

/**
 * The data.pkl torch.save writes for `tensors`: [{ name, dtype, shape, stride?, key, numel,
 * storageOffset?, parameter? }] (an OrderedDict of _rebuild_tensor_v2 calls; `parameter` wraps it
 * in _rebuild_parameter). Protocol 2, memoized like the real thing.
 */
export function stateDictPickle(tensors, { metadataState = false } = {}) {
  const p = new Pickle().proto(2).global('collections', 'OrderedDict').binput(0).emptyTuple().reduce().binput(1).mark();
  let memo = 2;
  for (const t of tensors) {
    const [storageType] = STORAGE[t.dtype] ?? [t.dtype];
    p.str(t.name);
    if (t.parameter) p.global('torch._utils', '_rebuild_parameter');
    p.global('torch._utils', '_rebuild_tensor_v2').mark();
    p.mark().str('storage').global('torch', storageType).str(String(t.key)).str('cpu').int(t.numel).tuple().binpersid();
    p.int(t.storageOffset ?? 0).intTuple(t.shape).intTuple(t.stride ?? contiguous(t.shape)).bool(false);
    p.binget(0).emptyTuple().reduce().tuple().reduce();
    if (t.parameter) p.bool(false).binget(0).emptyTuple().reduce().tupleN(3).reduce();
    p.binput(memo++);
  }
  p.setitems();
  if (metadataState) {
    // state_dict()._metadata, as Module.state_dict() leaves it: BUILD with {'_metadata': OrderedDict(...)}.
    p.emptyDict().str('_metadata').binget(0).emptyTuple().reduce().mark().str('').emptyDict().str('version').int(1).raw(0x73).setitems().raw(0x73).build();
  }
  return p.stop().bytes();
}

/** A .bin around `pkl` with storages { key: bytes }; opts.folder, opts.byteorder, opts.entry(e) to alter entries. */
export function torchBinWithPickle(pkl, storages = {}, { folder = 'archive', byteorder = 'little', entry = (e) => e, zip = {} } = {}) {
  const entries = [{ name: `${folder}/data.pkl`, data: pkl }];
  if (byteorder !== null) entries.push({ name: `${folder}/byteorder`, data: Buffer.from(byteorder) });
  for (const [k, v] of Object.entries(storages)) entries.push({ name: `${folder}/data/${k}`, data: v });
  entries.push({ name: `${folder}/version`, data: Buffer.from('3\n') });
  return encodeZip(entries.map(entry), zip);
}

/**
 * A .bin holding `tensors`: { name: { dtype: 'F32'|'F16'|'BF16'|'I64', shape, data?: TypedArray,
 * stride?, parameter? } }, one storage per tensor (data defaults to 0, 1, 2 … as the dtype).
 */
export function encodeTorchBin(tensors, opts = {}) {
  const list = [];
  const storages = {};
  let key = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const size = STORAGE[t.dtype][1];
    const data = t.data !== undefined ? toBuf(t.data) : Buffer.alloc(numel * size);
    storages[key] = data;
    list.push({ ...t, name, key, numel: t.numel ?? data.length / size });
    key++;
  }
  return torchBinWithPickle(stateDictPickle(list, opts), storages, opts);
}

export function writeTorchBin(path, tensors, opts) {
  writeFileSync(path, encodeTorchBin(tensors, opts));
}

/** IEEE 754 half-precision bits of x (round to nearest even; enough for test data). */
export function f16Bits(x) {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  const man = u & 0x7fffff;
  if (exp <= 0) return sign;
  if (exp >= 31) return sign | 0x7c00;
  let h = sign | (exp << 10) | (man >>> 13);
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return h;
}
