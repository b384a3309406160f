// `flashneuron chat`: a conversation with a model on the terminal (a ChatSession behind a
// node:readline loop). Only the answers go to stdout; the prompt, echo and notices go to stderr.
//   terminal: prompt "> ", answers stream token by token; a line ending in "\" goes on with the
//             next ("... "); lines that arrive in one chunk (a paste) make one turn. Ctrl-C stops
//             a streaming answer (the turn is dropped, the conversation kept), clears a typed
//             line, and at an empty prompt exits with 130. Ctrl-D at an empty prompt exits with 0.
//   not a terminal (piped): no prompt; each line (or "\"-joined lines) is a turn, its answer
//             written to stdout followed by a newline. SIGINT stops a streaming answer, else
//             exits with 130. End of input exits with 0.
// Commands: /reset /save FILE /load FILE /stats /help /exit.
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import { ChatSession } from '../core/session.js';
import type { ChatMessage } from '../core/chat-template.js';
import type { GenerateOptions, GenerationStats } from '../core/model.js';

export { ChatSession };

export interface ChatReplOptions {
  /** Sampling and length options of every turn (its signal is set per turn). */
  generate: Omit<GenerateOptions, 'signal'>;
  /** Print each turn's stats line on stderr (toggled by /stats). */
  stats?: boolean;
  input?: NodeJS.ReadableStream & { isTTY?: boolean };
  output?: NodeJS.WritableStream;
  notices?: NodeJS.WritableStream;
}

export const CHAT_REPL_HELP = `/reset        start a new conversation (the system prompt stays)
/save FILE    write the conversation as JSON ({"messages":[...]})
/load FILE    continue a conversation saved with /save
/stats        print (or stop printing) each answer's stats on stderr
/help         this list
/exit         leave (also Ctrl-D at an empty prompt)
A line ending in \\ goes on with the next line. Ctrl-C stops an answer; at an empty prompt, leaves.`;

/** One line of a turn's stats, as generate prints them. */
export function chatStatsLine(s: GenerationStats): string {
  const io = s.mode === 'dense' ? '' : `, ${s.mode}: ${(s.bytes_read_per_token / 1024).toFixed(1)} KiB read/token (${(100 * s.ffn_read_fraction).toFixed(1)}% of FFN), io ${s.io_ms_per_token} / mem ${s.mem_ms_per_token} / compute ${s.compute_ms_per_token} ms, ${(s.resident_bytes_peak / 2 ** 20).toFixed(1)} MiB held`;
  return `[${s.tokens} tokens, ${s.tokens_per_s} tokens/s, prefill ${s.prefill_tokens}/${s.prompt_tokens} prompt tokens in ${s.prompt_ms} ms${io}]`;
}

function readMessages(file: string): ChatMessage[] {
  const j = JSON.parse(readFileSync(file, 'utf8')) as { messages?: unknown };
  const ok = Array.isArray(j?.messages) && j.messages.every((m) => m && typeof m === 'object' && typeof (m as ChatMessage).role === 'string');
  if (!ok) throw new Error(`${file} holds no conversation ({"messages":[{"role":..,"content":..},..]})`);
  return j.messages as ChatMessage[];
}

