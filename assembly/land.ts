// A round's landed bundles into their cache rows, shared over the compute threads (threads.ts,
// KIND_LAND): each bundle's parts copied from staging into its row, then its CRC checked. Workers
// are separate instances with their own globals, so everything travels in a block that
// sparse.ts's round_done fills; each bundle's verdict goes to `ok`, and round_done then marks
// and reports them in order: the outcome never depends on who landed what.
import { alloc } from "./mem";
import { crc32 } from "./flash";
import { cut } from "./kernels/parts";

const B_N: usize = 0;        // i32 bundles landing
const B_IDS: usize = 4;      // (n) i32 their neuron ids (planner.ts's itemId)
const B_PTRS: usize = 8;     // (n, 4) u32 staging address of each part (itemPtr)
const B_ROWS: usize = 12;    // (n) u32 their cache rows
const B_OK: usize = 16;      // (n) u8 verdicts
const B_PARTS: usize = 20;   // i32 parts per bundle
const B_ROW_BYTES: usize = 24;
const B_CRCS: usize = 28;    // the layer's (ffn) u32 CRCs, 0: no check
const B_SEEN: usize = 32;    // the (nLayers * ffn) bitmap of neurons that passed once, 0: check every one
const B_BASE: usize = 36;    // i32 layer * ffn: the layer's first bit
const B_PR: usize = 40;      // (4) u32 where each part goes in a row
const B_PL: usize = 56;      // (4) u32 each part's length
const BYTES: usize = 72;

/** The block and its lists for up to `maxItems` bundles a round (flash_init). */
export function land_init(maxItems: i32): usize {
  const p = alloc(BYTES, 64);
  memory.fill(p, 0, BYTES);
  store<u32>(p + B_ROWS, <u32>alloc(<usize>maxItems << 2, 16));
  store<u32>(p + B_OK, <u32>alloc(<usize>maxItems, 16));
  return p;
}

export function land_rows(p: usize): usize { return <usize>load<u32>(p + B_ROWS); }
export function land_ok(p: usize, k: i32): bool { return load<u8>(<usize>load<u32>(p + B_OK) + <usize>k) != 0; }

/** Points block p at a round: n bundles of layer base / ffn (the rows already in land_rows). */
export function land_set(p: usize, n: i32, ids: usize, ptrs: usize, parts: i32, rowBytes: usize, crcs: usize, seen: usize, base: i32): void {
  store<i32>(p + B_N, n); store<u32>(p + B_IDS, <u32>ids); store<u32>(p + B_PTRS, <u32>ptrs);
  store<i32>(p + B_PARTS, parts); store<u32>(p + B_ROW_BYTES, <u32>rowBytes);
  store<u32>(p + B_CRCS, <u32>crcs); store<u32>(p + B_SEEN, <u32>seen); store<i32>(p + B_BASE, base);
}

/** Part q's place in a row and length. */
export function land_part_layout(p: usize, q: i32, row: usize, len: usize): void {
  store<u32>(p + B_PR + (<usize>q << 2), <u32>row); store<u32>(p + B_PL + (<usize>q << 2), <u32>len);
}

/** Part `part` of `parts` of the bundles of block p: copied into their rows (unless read in place), then checked. */
export function land_part(p: usize, part: i32, parts: i32): void {
  const n = load<i32>(p + B_N), ids = <usize>load<u32>(p + B_IDS), ptrs = <usize>load<u32>(p + B_PTRS);
  const rows = <usize>load<u32>(p + B_ROWS), ok = <usize>load<u32>(p + B_OK), nParts = load<i32>(p + B_PARTS);
  const rowBytes = <usize>load<u32>(p + B_ROW_BYTES), crcs = <usize>load<u32>(p + B_CRCS), seen = <usize>load<u32>(p + B_SEEN);
  const base = load<i32>(p + B_BASE);
  for (let k = cut(n, part, parts), end = cut(n, part + 1, parts); k < end; k++) {
    const row = <usize>load<u32>(rows + (<usize>k << 2)), src = ptrs + (<usize>k << 4);
    if (<usize>load<u32>(src) != row) {   // else read in place
      for (let q = 0; q < nParts; q++) {
        memory.copy(row + <usize>load<u32>(p + B_PR + (<usize>q << 2)), <usize>load<u32>(src + (<usize>q << 2)), <usize>load<u32>(p + B_PL + (<usize>q << 2)));
      }
    }
    let good = true;
    if (crcs) {
      const id = load<i32>(ids + (<usize>k << 2)), bit = <usize>(base + id);
      const passed = seen != 0 && (load<u32>(seen + ((bit >> 5) << 2)) & (<u32>1 << <u32>(bit & 31))) != 0;
      if (!passed) good = crc32(0, row, rowBytes) == load<u32>(crcs + (<usize>id << 2));
    }
    store<u8>(ok + <usize>k, good ? 1 : 0);
  }
}
