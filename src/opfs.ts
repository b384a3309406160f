// Browsers: the Origin Private File System as flash. A dedicated worker opens a file's
// FileSystemSyncAccessHandle, whose read(view, { at }) lands straight in wasm memory; the engine
// reaches it through the WASI shim (wasi/shim.ts) like any other FlashSource.
import type { FlashSource } from './flash.js';

/** A file in OPFS, read through its sync access handle (dedicated workers only). */
export class OpfsSource implements FlashSource {
  readonly size: number;
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

  /** One sync access handle per file: the batch is read in order (OPFS reads are memory-speed here). */
  async readBatch(memory: WebAssembly.Memory, plan: Float64Array, count: number): Promise<void> {
    const mem = new Uint8Array(memory.buffer);
    for (let i = 0; i < count; i++) {
      const off = plan[3 * i], len = plan[3 * i + 1], dst = plan[3 * i + 2];
      const got = this.pread(mem.subarray(dst, dst + len), off);
      if (got !== len) throw new Error(`${this.name}: short read of ${len} bytes at offset ${off}: got ${got} (file truncated?)`);
    }
  }

  close(): void { this.handle.close(); }
}

/**
 * Writes `chunks` into OPFS as `name`: first to `name.partial`, checked by `validate` (which gets
 * the written file's source), then renamed — so nothing half-written is ever left under `name`.
 * A quota error or a failed check removes the partial file and rethrows with a clear message.
 */
export async function writeOpfs(name: string, total: number, chunks: AsyncIterable<Uint8Array>,
  validate: (src: OpfsSource) => void, onProgress?: (done: number, total: number) => void): Promise<void> {
  const dir = await navigator.storage.getDirectory();
  const partial = `${name}.partial`;
  await dir.removeEntry(partial).catch(() => {});
  let handle: FileSystemSyncAccessHandle | undefined;
  try {
    const fh = await dir.getFileHandle(partial, { create: true });
    handle = await fh.createSyncAccessHandle();
    handle.truncate(0);
    let at = 0;
    for await (const c of chunks) {
      let off = 0;
      while (off < c.length) off += handle.write(c.subarray(off), { at: at + off });
      at += c.length;
      onProgress?.(at, total);
    }
    handle.flush();
    const src = new OpfsSource(partial, handle);
    validate(src);
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

/** Opens `name` from OPFS for reading. */
export async function openOpfs(name: string): Promise<OpfsSource> {
  const dir = await navigator.storage.getDirectory();
  const fh = await dir.getFileHandle(name);
  return new OpfsSource(name, await fh.createSyncAccessHandle());
}
