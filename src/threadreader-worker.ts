// The thread behind ThreadReader (threadreader.ts): waits for a round, takes its ops from the
// shared counter and reads them with pread into the shared staging span, marking each one, then
// reports done (or the first failure, as text).
import { closeSync, openSync, readSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { WAIT_SLICE_MS, sharedLayout } from './threadreader.js';

const ASK = 0, DONE = 1, STATUS = 2, COUNT = 3, STOP = 4, NEXT = 5;
const { path, sab, stagingBytes, maxOps, ctrlBytes, msgBytes } = workerData as
  { path: string; sab: SharedArrayBuffer; stagingBytes: number; maxOps: number; ctrlBytes: number; msgBytes: number };
const L = sharedLayout(stagingBytes, maxOps);
const ctrl = new Int32Array(sab, L.ctrl, ctrlBytes >> 2);
const msg = new Uint8Array(sab, L.msg, msgBytes);
const plan = new Float64Array(sab, L.plan, maxOps * 3);
const byWorker = new Uint8Array(sab, L.byWorker, maxOps);
const data = new Uint8Array(sab, L.data, stagingBytes);
// Polls this many times for the next round before sleeping: rounds follow each other within a
// fraction of a millisecond while tokens are generated, and a futex wake-up costs tens of µs.
const SPIN = 400_000;

function fail(text: string): number {
  const b = new TextEncoder().encode(text).subarray(0, msgBytes);
  msg.set(b);
  return b.length || 1;
}

/** Reads ops of the round until none are left; 0 when all it took landed whole, else the length of the error message. */
function round(fd: number, count: number): number {
  for (let i = Atomics.add(ctrl, NEXT, 1); i < count; i = Atomics.add(ctrl, NEXT, 1)) {
    const off = plan[3 * i], len = plan[3 * i + 1], dst = plan[3 * i + 2];
    let done = 0;
    while (done < len) {
      let n: number;
      try { n = readSync(fd, data, dst + done, len - done, off + done); } catch (e) {
        const err = e as NodeJS.ErrnoException;
        return fail(`${path}: read of ${len} bytes at offset ${off} failed (${err.code ? `${err.code}: ` : ''}${err.message})`);
      }
      if (n === 0) return fail(`${path}: short read of ${len} bytes at offset ${off}: got ${done} (file truncated?)`);
      done += n;
    }
    byWorker[i] = 1;
  }
  return 0;
}

let fd = -1, seen = 0;
try { fd = openSync(path, 'r'); } catch { /* reported on the first round */ }
for (;;) {
  for (let spin = 0; spin < SPIN && Atomics.load(ctrl, ASK) === seen; spin++);
  while (Atomics.load(ctrl, ASK) === seen) Atomics.wait(ctrl, ASK, seen, WAIT_SLICE_MS);
  seen = Atomics.load(ctrl, ASK);
  if (Atomics.load(ctrl, STOP)) break;
  const status = fd < 0 ? fail(`${path}: cannot open for reading`) : round(fd, Atomics.load(ctrl, COUNT));
  Atomics.store(ctrl, STATUS, status);
  Atomics.store(ctrl, DONE, seen);
  Atomics.notify(ctrl, DONE);
}
if (fd >= 0) closeSync(fd);
