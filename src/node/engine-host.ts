// What Node, Deno and Bun bring to the engine: image files opened by path, the runtime's own
// node:wasi for the wasm's reads, reads on a worker thread, and the wasm builds on disk.
import { setEngineHost } from '../core/engine.js';
import { FileSource } from './file-source.js';
import { ThreadReader } from './threadreader.js';
import { createNodeWasi } from './wasi.js';
import './wasm-files.js';

setEngineHost({
  openFile: (path, o) => new FileSource(path, { direct: o.direct, queueDepth: o.queueDepth }),
  wasi(path, src, opts) {
    // Deno's and Bun's node:wasi fail reads into memory past 2 GiB (EFAULT): large images there use the shim.
    const rt = globalThis as { Deno?: unknown; process?: { versions?: { bun?: string } } };
    const nodeLike = !rt.Deno && !rt.process?.versions?.bun;
    return (opts.wasi ?? (nodeLike || src.size < 2 ** 30 ? 'node' : 'shim')) === 'node' ? createNodeWasi(path) : undefined;
  },
  threadReader: { bytesFor: (staging, maxOps) => ThreadReader.bytesFor(staging, maxOps), open: (path, staging, maxOps) => new ThreadReader(path, staging, maxOps) },
});
