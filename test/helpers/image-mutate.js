// Hostile flashneuron images built at test time from a real one (never committed). The JSON
// header is rewritten and its CRC in the prefix recomputed, so that only the header's meaning is
// wrong: what catches the defect is the semantic check, not the checksum.
//
//   readImage(path)                      → { header, headerOffset } (only the prefix and the header read)
//   mutateImage(src, fn, { append, replace }) → path of a new image in a temp folder:
//       fn(header) mutates the parsed header or returns a replacement (any JSON value, or a
//       string written as the header's raw text); append: [{ name, bytes }] new sections after
//       the last one (4096-aligned, listed with their CRC); replace: { name: bytes } a section's
//       contents moved to new bytes at the end (its entry updated, the old bytes left unused)
//   sectionOf(header, name), tensorOf(header, role, layer = -1) → entries of a parsed header
import { closeSync, copyFileSync, openSync, readSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from '../../dist/src/format/crc32.js';
import { tmpDir } from './hostile.js';

const ALIGN = 4096;
const alignUp = (n) => Math.ceil(n / ALIGN) * ALIGN;

function readAt(fd, length, position) {
  const b = Buffer.alloc(length);
  for (let got = 0; got < length;) {
    const n = readSync(fd, b, got, length - got, position + got);
    if (n === 0) throw new Error(`image ends before byte ${position + length}`);
    got += n;
  }
  return b;
}
function writeAt(fd, b, position) {
  for (let put = 0; put < b.length;) put += writeSync(fd, b, put, b.length - put, position + put);
}

/** The parsed header of an image and where it lies. */
export function readImage(path) {
  const fd = openSync(path, 'r');
  try {
    const prefix = readAt(fd, 28, 0);
    const headerLength = prefix.readUInt32LE(12), headerOffset = Number(prefix.readBigUInt64LE(16));
    return { header: JSON.parse(readAt(fd, headerLength, headerOffset).toString('utf8')), headerOffset };
  } finally { closeSync(fd); }
}

/** A copy of the image at `src` with its header rewritten by `fn`, its header CRC recomputed. */
export function mutateImage(src, fn = () => {}, { append = [], replace = {} } = {}) {
  const { header, headerOffset } = readImage(src);
  // The bytes before the header are the source's, copied by the kernel (an image is tens of MB,
  // and most cases change only the header); what follows them is written here, the gaps zeros.
  const path = join(tmpDir('himg'), 'model.fnimg');
  copyFileSync(src, path);
  truncateSync(path, headerOffset);
  const fd = openSync(path, 'r+');
  try {
    let end = headerOffset;
    const add = (b) => {
      const at = alignUp(end);
      writeAt(fd, Buffer.from(b), at);
      end = at + b.length;
      return { offset: at, length: b.length, crc32: crc32(b) };
    };
    for (const [name, b] of Object.entries(replace)) Object.assign(header.sections.find((s) => s.name === name), add(b));
    for (const { name, bytes: b } of append) header.sections.push({ name, ...add(b) });
    const out = fn(header);
    const h = out === undefined ? header : out;
    const text = Buffer.from(typeof h === 'string' ? h : JSON.stringify(h), 'utf8');
    const at = alignUp(end);
    writeAt(fd, text, at);
    const prefix = Buffer.alloc(16);
    prefix.writeUInt32LE(text.length, 0);
    prefix.writeBigUInt64LE(BigInt(at), 4);
    prefix.writeUInt32LE(crc32(text), 12);
    writeAt(fd, prefix.subarray(0, 4), 12);
    writeAt(fd, prefix.subarray(4, 12), 16);
    writeAt(fd, prefix.subarray(12, 16), 24);
  } finally { closeSync(fd); }
  return path;
}

/** Sections of a header by name. */
export const sectionOf = (h, name) => h.sections.find((s) => s.name === name);
/** The tensor entry of `role` (and layer). */
export const tensorOf = (h, role, layer = -1) => h.tensors.find((t) => t.role === role && t.layer === layer);
