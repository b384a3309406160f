// How the engine reaches flash: WASI preview1 file descriptors. The host preopens a directory
// (node:wasi in Node/Deno/Bun) or provides the same calls over OPFS or memory (src/io/wasi-shim.ts);
// the engine only ever opens a file by name and reads it with fd_pread at explicit offsets.
import { cut } from "./kernels/parts";

@external("wasi_snapshot_preview1", "path_open")
declare function path_open(dirfd: u32, dirflags: u32, path: usize, pathLen: usize, oflags: u16,
  rightsBase: u64, rightsInheriting: u64, fdflags: u16, fdOut: usize): u16;

@external("wasi_snapshot_preview1", "fd_pread")
declare function fd_pread(fd: u32, iovs: usize, iovsLen: usize, offset: u64, nreadOut: usize): u16;

@external("wasi_snapshot_preview1", "fd_close")
declare function fd_close(fd: u32): u16;

const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_SEEK: u64 = 1 << 2;
const RIGHT_FD_FILESTAT_GET: u64 = 1 << 21;

// Scratch for the iovec and out-parameters: calls are synchronous, so one set suffices.
const scratch = memory.data(32, 16);

/** Opens `path` (UTF-8 at pathPtr) relative to preopened directory `dirfd`. Returns fd ≥ 0 or -errno. */
export function flash_open(dirfd: u32, pathPtr: usize, pathLen: usize): i32 {
  const rights = RIGHT_FD_READ | RIGHT_FD_SEEK | RIGHT_FD_FILESTAT_GET;
  const err = path_open(dirfd, 0, pathPtr, pathLen, 0, rights, rights, 0, scratch);
  return err ? -<i32>err : load<i32>(scratch);
}

export function flash_close(fd: u32): i32 {
  return -<i32>fd_close(fd);
}

/**
 * Reads `len` bytes at file `offset` into memory at `dst`, looping over partial reads.
 * Returns the bytes read (< len only at end of file) or -errno.
 */
export function flash_read(fd: u32, dst: usize, len: usize, offset: u64): i64 {
  return flash_read_with(fd, dst, len, offset, scratch);
}

/** flash_read with the caller's 12 bytes of scratch at `scratch` (threads read side by side). */
export function flash_read_with(fd: u32, dst: usize, len: usize, offset: u64, scratch: usize): i64 {
  let done: usize = 0;
  while (done < len) {
    store<usize>(scratch, dst + done);
    store<usize>(scratch, len - done, 4);
    const err = fd_pread(fd, scratch, 1, offset + <u64>done, scratch + 8);
    if (err) return -<i64>err;
    const n = load<usize>(scratch, 8);
    if (n == 0) break;
    done += n;
  }
  return <i64>done;
}

/**
 * Part `part` of `parts` of the entries [0, n) of a read plan (planner.ts: f64 offset, length,
 * destination), read by whichever thread takes the part: entry i's 16 bytes at `results` serve
 * as its read's scratch, then hold the bytes read or -errno (i64).
 */
export function read_part(fd: u32, plan: usize, results: usize, n: i32, part: i32, parts: i32): void {
  for (let i = cut(n, part, parts), end = cut(n, part + 1, parts); i < end; i++) {
    const e = plan + <usize>i * 24, r = results + (<usize>i << 4);
    const got = flash_read_with(fd, <usize>load<f64>(e, 16), <usize>load<f64>(e, 8), <u64>load<f64>(e), r);
    store<i64>(r, got);
  }
}

// ---- CRC-32 (IEEE 802.3, as zlib), slicing-by-8 ----

const CRC_TABLE = memory.data(8 * 256 * 4, 16);
let crcReady = false;

function crcInit(): void {
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    store<u32>(CRC_TABLE + (<usize>i << 2), c);
  }
  for (let t: usize = 1; t < 8; t++) {
    for (let i: usize = 0; i < 256; i++) {
      const prev = load<u32>(CRC_TABLE + ((t - 1) << 10) + (i << 2));
      store<u32>(CRC_TABLE + (t << 10) + (i << 2), load<u32>(CRC_TABLE + ((prev & 0xff) << 2)) ^ (prev >>> 8));
    }
  }
  crcReady = true;
}

@inline function T(t: usize, b: u32): u32 {
  return load<u32>(CRC_TABLE + (t << 10) + (<usize>(b & 0xff) << 2));
}

/** Continues CRC-32 `crc` (0 to start) over `len` bytes at `p`. */
export function crc32(crc: u32, p: usize, len: usize): u32 {
  if (!crcReady) crcInit();
  let c = ~crc;
  const end = p + len;
  while (p + 8 <= end) {
    const a = load<u32>(p) ^ c;
    const b = load<u32>(p, 4);
    c = T(7, a) ^ T(6, a >>> 8) ^ T(5, a >>> 16) ^ T(4, a >>> 24) ^
        T(3, b) ^ T(2, b >>> 8) ^ T(1, b >>> 16) ^ T(0, b >>> 24);
    p += 8;
  }
  while (p < end) { c = T(0, c ^ load<u8>(p)) ^ (c >>> 8); p++; }
  return ~c;
}
