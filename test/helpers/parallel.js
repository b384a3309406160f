// Independent work run at once, at most one task per core (processes that stop at their
// arguments, a model's evaluations): what each task gives does not depend on the others or on
// the order they run in, only the wall time does. Results come back in the order given.
//
//   limited(n)                     → run(task): at most n tasks (() => promise) at once, in order
//   inParallel(items, fn, n?)      → Promise.all of fn(item), n (default: the cores) at a time
import { availableParallelism } from 'node:os';

export function limited(n) {
  let running = 0;
  const queue = [];
  const next = () => {
    if (running >= n || !queue.length) return;
    running++;
    const { task, resolve, reject } = queue.shift();
    task().then(resolve, reject).finally(() => { running--; next(); });
  };
  return (task) => new Promise((resolve, reject) => { queue.push({ task, resolve, reject }); next(); });
}

export function inParallel(items, fn, n = availableParallelism()) {
  const run = limited(n);
  return Promise.all(items.map((item, i) => run(() => fn(item, i))));
}
