// `flashneuron chat`: piped stdin (each line a turn, answers on stdout one per line) gives the
// answers a ChatSession gives in-process; /reset, /save and /load act on the conversation; and on
// a real pseudo-terminal (util-linux `script`) the REPL streams, Ctrl-C stops an answer and keeps
// the conversation, and Ctrl-C at an empty prompt exits with 130.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChatSession, loadModel, NO_CHAT_TEMPLATE } from '../dist/src/index.js';
import { ROOT } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';

after(cleanupTmp);
const BIN = join(ROOT, 'bin', 'flashneuron.js');
const CHATML = join(ROOT, 'test', 'fixtures', 'replicas', 'turbosparse-mistral-tiny');
const GREEDY = ['--temperature', '0', '--max-tokens', '8'];
const greedy = { temperature: 0, maxTokens: 8 };

describe('flashneuron chat', function () {
  let model, env, dir;
  before(async () => {
    dir = tmpDir('chatcli');
    env = { ...process.env, FLASHNEURON_CACHE: join(dir, 'cache') };
    model = await loadModel(CHATML, { cacheDir: env.FLASHNEURON_CACHE });
  });
  after(() => model?.close());

  /** Runs `flashneuron chat ARGS` with `input` piped to stdin. */
  function chat(args, input) {
    return new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [BIN, 'chat', ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '', stderr = '';
      p.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
      p.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
      p.on('error', reject);
      p.on('close', (code) => resolve({ code, stdout, stderr }));
      p.stdin.end(input);
    });
  }
  /** The answers of one in-process session to `turns`. */
  async function replies(turns, opts = {}) {
    const s = new ChatSession(model, opts);
    const out = [];
    for (const t of turns) out.push((await s.reply(t, greedy)).text);
    return out;
  }

  describe('piped stdin', function () {
    it('answers each line as a ChatSession does, one answer per line of stdout', async () => {
      const r = await chat([...GREEDY, '--model', CHATML], 'Hello there\nAnd then?\n');
      assert.equal(r.code, 0, r.stderr);
      const want = await replies(['Hello there', 'And then?']);
      assert.ok(want.every((t) => t.length), 'the answers are not empty');
      assert.equal(r.stdout, want.map((t) => t + '\n').join(''));
      assert.doesNotMatch(r.stderr, />/, 'no prompt when stdin is not a terminal');
    });

    it('--system, a line ending in \\ goes on with the next, and --stats prints a stats line per turn', async () => {
      const r = await chat([...GREEDY, '--model', CHATML, '--system', 'Be terse.', '--stats'], 'Two\\\nlines\nOne line\n');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, (await replies(['Two\nlines', 'One line'], { system: 'Be terse.' })).map((t) => t + '\n').join(''));
      const lines = r.stderr.split('\n').filter((l) => /^\[\d+ tokens, [\d.]+ tokens\/s, prefill \d+\/\d+ prompt tokens/.test(l));
      assert.equal(lines.length, 2, r.stderr);
    });

    it('/reset starts a new conversation: the next answer is a fresh session\'s', async () => {
      const r = await chat([...GREEDY, '--model', CHATML], 'Hello there\n/reset\nAnd then?\n');
      assert.equal(r.code, 0, r.stderr);
      const [a] = await replies(['Hello there']), [b] = await replies(['And then?']);
      assert.equal(r.stdout, `${a}\n${b}\n`);
      assert.notEqual(b, (await replies(['Hello there', 'And then?']))[1], 'the two turns differ with the first turn kept');
    });

    it('/save, then /load in a second process, continues the conversation identically; /exit ends', async () => {
      const file = join(dir, 'conversation.json');
      const r1 = await chat([...GREEDY, '--model', CHATML], `Hello there\nAnd then?\n/save ${file}\n/exit\nnever sent\n`);
      assert.equal(r1.code, 0, r1.stderr);
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')).messages.map((m) => m.role), ['user', 'assistant', 'user', 'assistant']);
      const r2 = await chat([...GREEDY, '--model', CHATML], `/load ${file}\nWhy?\n`);
      assert.equal(r2.code, 0, r2.stderr);
      const want = await replies(['Hello there', 'And then?', 'Why?']);
      assert.equal(r1.stdout, `${want[0]}\n${want[1]}\n`);
      assert.equal(r2.stdout, `${want[2]}\n`);
    });

    it('a model with no chat template: the one-line error, exit 1; --chat-template gives one', async () => {
      const r = await chat(GREEDY, 'Hello\n');
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr.trim(), `flashneuron chat: ${NO_CHAT_TEMPLATE}`);
      const tpl = join(dir, 'plain.jinja');
      const { writeFileSync } = await import('node:fs');
      writeFileSync(tpl, "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}");
      const ok = await chat([...GREEDY, '--chat-template', tpl], 'Hello\n');
      assert.equal(ok.code, 0, ok.stderr);
      assert.ok(ok.stdout.length > 1 && ok.stdout.endsWith('\n'), JSON.stringify(ok.stdout));
    });
  });

  describe('on a terminal (util-linux script)', function () {
    before(function () {
      if (spawnSync('script', ['--version'], { encoding: 'utf8' }).status !== 0) {
        console.log('      skipped: util-linux `script` is not installed (no pseudo-terminal to drive the REPL on)');
        this.skip();
      }
    });

    // The prompt readline redraws after a newline (cursor and erase sequences before it).
    const PROMPT = /\n(?:\x1b\[\d*[A-Za-z])*> /;
    const running = new Set();
    afterEach(() => { for (const p of running) { p.stdin.end(); p.kill('SIGTERM'); } running.clear(); });

    /** `flashneuron chat ARGS` on a pseudo-terminal: type(s), waitFor(text | RegExp) from the last mark, exited. */
    function terminal(args) {
      const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;
      const cmd = [process.execPath, BIN, 'chat', ...args].map(q).join(' ');
      const p = spawn('script', ['-qfec', cmd, '/dev/null'], { env: { ...env, TERM: process.env.TERM || 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'] });
      const t = { out: '', mark: 0, p };
      running.add(p);
      const listeners = new Set();
      p.stdout.setEncoding('utf8').on('data', (d) => { t.out += d; for (const l of listeners) l(); });
      p.stderr.setEncoding('utf8').on('data', (d) => { t.out += d; for (const l of listeners) l(); });
      t.exited = new Promise((resolve) => p.on('close', (code) => { running.delete(p); resolve(code); }));
      t.type = (s) => { t.mark = t.out.length; p.stdin.write(s); };
      /** Resolves with the output since the mark once it holds `what` (found at or after `from`); rejects after 60 s. */
      t.waitFor = (what, from = t.mark) => new Promise((resolve, reject) => {
        const check = () => {
          const rest = t.out.slice(from).replace(/\r\n/g, '\n');
          const i = typeof what === 'string' ? rest.indexOf(what) : rest.search(what);
          if (i < 0) return false;
          listeners.delete(check);
          clearTimeout(timer);
          resolve(rest);
          return true;
        };
        const timer = setTimeout(() => { listeners.delete(check); reject(new Error(`no ${what} in the terminal output:\n${JSON.stringify(t.out.slice(from))}`)); }, 60000);
        listeners.add(check);
        if (!check()) t.exited.then(() => setImmediate(() => { if (listeners.has(check)) { listeners.delete(check); clearTimeout(timer); reject(new Error(`exited before ${what}:\n${JSON.stringify(t.out)}`)); } }));
      });
      return t;
    }

    it('streams an answer, goes on after a line ending in \\, takes a paste as one turn, /reset, then Ctrl-C at an empty prompt exits with 130', async () => {
      const t = terminal([...GREEDY, '--model', CHATML]);
      await t.waitFor('> ');
      const [a] = await replies(['Hello']);
      t.type('Hello\r');
      await t.waitFor(a);
      await t.waitFor(PROMPT);
      t.type('/reset\r');
      await t.waitFor('(new conversation)');
      await t.waitFor(PROMPT);
      t.type('Two\\\r');
      await t.waitFor('... ');
      const [b] = await replies(['Two\nlines']);
      t.type('lines\r');
      await t.waitFor(b);
      await t.waitFor(PROMPT);
      t.type('/reset\r');
      await t.waitFor(PROMPT);
      const [c] = await replies(['One\nTwo']);
      t.type('\x1b[200~One\rTwo\r\x1b[201~'); // a bracketed paste: two lines, one turn, however the terminal delivers it
      await t.waitFor(c);
      await t.waitFor(PROMPT);
      t.type('\x03');
      assert.equal(await t.exited, 130, t.out);
    });

    it('Ctrl-C stops a long answer and returns to the prompt without adding the turn; Ctrl-D exits with 0', async () => {
      const file = join(dir, 'after-abort.json');
      const t = terminal(['--model', CHATML, '--temperature', '0', '--max-tokens', '20000', '--no-stop']);
      await t.waitFor('> ');
      t.type('Tell me everything\r');
      // Some of the answer has streamed (output past the echoed line) before Ctrl-C.
      await t.waitFor(/Tell me everything[^]*\n[^]{40}/);
      t.type('\x03');
      await t.waitFor('[stopped]');
      await t.waitFor(/\[stopped\]\n(?:[^]*)> /);
      t.type(`/save ${file}\r`);
      await t.waitFor('(saved 0 messages');
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { messages: [] });
      await t.waitFor(PROMPT);
      t.type('\x04');
      assert.equal(await t.exited, 0, t.out);
    });
  });
});
