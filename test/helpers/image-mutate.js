// Hostile flashneuron images built at test time from a real one (never committed). The JSON
// header is rewritten and its CRC in the prefix recomputed, so that only the header's meaning is
// wrong: what catches the defect is the semantic check, not the checksum.
//
//   readImage(path)                      → { bytes, header, headerOffset }
//   mutateImage(src, fn, { append, replace }) → path of a new image in a temp folder:
//       fn(header) mutates the parsed header or returns a replacement (any JSON value, or a
//       string written as the header's raw text); append: [{ name, bytes }] new sections after
//       the last one (4096-aligned, listed with their CRC); replace: { name: bytes } a section's
//       contents moved to new bytes at the end (its entry updated, the old bytes left unused)
//   sectionOf(header, name), tensorOf(header, role, layer = -1) → entries of a parsed header
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from '../../dist/src/format/crc32.js';
import { tmpDir } from './hostile.js';

const ALIGN = 4096;
const alignUp = (n) => Math.ceil(n / ALIGN) * ALIGN;

/** The parsed header of an image and where it lies. */
export function readImage(path) {
  const bytes = readFileSync(path);
  const headerLength = bytes.readUInt32LE(12), headerOffset = Number(bytes.readBigUInt64LE(16));
  const header = JSON.parse(bytes.subarray(headerOffset, headerOffset + headerLength).toString('utf8'));
  return { bytes, header, headerOffset };
}

/** A copy of the image at `src` with its header rewritten by `fn`, its header CRC recomputed. */
export function mutateImage(src, fn = () => {}, { append = [], replace = {} } = {}) {
  const { bytes, header, headerOffset } = readImage(src);
  let data = bytes.subarray(0, headerOffset);
  const add = (b) => {
    const at = alignUp(data.length);
    data = Buffer.concat([data, Buffer.alloc(at - data.length), Buffer.from(b)]);
    return { offset: at, length: b.length, crc32: crc32(b) };
  };
  for (const [name, b] of Object.entries(replace)) Object.assign(header.sections.find((s) => s.name === name), add(b));
  for (const { name, bytes: b } of append) header.sections.push({ name, ...add(b) });
  const out = fn(header);
  const h = out === undefined ? header : out;
  const text = Buffer.from(typeof h === 'string' ? h : JSON.stringify(h), 'utf8');
  const at = alignUp(data.length);
  const file = Buffer.concat([data, Buffer.alloc(at - data.length), text]);
  file.writeUInt32LE(text.length, 12);
  file.writeBigUInt64LE(BigInt(at), 16);
  file.writeUInt32LE(crc32(text), 24);
  const path = join(tmpDir('himg'), 'model.fnimg');
  writeFileSync(path, file);
  return path;
}

/** Sections of a header by name. */
export const sectionOf = (h, name) => h.sections.find((s) => s.name === name);
/** The tensor entry of `role` (and layer). */
export const tensorOf = (h, role, layer = -1) => h.tensors.find((t) => t.role === role && t.layer === layer);
