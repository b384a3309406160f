// Checks the checkpoint readers share: bounded integers, the upper limits of a model's shape,
// and duplicate keys in JSON (JSON.parse keeps the last silently).

/**
 * Upper limits of a model's shape, far above any real model (llama.cpp stops at 512 layers; the
 * widest models have d = 16384 or 25600, vocabularies of 256k, contexts of 10M). They bound every
 * loop and allocation a header number drives before the tensors are compared with it.
 */
export const LIMITS = {
  /** Decoder layers. */
  layers: 1024,
  /** hidden, ffn, heads × head dim, head dim. */
  dim: 1 << 20,
  /** Attention heads (query or KV). */
  heads: 1 << 12,
  /** Tokens of a vocabulary; also any token-list array. */
  vocab: 1 << 24,
  /** Context positions. */
  context: 1 << 24,
} as const;

const show = (v: unknown): string => {
  if (typeof v === 'bigint') return `${v}`;
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 40 ? s.slice(0, 37) + '...' : s;
  } catch {
    return String(v);
  }
};

/**
 * `value` as an integer in [min, max], else `fail` with what it was and what was expected. Accepts
 * numbers and bigints (GGUF's 64-bit values).
 */
export function int(value: unknown, name: string, min: number, max: number, fail: (why: string) => never): number {
  const n = typeof value === 'bigint' && value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) {
    return fail(`${name} is ${show(value)} (expected an integer from ${min} to ${max})`);
  }
  return n;
}

/**
 * The first key that occurs twice in one object of the JSON `text` (at any depth), as a path
 * (`"a"."b"`), or undefined. `text` must already have passed JSON.parse: this only tracks
 * strings and nesting, one pass, no allocation beyond the keys of the open objects.
 */
export function duplicateKey(text: string): string | undefined {
  // Per open container: the keys seen (objects) or null (arrays), and its path.
  const frames: { keys: Set<string> | null; path: string }[] = [];
  let expectKey = false, lastKey: string | undefined;
  const join = (path: string, key: string) => `${path}${path ? '.' : ''}${JSON.stringify(key)}`;
  const inner = () => {
    const f = frames[frames.length - 1];
    return !f ? '' : !f.keys || lastKey === undefined ? f.path : join(f.path, lastKey);
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) { // a string: a key when an object expects one, else a value to skip
      const start = i;
      for (;;) { // the closing quote: one not preceded by an odd run of backslashes
        i = text.indexOf('"', i + 1);
        if (i < 0) return undefined;
        let b = i - 1;
        while (text.charCodeAt(b) === 0x5c) b--;
        if ((i - 1 - b) % 2 === 0) break;
      }
      const f = frames[frames.length - 1];
      if (expectKey && f?.keys) {
        const raw = text.slice(start + 1, i);
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        if (f.keys.has(key)) return join(f.path, key);
        f.keys.add(key);
        expectKey = false;
        lastKey = key;
      }
    } else if (c === 0x7b) { // {
      frames.push({ keys: new Set(), path: inner() });
      expectKey = true;
      lastKey = undefined;
    } else if (c === 0x5b) { // [
      frames.push({ keys: null, path: inner() });
    } else if (c === 0x7d || c === 0x5d) { // } ]
      frames.pop();
      expectKey = false;
    } else if (c === 0x2c) { // , : the next key of an object
      expectKey = frames[frames.length - 1]?.keys != null;
    }
  }
  return undefined;
}
