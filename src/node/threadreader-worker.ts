// The thread behind ThreadReader (threadreader.ts): waits for a round, takes its ops from the
// shared counter and reads them with pread into the shared staging span, marking each one, then
// reports done (or the first failure, as text).
import { closeSync, openSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { ASK, COUNT, DONE, NEXT, STATUS, STOP, WAIT_SLICE_MS, faultViews, preadOp, sharedViews } from './threadreader.js';

const { path, sab, stagingBytes, maxOps, faultSab } = workerData as { path: string; sab: SharedArrayBuffer; stagingBytes: number; maxOps: number; faultSab?: SharedArrayBuffer };
const { ctrl, msg, plan, byWorker, data } = sharedViews(sab, stagingBytes, maxOps);
const faults = faultSab && faultViews(faultSab);
// Polls this many times for the next round before sleeping: rounds follow each other within a
// fraction of a millisecond while tokens are generated, and a futex wake-up costs tens of µs.
const SPIN = 400_000;

function fail(text: string): number {
  const b = new TextEncoder().encode(text).subarray(0, msg.length);
  msg.set(b);
  return b.length || 1;
}

/** Reads ops of the round until none are left; 0 when all it took landed whole, else the length of the error message. */
function round(fd: number, count: number): number {
  for (let i = Atomics.add(ctrl, NEXT, 1); i < count; i = Atomics.add(ctrl, NEXT, 1)) {
    const why = preadOp(fd, path, data, plan[3 * i + 2], plan[3 * i + 1], plan[3 * i], faults, i);
    if (why) return fail(why);
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