/** Runs the conversation until /exit or end of input (0) or Ctrl-C at an empty prompt (130); returns the exit code. */
export async function chatRepl(start: ChatSession, opts: ChatReplOptions): Promise<number> {
  const input = opts.input ?? process.stdin, out = opts.output ?? process.stdout, err = opts.notices ?? process.stderr;
  const tty = !!input.isTTY;
  let session = start, showStats = !!opts.stats;
  const rl: Interface = createInterface({ input, output: tty ? err : undefined, terminal: tty, prompt: '> ', historySize: tty ? 100 : 0 });
  const queue: string[] = [];
  let pending: string[] = [], flushing = false, closed = false, exitCode = 0;
  let wake: (() => void) | undefined, streaming: AbortController | undefined, continued: string[] = [];

  const notify = () => { const w = wake; wake = undefined; w?.(); };
  // A paste is one turn. Terminals that know bracketed paste (asked for below) mark it, and its
  // lines gather until the end mark however they arrive; others deliver it as one chunk, whose
  // lines (those of one tick) make the turn.
  let pasting = false;
  const flush = () => { flushing = false; if (pending.length) queue.push(pending.join('\n')); pending = []; notify(); };
  rl.on('line', (line) => {
    if (!tty) { queue.push(line); notify(); return; }
    pending.push(line);
    if (!flushing && !pasting) { flushing = true; setImmediate(flush); }
  });
  if (tty) {
    input.on('keypress', (_s: string | undefined, key: { name?: string } | undefined) => {
      if (key?.name === 'paste-start') pasting = true;
      else if (key?.name === 'paste-end') {
        pasting = false;
        // The paste's last line may lack its newline: it is still being edited, as typed.
        if (!flushing) { flushing = true; setImmediate(flush); }
      }
    });
    err.write('\x1b[?2004h');
    rl.on('close', () => err.write('\x1b[?2004l'));
  }
  rl.on('close', () => { closed = true; notify(); });
  const interrupt = () => {
    if (streaming) { streaming.abort(); return; }
    if (tty && (rl.line || continued.length)) {
      rl.write(null, { ctrl: true, name: 'e' });
      rl.write(null, { ctrl: true, name: 'u' });
      continued = [];
      err.write('^C\n');
      rl.setPrompt('> ');
      rl.prompt();
      return;
    }
    if (tty) err.write('^C\n');
    exitCode = 130;
    queue.length = 0;
    rl.close();
  };
  rl.on('SIGINT', interrupt);
  process.on('SIGINT', interrupt);

  const next = async (): Promise<string | undefined> => {
    for (;;) {
      if (exitCode) return undefined;
      if (queue.length) return queue.shift();
      if (closed && !flushing) return undefined;
      await new Promise<void>((resolve) => { wake = resolve; });
    }
  };
  const prompt = () => { if (tty && !closed) { rl.setPrompt(continued.length ? '... ' : '> '); rl.prompt(); } };

  async function turn(text: string): Promise<void> {
    const ac = new AbortController();
    streaming = ac;
    let any = false;
    try {
      const it = session.send(text, { ...opts.generate, signal: ac.signal });
      for (;;) {
        const r = await it.next();
        if (r.done) {
          out.write('\n');
          if (ac.signal.aborted) err.write('[stopped]\n');
          else if (showStats) err.write(chatStatsLine(r.value.stats) + '\n');
          return;
        }
        if (r.value.text) { any = true; out.write(r.value.text); }
      }
    } catch (e) {
      if (!ac.signal.aborted) throw e;
      if (any) out.write('\n');
      err.write('[stopped]\n');
    } finally { streaming = undefined; }
  }

  function command(line: string): boolean {
    const [name, ...rest] = line.trim().split(/\s+/);
    const arg = rest.join(' ');
    switch (name) {
      case '/exit': case '/quit': return false;
      case '/reset': session.reset(); err.write('(new conversation)\n'); break;
      case '/stats': showStats = !showStats; err.write(`(stats ${showStats ? 'on' : 'off'})\n`); break;
      case '/help': err.write(CHAT_REPL_HELP + '\n'); break;
      case '/save':
        if (!arg) { err.write('/save needs a FILE\n'); break; }
        try { writeFileSync(arg, JSON.stringify(session.toJSON(), null, 2) + '\n'); err.write(`(saved ${session.messages.length} messages to ${arg})\n`); } catch (e) { err.write(`/save: ${(e as Error).message}\n`); }
        break;
      case '/load':
        if (!arg) { err.write('/load needs a FILE\n'); break; }
        try { session = new ChatSession(session.model, { ...session.options, messages: readMessages(arg) }); err.write(`(loaded ${session.messages.length} messages from ${arg})\n`); } catch (e) { err.write(`/load: ${(e as Error).message}\n`); }
        break;
      default: err.write(`unknown command ${name} (/help lists them)\n`);
    }
    return true;
  }

  try {
    prompt();
    for (;;) {
      const got = await next();
      if (got === undefined) break;
      // A line ending in "\" goes on with the next one; a chunk's lines (a paste) make one turn.
      const lines = got.split('\n'), open = lines[lines.length - 1].endsWith('\\');
      continued.push(...lines.map((l) => (l.endsWith('\\') ? l.slice(0, -1) : l)));
      let text: string | undefined;
      if (!open) { text = continued.join('\n'); continued = []; }
      if (text === undefined) { prompt(); continue; }
      if (text.startsWith('/') && !text.includes('\n')) {
        if (!command(text)) break;
      } else if (text.trim()) await turn(text);
      prompt();
    }
    if (tty && closed && !exitCode) err.write('\n');
    return exitCode;
  } finally {
    process.off('SIGINT', interrupt);
    rl.close();
  }
}
