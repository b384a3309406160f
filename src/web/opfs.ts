// Browsers: the Origin Private File System as flash. A dedicated worker opens a file's
// FileSystemSyncAccessHandle, whose read(view, { at }) lands straight in wasm memory; the engine
// reaches it through the WASI shim (src/io/wasi-shim.ts) like any other FlashSource.
import { readBatchInOrder, shortRead, type FlashSource } from '../io/source.js';
import type { CheckpointFS } from '../format/safetensors.js';
import { readHFCheckpoint } from '../format/hf.js';
import { readImageHeader } from '../format/image.js';
import { writeImage } from '../format/image-writer.js';
import { withFaults, type FaultSpec } from '../io/fault.js';

/** A file in OPFS, read through its sync access handle (dedicated workers only). */
export class OpfsSource implements FlashSource {
  readonly size: number;
  /** A snapshot File of the same bytes: async Blob reads may run many at once beside the sync handle. */
  file: File | undefined;
  constructor(readonly name: string, private handle: FileSystemSyncAccessHandle) {
    this.size = handle.getSize();
  }

  pread(dst: Uint8Array, offset: number): number {
    let done = 0;
    while (done < dst.length) {
      const n = this.handle.read(dst.subarray(done), { at: offset + done });
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  /**
   * A batch of reads. A file has one sync access handle, so reads through it run one at a time;
   * with a File snapshot the batch instead goes out as async Blob reads, up to 16 at once.
   */
  async readBatch(memory: WebAssembly.Memory, plan: Float64Array, count: number): Promise<void> {
    if (!this.file) { readBatchInOrder(this, memory, plan, count); return; }
    const file = this.file;
    let next = 0, failed: Error | undefined;
    const lane = async () => {
      while (next < count && !failed) {
        const i = next++;
        const off = plan[3 * i], len = plan[3 * i + 1], dst = plan[3 * i + 2];
        const b = new Uint8Array(await file.slice(off, off + len).arrayBuffer());
        if (b.length !== len) failed ??= shortRead(this.name, len, off, b.length);
        else new Uint8Array(memory.buffer, dst, len).set(b);
      }
    };
    await Promise.all(Array.from({ length: Math.min(16, count) }, lane));
    if (failed) throw failed;
  }

  close(): void { this.handle.close(); }
}

/**
 * Writes a file into OPFS as `name`: `fill` writes it through the sync access handle of
 * `name.partial`; `validate` then checks it (given the written file as a source) and only then is
 * it renamed — so nothing half-written is ever left under `name`. A quota error or a failed
 * check removes the partial file and rethrows with a clear message.
 */
export async function writeOpfs(name: string, total: number, fill: (h: FileSystemSyncAccessHandle) => Promise<void> | void,
  validate: (src: OpfsSource) => void): Promise<void> {
  const dir = await navigator.storage.getDirectory();
  const partial = `${name}.partial`;
  await dir.removeEntry(partial).catch(() => {});
  let handle: FileSystemSyncAccessHandle | undefined;
  try {
    const fh = await dir.getFileHandle(partial, { create: true });
    handle = await fh.createSyncAccessHandle();
    handle.truncate(0);
    await fill(handle);
    handle.flush();
    validate(new OpfsSource(partial, handle));
    handle.close();
    handle = undefined;
    await dir.removeEntry(name).catch(() => {});
    await (fh as any).move(name);
  } catch (e) {
    handle?.close();
    await dir.removeEntry(partial).catch(() => {});
    const err = e as DOMException;
    if (err?.name === 'QuotaExceededError' || /quota/i.test(String(err?.message))) throw new Error(`not enough browser storage for ${name} (${(total / 2 ** 20).toFixed(1)} MiB): ${err.message}`);
    throw e;
  }
}

/** fill() for writeOpfs: a stream of chunks written in order. */
export function streamFill(chunks: AsyncIterable<Uint8Array>, total: number, onProgress?: (done: number, total: number) => void) {
  return async (h: FileSystemSyncAccessHandle) => {
    let at = 0;
    for await (const c of chunks) {
      writeAll(h, c, at);
      at += c.length;
      onProgress?.(at, total);
    }
  };
}

export function writeAll(h: FileSystemSyncAccessHandle, bytes: Uint8Array, at: number): void {
  let off = 0;
  while (off < bytes.length) off += h.write(bytes.subarray(off), { at: at + off });
}

/**
 * The files of a picked Hugging Face folder (`<input webkitdirectory>`) as the checkpoint reader's
 * CheckpointFS, read synchronously with FileReaderSync (dedicated workers).
 */
export function filesCheckpointFS(files: File[]): CheckpointFS & { folder: string } {
  const byName = new Map<string, File>();
  let folder = '';
  for (const f of files) {
    const rel = (f as any).webkitRelativePath || f.name;
    const parts = rel.split('/');
    if (parts.length > 1) folder = parts[0];
    byName.set(parts.slice(1).join('/') || f.name, f);
  }
  const reader = new FileReaderSync();
  return {
    folder: folder || 'model',
    label: (name) => `${folder || 'folder'}/${name}`,
    readText: (name) => { const f = byName.get(name); return f ? reader.readAsText(f) : undefined; },
    open(name) {
      const f = byName.get(name);
      if (!f) return undefined;
      return {
        size: f.size,
        pread(dst: Uint8Array, offset: number): number {
          const n = Math.max(0, Math.min(dst.length, f.size - offset));
          dst.set(new Uint8Array(reader.readAsArrayBuffer(f.slice(offset, offset + n))));
          return n;
        },
      };
    },
  };
}

/**
 * Opens `name` from OPFS for reading. `faults` injects read faults (src/io/fault.ts, for tests);
 * by default those named by the worker's own URL, `worker.js?faults=eio@12`.
 */
export async function openOpfs(name: string, opts: { parallel?: boolean; faults?: FaultSpec | string } = {}): Promise<FlashSource> {
  const dir = await navigator.storage.getDirectory();
  const fh = await dir.getFileHandle(name);
  const src = new OpfsSource(name, await fh.createSyncAccessHandle());
  if (opts.parallel) src.file = await fh.getFile();
  return withFaults(src, opts.faults ?? faultsOfLocation());
}

/** The `faults` parameter of this worker's URL, if any. */
function faultsOfLocation(): string | undefined {
  const loc = (globalThis as { location?: { search?: string } }).location;
  return loc?.search ? new URLSearchParams(loc.search).get('faults') ?? undefined : undefined;
}

/** Where a model comes from: a URL, a picked file, or the files of a picked Hugging Face folder. */
export interface ModelSpec {
  /** The name it gets in OPFS. */
  name: string;
  url?: string;
  file?: File;
  files?: File[];
  /** Where its sparsity predictor (.fnpred) is, when it is not among `files`. */
  predictorUrl?: string;
  /**
   * SiLU-gated models: where its calibrated thresholds (.fnthr, `flashneuron calibrate`) are, when
   * they are not among `files` (as flashneuron.fnthr). Kept in OPFS beside the image (NAME.fnthr),
   * where later loads find them.
   */
  thresholdsUrl?: string;
}

/**
 * Puts the model of `spec` into OPFS once (written as `name.partial`, checked, then renamed;
 * a URL already stored is not fetched again; a picked file or folder replaces it) and returns
 * its predictor's bytes when it has one.
 */
export async function storeModel(spec: ModelSpec, onProgress: (phase: string, done: number, total: number) => void): Promise<Uint8Array | undefined> {
  const dir = await navigator.storage.getDirectory();
  const have = await dir.getFileHandle(spec.name).then((h) => h.getFile()).catch(() => undefined);
  const validate = (src: OpfsSource) => { readImageHeader(src); };
  if (spec.files?.length) {
    // A Hugging Face folder: converted once, straight into OPFS; its predictor file, if any, is used.
    const ckpt = await readHFCheckpoint(filesCheckpointFS(spec.files));
    try {
      const total = spec.files.reduce((a, f) => a + f.size, 0);
      await writeOpfs(spec.name, total, (h) => {
        writeImage(ckpt, (bytes, pos) => writeAll(h, bytes, pos), (done, t, phase) => onProgress(`convert ${phase}`, done, t));
      }, validate);
    } finally { ckpt.close(); }
    const pred = spec.files.find((f) => f.name === 'flashneuron.fnpred');
    if (pred) return new Uint8Array(await pred.arrayBuffer());
  } else if (!have || spec.file) {
    const { total, chunks } = await open(spec);
    await writeOpfs(spec.name, total, streamFill(chunks, total, (done, t) => onProgress('write to OPFS', done, t)), validate);
  }
  if (!spec.predictorUrl) return undefined;
  const r = await fetch(spec.predictorUrl);
  if (!r.ok) throw new Error(`cannot fetch ${spec.predictorUrl}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** Streams a File or a fetched URL in chunks, with its size. */
async function open(m: { url?: string; file?: File }): Promise<{ total: number; chunks: AsyncIterable<Uint8Array> }> {
  if (m.file) return { total: m.file.size, chunks: iterate(m.file.stream().getReader()) };
  const r = await fetch(m.url!);
  if (!r.ok || !r.body) throw new Error(`cannot fetch ${m.url}: HTTP ${r.status}`);
  return { total: Number(r.headers.get('content-length') ?? 0), chunks: iterate(r.body.getReader()) };
}

async function* iterate(reader: ReadableStreamDefaultReader<Uint8Array>): AsyncIterable<Uint8Array> {
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    yield value;
  }
}
