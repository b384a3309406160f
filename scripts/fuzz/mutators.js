// Mutations for the fuzzer: a seeded generator, byte-level edits (bit flips, byte runs,
// truncation, extension), header-number edits and JSON edits (type swaps, number edits, deleted
// and duplicated keys, shrunk shapes, string edits). Each returns the new bytes or text, a
// one-line description, and whether the outcome may legitimately differ from the reference:
//   legit true  — the edit makes another valid input (a changed weight, merge or option value),
//                 so different output is "changed-valid";
//   legit false — the edit makes an invalid input, or lies in checksummed bytes: the program must
//                 refuse it or give the reference output, anything else is "garbage".

/** A seeded generator (mulberry32): next() in [0, 1), int(n), pick(list), chance(p). */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  return { next, int, pick: (list) => list[int(list.length)], chance: (p) => next() < p, between: (lo, hi) => lo + int(hi - lo) };
}

/** A 32-bit seed for case `i` of run `seed` (FNV-1a of both). */
export function caseSeed(seed, i) {
  let h = 2166136261;
  for (const c of `${seed}/${i}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  return h >>> 0;
}

/** Picks from [weight, value] pairs. */
export function weighted(r, pairs) {
  const total = pairs.reduce((a, [w]) => a + w, 0);
  let x = r.next() * total;
  for (const [w, v] of pairs) { if ((x -= w) < 0) return v; }
  return pairs[pairs.length - 1][1];
}

// ---- bytes ----

/** Flips 1–3 bits within [start, end). */
export function bitFlip(buf, r, start = 0, end = buf.length) {
  const out = Buffer.from(buf), n = 1 + r.int(3), at = [];
  for (let i = 0; i < n; i++) {
    const off = start + r.int(Math.max(1, end - start)), bit = r.int(8);
    out[off] ^= 1 << bit;
    at.push(`${off}.${bit}`);
  }
  return { bytes: out, desc: `flip bit${n > 1 ? 's' : ''} ${at.join(' ')}`, at: at.map((s) => Number(s.split('.')[0])) };
}

/** Overwrites a run of 1–64 bytes within [start, end) with zeros, 0xff, one repeated byte or noise. */
export function byteRun(buf, r, start = 0, end = buf.length) {
  const out = Buffer.from(buf);
  const off = start + r.int(Math.max(1, end - start)), len = Math.min(1 + r.int(64), out.length - off);
  const kind = r.pick(['zeros', 'ones', 'repeat', 'noise']);
  const fill = kind === 'repeat' ? r.int(256) : 0;
  for (let i = 0; i < len; i++) out[off + i] = kind === 'zeros' ? 0 : kind === 'ones' ? 0xff : kind === 'repeat' ? fill : r.int(256);
  return { bytes: out, desc: `overwrite ${len} bytes at ${off} with ${kind}`, at: [off] };
}

/** Cuts the file: anywhere, or just before its end, or inside its first `head` bytes. */
export function truncate(buf, r, head = 64) {
  const where = r.pick(['anywhere', 'end', 'head', 'empty']);
  const len = where === 'empty' ? 0 : where === 'end' ? Math.max(0, buf.length - 1 - r.int(16))
    : where === 'head' ? r.int(Math.min(head, buf.length)) : r.int(buf.length);
  return { bytes: buf.subarray(0, len), desc: `truncate ${buf.length} -> ${len} bytes (${where})` };
}

/** Appends 1–4096 bytes of zeros or noise. */
export function extend(buf, r) {
  const n = 1 + r.int(4096), noise = r.chance(0.5);
  const tail = Buffer.alloc(n);
  if (noise) for (let i = 0; i < n; i++) tail[i] = r.int(256);
  return { bytes: Buffer.concat([buf, tail]), desc: `append ${n} ${noise ? 'random' : 'zero'} bytes` };
}

/** Integer values for header numbers: powers of two, 0, -1, 2^31−1, 2^32−1, neighbours of the original. */
export function specialInt(r, orig, bits) {
  const choices = [0, 1, -1, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** (1 + r.int(bits - 1)), orig + 1, orig - 1, orig * 2, Math.floor(orig / 2)];
  if (bits === 64) choices.push(2 ** 53, Number.MAX_SAFE_INTEGER, 2 ** 63);
  return r.pick(choices);
}

/**
 * Writes a new value into a little-endian number field { at, type: u8|u16|u32|u64|i32|i64|f32|f64, name }.
 * Integers get specialInt values; floats also NaN and ±Infinity.
 */
export function numberEdit(buf, r, field) {
  const out = Buffer.from(buf), { at, type } = field;
  const size = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8 }[type];
  if (at + size > out.length) return { bytes: out, desc: `(field ${field.name} past the end)` };
  let orig, value;
  if (type === 'f32' || type === 'f64') {
    orig = type === 'f32' ? out.readFloatLE(at) : out.readDoubleLE(at);
    value = r.pick([NaN, Infinity, -Infinity, 0, -0, -1, 1e30, 1e-30, orig * 2, -orig]);
    if (type === 'f32') out.writeFloatLE(value, at); else out.writeDoubleLE(value, at);
  } else {
    orig = size === 8 ? Number(out.readBigUInt64LE(at)) : out.readUIntLE(at, size);
    value = specialInt(r, orig, size * 8);
    const mod = 2n ** BigInt(size * 8), v = ((BigInt(Math.trunc(value)) % mod) + mod) % mod;
    if (size === 8) out.writeBigUInt64LE(v, at); else out.writeUIntLE(Number(v), at, size);
  }
  return { bytes: out, desc: `set ${field.name} (${type} at ${at}) ${orig} -> ${value}`, value, orig };
}

/** Replaces a varint (protobuf) at [at, at+len) with `value` encoded; lengths after it shift. */
export function varintEdit(buf, at, len, value) {
  const enc = [];
  let v = BigInt.asUintN(64, BigInt(Math.trunc(value)));
  do { let b = Number(v & 0x7fn); v >>= 7n; if (v) b |= 0x80; enc.push(b); } while (v);
  return Buffer.concat([buf.subarray(0, at), Buffer.from(enc), buf.subarray(at + len)]);
}

// ---- JSON ----

const FLOAT_KEY = /eps|theta|factor|dropout|pdrop|range|temperature|threshold|param|scale|ratio|recall|share|p$/i;
const TYPE_NAMES = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** A random path into `obj` (a descent that stops early more often near the top: structure gets hit as often as leaves). */
function randomPath(obj, r, prefer) {
  const path = [];
  let v = obj;
  for (;;) {
    const keys = v !== null && typeof v === 'object' ? Object.keys(v) : [];
    if (!keys.length || (path.length && r.chance(0.25))) return path;
    // Prefer named keys at the top (config, sections …), when given.
    const named = prefer && path.length === 0 && r.chance(0.7) ? prefer.filter((p) => keys.includes(p)) : [];
    const k = named.length ? r.pick(named) : r.pick(keys);
    path.push(Array.isArray(v) ? Number(k) : k);
    v = v[k];
  }
}

function getAt(obj, path) { return path.reduce((v, k) => v[k], obj); }

/** JSON text with key `dup` of the object at `path` written twice: first `first`, then the value it holds. */
function stringifyDup(obj, path, dup, first) {
  const enc = (v, p) => {
    if (v === null || typeof v !== 'object') return JSON.stringify(v);
    if (Array.isArray(v)) return `[${v.map((x, i) => enc(x, [...p, i])).join(',')}]`;
    const here = p.length === path.length && p.every((k, i) => k === path[i]);
    return `{${Object.entries(v).map(([k, x]) => `${here && k === dup ? `${JSON.stringify(k)}:${JSON.stringify(first)},` : ''}${JSON.stringify(k)}:${enc(x, [...p, k])}`).join(',')}}`;
  };
  return enc(obj, []);
}

/**
 * One JSON edit of `text`. `strict(path)` says whether a valid-looking change at `path` must
 * still be refused (shapes, offsets: checked against the data); `prefer` lists top-level keys to
 * favour. Returns { text, desc, legit } — or text in its original form when nothing applied.
 */
export function mutateJson(text, r, { strict = () => false, prefer } = {}) {
  let obj;
  try { obj = JSON.parse(text); } catch { return { text, desc: 'json (unparseable, left as is)', legit: false }; }
  const path = randomPath(obj, r, prefer);
  const where = path.length ? path.join('.') : '(root)';
  if (!path.length) return { text: JSON.stringify(r.pick([[], 0, 'x', null, true])), desc: 'json root replaced', legit: false };
  const parent = getAt(obj, path.slice(0, -1)), key = path[path.length - 1], old = parent[key];
  const oldType = TYPE_NAMES(old);
  const fail = strict(path);
  const numeric = Array.isArray(old) && old.length > 0 && old.every((x) => typeof x === 'number');
  const dupOk = !Array.isArray(parent);
  const op = weighted(r, {
    number: [[4, 'number'], [2, 'type'], [1, 'delete'], [dupOk ? 1 : 0, 'duplicate']],
    string: [[3, 'string'], [2, 'type'], [1, 'delete'], [dupOk ? 1 : 0, 'duplicate']],
    boolean: [[3, 'flip'], [2, 'type'], [1, 'delete']],
    null: [[2, 'type'], [1, 'delete']],
    array: [[numeric ? 4 : 0, 'shape'], [2, 'array'], [1, 'type'], [1, 'delete']],
    object: [[2, 'type'], [2, 'delete'], [dupOk ? 1 : 0, 'duplicate']],
  }[oldType]);
  const done = (desc, legit) => ({ text: JSON.stringify(obj), desc: `json ${where}: ${desc}`, legit: legit && !fail });
  switch (op) {
    case 'number': {
      if (typeof old !== 'number') break;
      const float = !Number.isInteger(old) || FLOAT_KEY.test(String(key));
      const sane = float ? [old * 2, old / 2, -old, old + 1] : [old + 1, old - 1 > 0 ? old - 1 : old + 2, 2 ** (1 + r.int(12)), old * 2];
      const edge = float ? [-1, 1e300, -1e300, 0, 5e-324] : [0, -1, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 53, 1e300, 0.5];
      const isEdge = r.chance(0.5);
      parent[key] = r.pick(isEdge ? edge : sane);
      // For float settings 0 and tiny values are still settings; for counts and ids edge values are not.
      const legit = !isEdge || (float && (parent[key] === 0 || parent[key] === 5e-324));
      if (r.chance(0.15)) {
        parent[key] = '\u0000NaN';
        return { text: JSON.stringify(obj).replace('"\\u0000NaN"', 'NaN'), desc: `json ${where}: ${old} -> NaN (not JSON)`, legit: false };
      }
      return done(`${old} -> ${parent[key]}`, legit);
    }
    case 'type': {
      const alt = { number: ['"1"', 'true', '[1]', 'null'], string: ['1', 'false', '{}', '["x"]'], boolean: ['0', '"true"', 'null'],
        null: ['0', '""', '{}'], array: ['{}', '0', '"[]"'], object: ['[]', '0', '"{}"', 'null'] }[oldType];
      parent[key] = JSON.parse(r.pick(alt));
      return done(`${oldType} -> ${TYPE_NAMES(parent[key])}`, false);
    }
    case 'flip':
      parent[key] = !old;
      return done(`${old} -> ${!old}`, true);
    case 'delete': {
      if (Array.isArray(parent)) parent.splice(key, 1); else delete parent[key];
      return done(Array.isArray(parent) ? 'element deleted' : 'key deleted', true);
    }
    case 'duplicate': {
      if (Array.isArray(parent)) break;
      const other = typeof old === 'number' ? old + 1 : typeof old === 'string' ? `${old}x` : null;
      const dupPath = path.slice(0, -1);
      return { text: stringifyDup(obj, dupPath, key, other), desc: `json ${where}: key duplicated (first ${JSON.stringify(other)}, then the original)`, legit: !fail };
    }
    case 'shape': {
      if (!Array.isArray(old) || !old.length || !old.every((x) => typeof x === 'number')) break;
      const i = r.int(old.length), how = r.pick(['halve', 'drop', 'append', 'zero']);
      const next = [...old];
      if (how === 'halve') next[i] = Math.floor(next[i] / 2);
      else if (how === 'drop') next.pop();
      else if (how === 'append') next.push(1);
      else next[i] = 0;
      parent[key] = next;
      return done(`[${old}] -> [${next}] (${how})`, false);
    }
    case 'string': {
      if (typeof old !== 'string') break;
      parent[key] = r.pick(['', old.slice(0, old.length >> 1), `${old}\u0000`, `${old}é\u{1F600}`, 'x'.repeat(65536), old.toUpperCase()]);
      return done(`string "${old.slice(0, 24)}" -> "${parent[key].slice(0, 24)}"${parent[key].length > 24 ? '…' : ''}`, true);
    }
    case 'array': {
      if (!Array.isArray(old) || !old.length) break;
      const i = r.int(old.length), dup = r.chance(0.5);
      if (dup) old.splice(i, 0, old[i]); else old.splice(i, 1);
      return done(`array element ${i} ${dup ? 'duplicated' : 'removed'}`, true);
    }
  }
  // The op did not fit the value found: swap its type instead (always applies).
  parent[key] = oldType === 'number' ? 'NaN' : 0;
  return done(`${oldType} -> ${TYPE_NAMES(parent[key])}`, false);
}

/** zlib's CRC-32, for resealing checksummed headers. */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; t[n] = c >>> 0; }
  return t;
})();
export function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
