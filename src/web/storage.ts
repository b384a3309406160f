// The page's view of the Origin Private File System the worker keeps models in: what is stored,
// removing it, and whether reads from it will be fast. A temporary profile (incognito, a
// throwaway automation profile) keeps OPFS in a store where each small read through a sync
// access handle costs hundreds of microseconds instead of about one, which turns a model read
// from flash into a few tokens per second; probeStorage() measures that before anything loads.

/** What probeStorage() found. */
export interface StorageReport {
  /** Microseconds per 2 KiB read through a sync access handle (what the engine's FFN reads are); undefined when it could not be measured. */
  readUs: number | undefined;
  /** Reads are far slower than a normal profile's (temporary/incognito profile): reading the FFN from OPFS per token will be slow. */
  slow: boolean;
  /** The origin's storage is persistent (navigator.storage.persist() was granted). */
  persisted: boolean;
  /** Bytes the origin may store, and stores (navigator.storage.estimate()). */
  quota?: number;
  usage?: number;
}

/** Above this many µs per small read OPFS is the slow kind (measured: ≈ 1.5 µs in a normal Chromium profile, ≈ 350 µs in a temporary one). */
export const SLOW_READ_US = 50;

// Runs in a throwaway dedicated worker (sync access handles exist only there): writes 1 MiB,
// times 256 scattered 2 KiB reads, removes the file and posts µs per read.
const PROBE = `onmessage = async ({ data: name }) => {
  let dir, h;
  try {
    dir = await navigator.storage.getDirectory();
    h = await (await dir.getFileHandle(name, { create: true })).createSyncAccessHandle();
    const size = 1 << 20, b = new Uint8Array(2048);
    h.write(new Uint8Array(size), { at: 0 });
    h.flush();
    for (let i = 0; i < 8; i++) h.read(b, { at: i * 8192 });
    const n = 256, t = performance.now();
    for (let i = 0; i < n; i++) h.read(b, { at: (i * 40961) % (size - b.length) });
    postMessage((performance.now() - t) * 1000 / n);
  } catch (e) {
    postMessage(null);
  } finally {
    try { h?.close(); await dir?.removeEntry(name); } catch {}
  }
};`;

/** Times small OPFS reads in a worker of its own and reports the storage's state. */
export async function probeStorage(opts: { timeoutMs?: number } = {}): Promise<StorageReport> {
  const storage = navigator.storage;
  const [persisted, estimate] = await Promise.all([storage.persisted?.().catch(() => false) ?? false, storage.estimate?.().catch(() => undefined)]);
  let readUs: number | undefined;
  let url: string | undefined, worker: Worker | undefined;
  try {
    url = URL.createObjectURL(new Blob([PROBE], { type: 'text/javascript' }));
    const w = worker = new Worker(url);
    readUs = await new Promise<number | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), opts.timeoutMs ?? 10_000);
      w.onmessage = (e: MessageEvent<number | null>) => { clearTimeout(timer); resolve(e.data ?? undefined); };
      w.onerror = () => { clearTimeout(timer); resolve(undefined); };
      w.postMessage(`.flashneuron-probe-${Math.random().toString(36).slice(2)}`);
    });
  } catch {
    // A page whose content security policy forbids blob: workers: no measurement.
  } finally {
    worker?.terminate();
    if (url) URL.revokeObjectURL(url);
  }
  return { readUs, slow: readUs !== undefined && readUs > SLOW_READ_US, persisted, quota: estimate?.quota, usage: estimate?.usage };
}

/** The files kept in OPFS (models as NAME.fnimg with their NAME.fnpred), with their sizes. */
export async function listStored(): Promise<{ name: string; bytes: number }[]> {
  const dir = await navigator.storage.getDirectory() as FileSystemDirectoryHandle & { values(): AsyncIterable<FileSystemHandle> };
  const out: { name: string; bytes: number }[] = [];
  for await (const h of dir.values()) {
    if (h.kind === 'file') out.push({ name: h.name, bytes: (await (h as FileSystemFileHandle).getFile()).size });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Removes a stored file (a model, its predictor, or a NAME.partial an interrupted store left); false when there was none. */
export async function removeStored(name: string): Promise<boolean> {
  const dir = await navigator.storage.getDirectory();
  try {
    await dir.removeEntry(name);
    return true;
  } catch (e) {
    if ((e as DOMException).name === 'NotFoundError') return false;
    throw e;
  }
}
