// Reader for the zip container that torch.save has written since PyTorch 1.6.
//
// Only what those files use: STORED (uncompressed) entries, zip64 records (torch always writes
// them), data descriptors (torch sets flag bit 3, so the local headers carry zero sizes: sizes come
// from the central directory, as every zip reader must do then). Nothing is decompressed and
// tensor bytes are never copied: an entry is (name, data offset, size) and the caller preads it.
// Every count, length and offset is checked against the file before it is used, so a corrupted or
// hostile file fails with one line naming it instead of reading out of bounds or allocating
// whatever a length field claims.

import type { RandomAccess } from '../io/source.js';
import { CheckpointError, readRange } from './safetensors.js';

export interface ZipEntry {
  /** Name as stored (forward slashes). */
  name: string;
  /** Absolute offset of the entry's bytes in the file. */
  dataOffset: number;
  /** Byte length (stored entries: compressed size = size). */
  size: number;
  /** CRC-32 from the central directory. */
  crc32: number;
}

const EOCD_SIG = 0x06054b50;
const Z64_LOCATOR_SIG = 0x07064b50;
const Z64_EOCD_SIG = 0x06064b50;
const CDH_SIG = 0x02014b50;
const LFH_SIG = 0x04034b50;
const EOCD_MIN = 22;
const CDH_FIXED = 46;
const LFH_FIXED = 30;
/** A central directory beyond this is not a checkpoint (a 7B model has a few hundred entries). */
const MAX_CENTRAL_DIR = 64 << 20;

const METHODS: Record<number, string> = { 1: 'shrink', 6: 'implode', 8: 'deflate', 9: 'deflate64', 12: 'bzip2', 14: 'lzma', 93: 'zstd', 95: 'xz' };

/** What the first bytes of a non-zip file say it is, for the refusal message. */
function notZipReason(head: Uint8Array): string {
  // torch.save(..., _use_new_zipfile_serialization=False) and PyTorch < 1.6: a bare pickle
  // stream (protocol 2 starts with 0x80 0x02) followed by raw storages; older still, a tar.
  if (head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) {
    return 'is a PyTorch checkpoint in the legacy pre-1.6 format (a bare pickle stream, not a zip archive), which is not supported; re-save it with torch.save in PyTorch >= 1.6 or convert it to safetensors';
  }
  if (head.length >= 262 && String.fromCharCode(...head.subarray(257, 262)) === 'ustar') {
    return 'is a PyTorch checkpoint in the legacy tar format (PyTorch < 1.0), which is not supported; re-save it with a current PyTorch or convert it to safetensors';
  }
  return 'is not a zip archive, so not a PyTorch checkpoint as torch.save writes it since PyTorch 1.6 (expected "PK" at offset 0)';
}

/**
 * Lists the entries of a zip archive of STORED entries. Throws a CheckpointError naming `label`
 * on anything it cannot read safely: not a zip, truncated, offsets outside the file, compressed
 * or encrypted entries, duplicate names.
 */
