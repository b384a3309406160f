// Streaming detokenization: ids in, text out as characters complete. A character whose bytes span
// several tokens is emitted once, when its last byte arrives; byte-fallback tokens (`<0xNN>`)
// when their run ends. Tokens whose bytes are whole UTF-8 skip the TextDecoder while it holds no
// bytes: a streaming decode costs several µs, a sizeable share of a small model's token.

export interface StreamDecoder {
  /** Feed one id; returns the text completed by it (possibly ""). */
  push(id: number): string;
  /** Returns what is left (an incomplete UTF-8 tail becomes U+FFFD) and resets the decoder. */
  flush(): string;
}

/** What a tokenizer's decoder knows per id (tokenizer.ts builds it once). */
export interface DecoderTables {
  /** id -> raw bytes; undefined where no token has that id. */
  bytes: readonly (Uint8Array | undefined)[];
  /** id -> bytes when the token is the first one decoded, where that differs (Metaspace decoders). */
  firstBytes: ReadonlyMap<number, Uint8Array>;
  /** id -> byte, for ByteFallback tokens. */
  fallback: ReadonlyMap<number, number>;
  special: ReadonlySet<number>;
  /** The decoder's whole-text Strip (leading characters removed from the text's start). */
  strip?: { char: string; count: number };
  /** id -> its text when its bytes are whole, valid UTF-8, else null; filled as ids are decoded. */
  whole: (string | null | undefined)[];
}

export const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The bytes a streaming UTF-8 TextDecoder holds back, tracked as the WHATWG decoder does: bytes
 * still needed for the character begun, and the range its next byte must fall in. A byte outside
 * the range ends the character as U+FFFD and is looked at afresh.
 */
class Utf8State {
  private need = 0;
  private seen = 0;
  private lo = 0x80;
  private hi = 0xbf;
  get empty(): boolean { return this.need === 0; }
  reset(): void { this.need = this.seen = 0; this.lo = 0x80; this.hi = 0xbf; }
  feed(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) {
      const x = bytes[i];
      if (this.need !== 0) {
        if (x >= this.lo && x <= this.hi) {
          this.lo = 0x80; this.hi = 0xbf;
          if (++this.seen === this.need) this.need = this.seen = 0;
          continue;
        }
        this.reset();
      }
      if (x >= 0xc2 && x <= 0xdf) this.need = 1;
      else if (x >= 0xe0 && x <= 0xef) { this.need = 2; if (x === 0xe0) this.lo = 0xa0; if (x === 0xed) this.hi = 0x9f; }
      else if (x >= 0xf0 && x <= 0xf4) { this.need = 3; if (x === 0xf0) this.lo = 0x90; if (x === 0xf4) this.hi = 0x8f; }
    }
  }
}

/** Applies a whole-text Strip to the text's chunks, in order. */
function stripper(s: DecoderTables['strip']): (chunk: string) => string {
  let left = s ? s.count : 0;
  return (chunk) => {
    while (left > 0 && chunk.startsWith(s!.char)) {
      chunk = chunk.slice(s!.char.length);
      left--;
    }
    if (chunk !== '') left = 0;
    return chunk;
  };
}

/** A token's text when its bytes are whole, valid UTF-8 (cached in t.whole). */
function wholeText(t: DecoderTables, id: number, b: Uint8Array): string | undefined {
  let s = t.whole[id];
  if (s === undefined) {
    try { s = strictUtf8.decode(b); } catch { s = null; }
    t.whole[id] = s;
  }
  return s ?? undefined;
}

/** A streaming decoder over a tokenizer's tables; `skip` leaves special tokens out. */
export function streamDecoder(t: DecoderTables, skip: boolean): StreamDecoder {
  const td = new TextDecoder('utf-8', { ignoreBOM: true });
  let first = true;
  let strip = stripper(t.strip);
  // A run of ByteFallback bytes is held until it ends: valid UTF-8 gives its text, anything
  // else one U+FFFD per byte (Rust's rule, which a later byte of the run can still change).
  let run: number[] = [];
  const endRun = (): string => {
    if (run.length === 0) return '';
    let text: string;
    try {
      text = strictUtf8.decode(Uint8Array.from(run));
    } catch {
      text = '\uFFFD'.repeat(run.length);
    }
    run = [];
    return text;
  };
  // What td holds between calls, mirrored: while it holds nothing, a whole token's text is its own.
  const held = new Utf8State();
  return {
    push: (id: number): string => {
      let b = t.bytes[id];
      if (b === undefined || (skip && t.special.has(id))) return '';
      const byte = t.fallback.get(id);
      const firstOwn = first && t.firstBytes.has(id);
      if (firstOwn) b = t.firstBytes.get(id)!;
      first = false;
      if (byte !== undefined) {
        run.push(byte);
        return '';
      }
      const whole = held.empty && !firstOwn ? wholeText(t, id, b) : undefined;
      if (whole !== undefined) return strip(endRun() + whole);
      held.feed(b);
      return strip(endRun() + td.decode(b, { stream: true }));
    },
    flush: (): string => {
      const rest = strip(endRun() + td.decode());
      held.reset();
      first = true;
      strip = stripper(t.strip);
      return rest;
    },
  };
}
