// What the host's stats line reads: flash traffic and where the time went, summed since
// stats_reset(), and the error of the last failed read. Times are ms of the host's clock.
// Only this module assigns the counters; the others add through the @inline helpers below,
// which compile to the same global updates as writing them in place.

@external("env", "now")
export declare function now(): f64;

export let ioError: i32 = 0;  // errno of a failed read (negative: short read), 0 when fine
let bytesRead: f64 = 0;
let readCount: f64 = 0;
let tIo: f64 = 0;
let tMem: f64 = 0;
let tCompute: f64 = 0;
let tPredict: f64 = 0;     // the predictor's share of tCompute

export function io_error(): i32 { return ioError; }
@inline export function set_io_error(e: i32): void { ioError = e; }

// The read that failed (for the host's message): file offset, bytes asked, bytes got (or -errno).
let failOffset: f64 = 0, failLen: f64 = 0, failGot: f64 = 0;
export function set_io_failure(e: i32, offset: u64, len: usize, got: i64): void {
  ioError = e; failOffset = <f64>offset; failLen = <f64>len; failGot = <f64>got;
}
export function io_fail_offset(): f64 { return failOffset; }
export function io_fail_len(): f64 { return failLen; }
export function io_fail_got(): f64 { return failGot; }
export function stat_bytes_read(): f64 { return bytesRead; }
export function stat_reads(): f64 { return readCount; }
export function stat_io_ms(): f64 { return tIo; }
export function stat_mem_ms(): f64 { return tMem; }
export function stat_compute_ms(): f64 { return tCompute; }
export function stat_predict_ms(): f64 { return tPredict; }
export function add_io(bytes: f64, ops: f64, ms: f64): void { bytesRead += bytes; readCount += ops; tIo += ms; }
export function stats_reset(): void { bytesRead = 0; readCount = 0; tIo = 0; tMem = 0; tCompute = 0; tPredict = 0; }

// The timers: xSince(t0) adds now() - t0 (as `tX += now() - t0` in place), addXMs(ms) adds ms.
@inline export function ioSince(t0: f64): void { tIo += now() - t0; }
@inline export function memSince(t0: f64): void { tMem += now() - t0; }
@inline export function computeSince(t0: f64): void { tCompute += now() - t0; }
@inline export function predictSince(t0: f64): void { tPredict += now() - t0; }
@inline export function addMemMs(ms: f64): void { tMem += ms; }
@inline export function addComputeMs(ms: f64): void { tCompute += ms; }
