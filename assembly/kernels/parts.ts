// How a job is cut into parts for the compute threads (assembly/threads.ts).

/** Where part p of n starts in [0, total): parts differ by at most one. */
@inline export function cut(total: i32, p: i32, n: i32): i32 {
  return <i32>((<i64>total * <i64>p) / <i64>n);
}
