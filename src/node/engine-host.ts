// What Node, Deno and Bun bring to the engine: image files opened by path, the runtime's own
// node:wasi for the wasm's reads, reads on a worker thread, and the wasm builds on disk.
//
// FLASHNEURON_FAULTS (src/io/fault.ts's text form) injects read faults into every image opened
// while it is set, for tests of error handling: the file is wrapped in a FaultySource, the wasm's
// reads then go through the WASI shim over it (node:wasi would read the file behind its back),
// and a read thread asks the same FaultPlan.
import { setEngineHost } from '../core/engine.js';
import { FaultySource, withFaults, type FaultPlan } from '../io/fault.js';
import { FileSource } from './file-source.js';
import { ThreadReader } from './threadreader.js';
import { startComputeThreads } from './compute-threads.js';
import { availableParallelism } from 'node:os';
import { createNodeWasi } from './wasi.js';
import './wasm-files.js';

/** The fault plan of the image opened last (Engine.open opens the file, then its read thread, in one call). */
let opened: { path: string; plan: FaultPlan } | undefined;

setEngineHost({
  openFile(path, o) {
    const src = withFaults(new FileSource(path, { direct: o.direct, queueDepth: o.queueDepth }), process.env.FLASHNEURON_FAULTS);
    opened = src instanceof FaultySource ? { path, plan: src.plan } : undefined;
    return src;
  },
  wasi(path, src, opts) {
    if (src instanceof FaultySource) return undefined;
    // Deno's and Bun's node:wasi fail reads into memory past 2 GiB (EFAULT): large images there use the shim.
    const rt = globalThis as { Deno?: unknown; process?: { versions?: { bun?: string } } };
    const nodeLike = !rt.Deno && !rt.process?.versions?.bun;
    return (opts.wasi ?? (nodeLike || src.size < 2 ** 30 ? 'node' : 'shim')) === 'node' ? createNodeWasi(path) : undefined;
  },
  computeThreads: startComputeThreads,
  cores: () => availableParallelism(),
  threadReader: {
    bytesFor: (staging, maxOps) => ThreadReader.bytesFor(staging, maxOps),
    open: (path, staging, maxOps) => new ThreadReader(path, staging, maxOps, opened?.path === path ? opened.plan : undefined),
  },
});
