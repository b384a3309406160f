// Where the numbers and the regions of each file format lie, so the fuzzer can edit header
// numbers and tell checksummed, structural and payload bytes apart. Read from the unmutated files
// only; no validation here beyond what walking the layout needs.
//
// Each layout: { fields: [{ at, type, name }], regions: [{ name, start, end, legit }] } where
// legit says whether changed bytes there make another valid input (weights, token strings) or
// must be refused (checksummed, structural bytes).

const u32 = (b, at) => b.readUInt32LE(at);
const u64 = (b, at) => Number(b.readBigUInt64LE(at));

/** A flashneuron image: prefix numbers, the sections (all checksummed), the JSON header (checksummed). */
export function imageLayout(b) {
  const headerLen = u32(b, 12), headerOff = u64(b, 16);
  const header = JSON.parse(b.subarray(headerOff, headerOff + headerLen).toString('utf8'));
  const fields = [['version', 8, 'u32'], ['header_len', 12, 'u32'], ['header_offset', 16, 'u64'], ['header_crc32', 24, 'u32'], ['reserved', 28, 'u32']]
    .map(([name, at, type]) => ({ name, at, type }));
  const regions = [{ name: 'prefix', start: 0, end: 32, legit: false }, { name: 'header', start: headerOff, end: headerOff + headerLen, legit: false }];
  for (const s of header.sections) regions.push({ name: `section ${s.name}`, start: s.offset, end: s.offset + s.length, legit: false });
  return { fields, regions, header, headerOff, headerLen };
}

/** A .fnpred predictor: prefix numbers, the JSON header and the data (both checksummed). */
export function predictorLayout(b) {
  const headerLen = u32(b, 8);
  const header = JSON.parse(b.subarray(16, 16 + headerLen).toString('utf8'));
  const dataStart = Math.ceil((16 + headerLen) / 64) * 64;
  return {
    fields: [{ name: 'header_len', at: 8, type: 'u32' }, { name: 'header_crc32', at: 12, type: 'u32' }],
    regions: [{ name: 'prefix', start: 0, end: 16, legit: false }, { name: 'header', start: 16, end: 16 + headerLen, legit: false },
      { name: 'data', start: dataStart, end: b.length, legit: false }],
    header, headerLen, dataStart,
  };
}

/** A safetensors file: the u64 header length, the JSON header (structural), the tensor data (weights). */
export function safetensorsLayout(b) {
  const headerLen = u64(b, 0);
  return {
    fields: [{ name: 'header_len', at: 0, type: 'u64' }],
    regions: [{ name: 'header', start: 8, end: 8 + headerLen, legit: false }, { name: 'data', start: 8 + headerLen, end: b.length, legit: true }],
    header: JSON.parse(b.subarray(8, 8 + headerLen).toString('utf8')), headerLen,
  };
}

const GGUF_SIZE = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
const GGUF_TYPE = { 0: 'u8', 1: 'i8', 2: 'u16', 3: 'i16', 4: 'u32', 5: 'i32', 6: 'f32', 7: 'u8', 10: 'u64', 11: 'i64', 12: 'f64' };

/**
 * A GGUF file (v2/v3): counts, key lengths, value types, scalar values, array types and counts,
 * string lengths, tensor dims, types and offsets; token strings are payload, the rest structure.
 */
export function ggufLayout(b) {
  const fields = [{ name: 'version', at: 4, type: 'u32' }, { name: 'n_tensors', at: 8, type: 'u64' }, { name: 'n_kv', at: 16, type: 'u64' }];
  const regions = [{ name: 'magic', start: 0, end: 4, legit: false }];
  let pos = 24, alignment = 32;
  const str = (name, payload) => {
    const n = u64(b, pos);
    fields.push({ name: `${name} length`, at: pos, type: 'u64' });
    if (payload) regions.push({ name: `${name} bytes`, start: pos + 8, end: pos + 8 + n, legit: true });
    pos += 8 + n;
    return b.subarray(pos - n, pos).toString('utf8');
  };
  const nTensors = u64(b, 8), nKv = u64(b, 16);
  for (let i = 0; i < nKv; i++) {
    const key = str(`key ${i}`, false);
    fields.push({ name: `${key} type`, at: pos, type: 'u32' });
    const t = u32(b, pos); pos += 4;
    if (t === 9) {
      fields.push({ name: `${key} element type`, at: pos, type: 'u32' });
      const et = u32(b, pos); pos += 4;
      fields.push({ name: `${key} count`, at: pos, type: 'u64' });
      const n = u64(b, pos); pos += 8;
      for (let j = 0; j < n; j++) {
        if (et === 8) str(`${key}[${j}]`, true);
        else { if (j < 4) fields.push({ name: `${key}[${j}]`, at: pos, type: GGUF_TYPE[et] }); regions.push({ name: `${key} values`, start: pos, end: pos + GGUF_SIZE[et], legit: true }); pos += GGUF_SIZE[et]; }
      }
    } else if (t === 8) str(`${key} value`, false);
    else {
      fields.push({ name: `${key} value`, at: pos, type: GGUF_TYPE[t] });
      if (key === 'general.alignment') alignment = u32(b, pos);
      pos += GGUF_SIZE[t];
    }
  }
  for (let i = 0; i < nTensors; i++) {
    const name = str(`tensor ${i} name`, false);
    fields.push({ name: `${name} n_dims`, at: pos, type: 'u32' });
    const nd = u32(b, pos); pos += 4;
    for (let d = 0; d < nd; d++) { fields.push({ name: `${name} dim ${d}`, at: pos, type: 'u64' }); pos += 8; }
    fields.push({ name: `${name} type`, at: pos, type: 'u32' }); pos += 4;
    fields.push({ name: `${name} offset`, at: pos, type: 'u64' }); pos += 8;
  }
  const dataStart = Math.ceil(pos / alignment) * alignment;
  regions.push({ name: 'tensor data', start: dataStart, end: b.length, legit: true });
  return { fields, regions, dataStart, metaEnd: pos };
}