export function readZipEntries(f: RandomAccess, label: string): Map<string, ZipEntry> {
  const fail = (msg: string): never => {
    throw new CheckpointError(`${label}: ${msg}`, { file: label });
  };
  const size = f.size;
  if (!Number.isSafeInteger(size) || size < 0) fail(`file size ${size} is not usable`);
  const head = new Uint8Array(Math.min(size, 512));
  readRange(f, head, 0, label, 'file start');
  if (size < 4 || head[0] !== 0x50 || head[1] !== 0x4b) fail(notZipReason(head));
  if (size < EOCD_MIN) fail(`zip archive is truncated (${size} bytes, too small for its end record)`);

  // The end-of-central-directory record sits in the last 22 + 65535 (max comment) bytes.
  const tailLen = Math.min(size, EOCD_MIN + 0xffff);
  const tail = new Uint8Array(tailLen);
  readRange(f, tail, size - tailLen, label, 'zip end record');
  const tv = new DataView(tail.buffer);
  let at = -1;
  for (let i = tailLen - EOCD_MIN; i >= 0; i--) {
    if (tv.getUint32(i, true) === EOCD_SIG && i + EOCD_MIN + tv.getUint16(i + 20, true) === tailLen) {
      at = i;
      break;
    }
  }
  if (at < 0) fail('zip archive is truncated or corrupted (no end-of-central-directory record)');
  const eocdPos = size - tailLen + at;
  let count: number = tv.getUint16(at + 10, true);
  let cdSize: number = tv.getUint32(at + 12, true);
  let cdOffset: number = tv.getUint32(at + 16, true);
  if (tv.getUint16(at + 4, true) !== 0 || tv.getUint16(at + 6, true) !== 0) fail('multi-disk zip archives are not supported');
  if (tv.getUint16(at + 8, true) !== count) fail(`end record counts ${tv.getUint16(at + 8, true)} entries on its disk and ${count} in all (corrupted archive)`);
  let cdEnd = eocdPos;

  // zip64: a locator right before the end record points to the zip64 end record.
  if (eocdPos >= 20) {
    const loc = new Uint8Array(20);
    readRange(f, loc, eocdPos - 20, label, 'zip64 locator');
    const lv = new DataView(loc.buffer);
    if (lv.getUint32(0, true) === Z64_LOCATOR_SIG) {
      const z64Pos = u64(lv, 8, 'zip64 end record offset', fail);
      if (z64Pos + 56 > eocdPos - 20) fail(`zip64 end record offset ${z64Pos} is outside the file`);
      const z = new Uint8Array(56);
      readRange(f, z, z64Pos, label, 'zip64 end record');
      const zv = new DataView(z.buffer);
      if (zv.getUint32(0, true) !== Z64_EOCD_SIG) fail(`no zip64 end record at offset ${z64Pos} (corrupted archive)`);
      count = u64(zv, 32, 'entry count', fail);
      if (u64(zv, 24, 'entry count', fail) !== count) fail(`zip64 end record counts ${zv.getBigUint64(24, true)} entries on its disk and ${count} in all (corrupted archive)`);
      cdSize = u64(zv, 40, 'central directory size', fail);
      cdOffset = u64(zv, 48, 'central directory offset', fail);
      cdEnd = z64Pos;
    }
  }
  if (cdOffset + cdSize > cdEnd) {
    fail(`central directory [${cdOffset}, ${cdOffset + cdSize}) runs past its end record at ${cdEnd}; the file is truncated or corrupted`);
  }
  if (cdSize > MAX_CENTRAL_DIR) fail(`central directory of ${cdSize} bytes is absurd for a checkpoint (limit ${MAX_CENTRAL_DIR})`);
  if (count * CDH_FIXED > cdSize) fail(`${count} entries cannot fit a central directory of ${cdSize} bytes (corrupted archive)`);

  const cd = new Uint8Array(cdSize);
  readRange(f, cd, cdOffset, label, 'central directory');
  const cv = new DataView(cd.buffer);
  const utf8 = new TextDecoder('utf-8', { fatal: false });
  const entries = new Map<string, ZipEntry>();
  const lfh = new Uint8Array(LFH_FIXED);
  const spans: [number, number, string][] = [];
  const lv = new DataView(lfh.buffer);
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + CDH_FIXED > cdSize || cv.getUint32(p, true) !== CDH_SIG) fail(`central directory entry ${i} at offset ${cdOffset + p} is corrupted`);
    const flags = cv.getUint16(p + 8, true);
    const method = cv.getUint16(p + 10, true);
    const crc = cv.getUint32(p + 16, true);
    let csize: number = cv.getUint32(p + 20, true);
    let usize: number = cv.getUint32(p + 24, true);
    const nameLen = cv.getUint16(p + 28, true);
    const extraLen = cv.getUint16(p + 30, true);
    const commentLen = cv.getUint16(p + 32, true);
    let localOff: number = cv.getUint32(p + 42, true);
    const next = p + CDH_FIXED + nameLen + extraLen + commentLen;
    if (next > cdSize) fail(`central directory entry ${i} runs past the central directory (corrupted archive)`);
    const name = utf8.decode(cd.subarray(p + CDH_FIXED, p + CDH_FIXED + nameLen));
    // zip64 extended information: only the fields whose 32-bit value is 0xFFFFFFFF, in this order.
    if (usize === 0xffffffff || csize === 0xffffffff || localOff === 0xffffffff) {
      let e = p + CDH_FIXED + nameLen;
      const extraEnd = e + extraLen;
      let found = false;
      while (e + 4 <= extraEnd) {
        const id = cv.getUint16(e, true), len = cv.getUint16(e + 2, true);
        if (e + 4 + len > extraEnd) break;
        if (id === 0x0001) {
          let q = e + 4;
          const take = (what: string) => {
            if (q + 8 > e + 4 + len) fail(`entry "${name}": zip64 extra field is too short for its ${what}`);
            const v = u64(cv, q, `entry "${name}" ${what}`, fail);
            q += 8;
            return v;
          };
          if (usize === 0xffffffff) usize = take('size');
          if (csize === 0xffffffff) csize = take('compressed size');
          if (localOff === 0xffffffff) localOff = take('header offset');
          found = true;
          break;
        }
        e += 4 + len;
      }
      if (!found) fail(`entry "${name}" has 32-bit fields marked zip64 but no zip64 extra field (corrupted archive)`);
    }
    if (flags & 0x41) fail(`entry "${name}" is encrypted; encrypted archives are not supported`);
    if (method !== 0) {
      fail(`entry "${name}" is compressed (${METHODS[method] ?? `method ${method}`}); torch.save stores entries uncompressed and only those are read (re-save with torch.save or convert to safetensors)`);
    }
    if (csize !== usize) fail(`entry "${name}" is stored but its sizes differ (${csize} vs ${usize}); corrupted archive`);
    if (entries.has(name)) fail(`entry "${name}" appears twice in the central directory`);
    // The local header may have its own (different) extra field length: the data starts after it.
    if (localOff + LFH_FIXED > cdOffset) fail(`entry "${name}": local header offset ${localOff} is outside the archive's data (corrupted central directory)`);
    readRange(f, lfh, localOff, label, `local header of "${name}"`);
    if (lv.getUint32(0, true) !== LFH_SIG) fail(`entry "${name}": no local header at offset ${localOff} (corrupted central directory)`);
    if (lv.getUint16(8, true) !== 0) fail(`entry "${name}" is compressed per its local header; only stored entries are read`);
    // The local header must name the same entry: a reader that walks local headers sees these bytes.
    const localName = new Uint8Array(lv.getUint16(26, true));
    if (localName.length !== nameLen) fail(`entry "${name}": its local header names another entry (corrupted central directory)`);
    readRange(f, localName, localOff + LFH_FIXED, label, `local header of "${name}"`);
    if (localName.some((b, j) => b !== cd[p + CDH_FIXED + j])) fail(`entry "${name}": its local header names another entry (corrupted central directory)`);
    // Its extra field must be whole (id, length) records — torch.save pads with one — so that a
    // changed length cannot move the data start into the header unnoticed.
    const localExtra = new Uint8Array(lv.getUint16(28, true));
    readRange(f, localExtra, localOff + LFH_FIXED + nameLen, label, `local header of "${name}"`);
    const xv = new DataView(localExtra.buffer);
    let xq = 0;
    while (xq + 4 <= localExtra.length) xq += 4 + xv.getUint16(xq + 2, true);
    if (xq !== localExtra.length) fail(`entry "${name}": its local header's extra field is not whole records (corrupted archive)`);
    const dataOffset = localOff + LFH_FIXED + lv.getUint16(26, true) + lv.getUint16(28, true);
    if (dataOffset + usize > cdOffset) {
      fail(`entry "${name}": ${usize} bytes at offset ${dataOffset} run past the archive's data (ends at ${cdOffset}); the file is truncated or corrupted`);
    }
    entries.set(name, { name, dataOffset, size: usize, crc32: crc });
    spans.push([localOff, dataOffset + usize, name]);
    p = next;
  }
  // Two entries sharing bytes: a storage would alias a pickle or another storage.
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][0] < spans[i - 1][1]) fail(`entries "${spans[i - 1][2]}" and "${spans[i][2]}" overlap (corrupted central directory)`);
  }
  return entries;
}

/** A little-endian u64 that must be a safe integer (offsets and sizes; larger ones are corrupt). */
function u64(v: DataView, at: number, what: string, fail: (m: string) => never): number {
  const x = v.getBigUint64(at, true);
  if (x > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} ${x} is absurd (corrupted archive)`);
  return Number(x);
}