/**
 * A zip (torch.save's .bin): end-of-central-directory counts and offsets, each entry's sizes,
 * offsets and name lengths in the central directory and its local header; the pickle (checked by
 * its CRC-32) and small records are structure, tensor storages (data/N) are weights.
 */
export function zipLayout(b) {
  let eocd = -1;
  for (let i = b.length - 22; i >= Math.max(0, b.length - 65557); i--) if (u32(b, i) === 0x06054b50) { eocd = i; break; }
  if (eocd < 0) throw new Error('no end of central directory');
  const fields = [{ name: 'eocd entries', at: eocd + 10, type: 'u16' }, { name: 'eocd cd size', at: eocd + 12, type: 'u32' }, { name: 'eocd cd offset', at: eocd + 16, type: 'u32' }];
  const regions = [{ name: 'end of central directory', start: eocd, end: b.length, legit: false }];
  let p = u32(b, eocd + 16);
  const n = b.readUInt16LE(eocd + 10);
  regions.push({ name: 'central directory', start: p, end: eocd, legit: false });
  for (let i = 0; i < n && u32(b, p) === 0x02014b50; i++) {
    const nameLen = b.readUInt16LE(p + 28), extra = b.readUInt16LE(p + 30), comment = b.readUInt16LE(p + 32);
    const name = b.subarray(p + 46, p + 46 + nameLen).toString('utf8'), local = u32(b, p + 42), size = u32(b, p + 24);
    fields.push({ name: `${name} crc32 (cd)`, at: p + 16, type: 'u32' }, { name: `${name} size (cd)`, at: p + 24, type: 'u32' },
      { name: `${name} name length (cd)`, at: p + 28, type: 'u16' }, { name: `${name} local offset`, at: p + 42, type: 'u32' });
    const lNameLen = b.readUInt16LE(local + 26), lExtra = b.readUInt16LE(local + 28), data = local + 30 + lNameLen + lExtra;
    fields.push({ name: `${name} size (local)`, at: local + 22, type: 'u32' }, { name: `${name} name length (local)`, at: local + 26, type: 'u16' },
      { name: `${name} extra length (local)`, at: local + 28, type: 'u16' });
    regions.push({ name: `${name} local header`, start: local, end: data, legit: false });
    regions.push({ name: `${name} data`, start: data, end: data + size, legit: /\/data\/\d+$/.test(name) });
    p += 46 + nameLen + extra + comment;
  }
  return { fields, regions };
}

/** Reads a protobuf varint at `at`: { value, len }. */
function varint(b, at) {
  let v = 0n, shift = 0n, i = at;
  for (;;) { const x = b[i++]; v |= BigInt(x & 0x7f) << shift; shift += 7n; if (!(x & 0x80)) break; }
  return { value: Number(v), len: i - at };
}

/**
 * A SentencePiece tokenizer.model (protobuf ModelProto): length varints of the pieces and specs
 * (structure), each piece's string and score and the specs' settings (payload), its type varint.
 */
export function spmLayout(b) {
  const lengths = [], pieces = [], types = [], regions = [];
  for (let p = 0; p < b.length;) {
    const at = p, tag = varint(b, p), field = tag.value >>> 3, wire = tag.value & 7;
    p += tag.len;
    if (wire !== 2) { if (wire === 0) p += varint(b, p).len; else if (wire === 5) p += 4; else if (wire === 1) p += 8; else break; continue; }
    const len = varint(b, p);
    lengths.push({ at: p, len: len.len, value: len.value, name: `field ${field} length` });
    const start = p + len.len, end = start + len.value;
    if (field === 1) {
      // A piece whose tag or inner tags change is an unknown field (skipped) or another piece: a valid file either way.
      regions.push({ name: 'piece', start: at, end, legit: true });
      for (let q = start; q < end;) {
        const t = varint(b, q), f = t.value >>> 3, w = t.value & 7;
        q += t.len;
        if (w === 2) { const l = varint(b, q); pieces.push({ at: q, len: l.len, value: l.value }); regions.push({ name: 'piece string', start: q + l.len, end: q + l.len + l.value, legit: true }); q += l.len + l.value; }
        else if (w === 5) { regions.push({ name: 'piece score', start: q, end: q + 4, legit: true }); q += 4; }
        else if (w === 0) { const v = varint(b, q); if (f === 3) types.push({ at: q, len: v.len, value: v.value }); q += v.len; }
        else break;
      }
    } else regions.push({ name: `spec ${field}`, start, end, legit: true });   // trainer / normalizer settings: other valid settings
    p = end;
  }
  return { lengths, pieces, types, regions };
}

/** The region holding byte `at`, if any. */
export function regionAt(layout, at) {
  let found;
  for (const r of layout.regions) if (at >= r.start && at < r.end && (!found || r.end - r.start < found.end - found.start)) found = r;
  return found;
}
