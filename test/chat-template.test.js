// Chat templates: every case of test/fixtures/chat-templates/ (seven real templates, rendered by
// transformers 5.17's apply_chat_template) rendered exactly, or the template's own error thrown;
// named-template selection; the no-template error; ChatML rendered then tokenized gives the ids.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyChatTemplate, chatTemplateOf, ChatTemplateError, NO_CHAT_TEMPLATE, strftimeNow } from '../dist/src/core/chat-template.js';
import { pyStrip } from '../dist/src/core/jinja-python.js';
import { Tokenizer } from '../dist/src/core/tokenizer.js';
import * as nodeEntry from '../dist/src/index.js';
import { writeGGUF } from '../dist/src/format/gguf.js';
import { openGGUFCheckpoint } from '../dist/src/node/gguf-file.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixtures = root + 'test/fixtures/chat-templates/';
const files = readdirSync(fixtures).filter((f) => f.endsWith('.json')).sort();

/** A case as transformers called it: tools only when the case passes them; kwargs as template variables. */
const optionsOf = (fx, c) => ({
  addGenerationPrompt: c.add_generation_prompt,
  ...(c.tools !== undefined ? { tools: c.tools } : {}),
  specialTokens: fx.template_context,
  variables: c.kwargs,
});

let total = 0;
let passed = 0;

describe('chat templates: transformers apply_chat_template cases', () => {
  after(() => console.log(`      ${passed} of ${total} cases exact`));
  it('has the seven fixture files', () => assert.equal(files.length, 7));
  for (const file of files) {
    const fx = JSON.parse(readFileSync(fixtures + file, 'utf8'));
    describe(file, () => {
      for (const c of fx.cases) {
        total++;
        it(`${c.id}${c.error ? ' (error)' : ''}`, () => {
          const render = () => applyChatTemplate(fx.chat_template, c.messages, optionsOf(fx, c));
          if (c.error !== undefined) {
            assert.throws(render, (e) => e instanceof ChatTemplateError && e.message === c.error);
          } else {
            assert.equal(render(), c.rendered);
          }
          passed++;
        });
      }
    });
  }
});

describe('chat templates: the gaps closed over @huggingface/jinja', () => {
  const render = (t, vars = {}) => applyChatTemplate(t, [], { variables: vars });
  it('| trim and .strip() are Python\'s: U+FEFF kept, U+0085 / U+001F stripped', () => {
    assert.equal(render('[{{ s | trim }}]', { s: '\ufeff a \n' }), '[\ufeff a]');
    assert.equal(render('[{{ s.strip() }}]', { s: '\x85\x1f a \u3000' }), '[a]');
    assert.equal(pyStrip('\ufeff\ufeff', null), '\ufeff\ufeff');
  });
  it('.strip(chars) / .lstrip(chars) / .rstrip(chars) strip only chars; | trim(chars)', () => {
    assert.equal(render("[{{ s.strip('\\n') }}]", { s: '\n\n a \n' }), '[ a ]');
    assert.equal(render("[{{ s.lstrip('\\n') }}]", { s: '\n a \n' }), '[ a \n]');
    assert.equal(render("[{{ s.rstrip('xy') }}]", { s: 'axyyx' }), '[a]');
    assert.equal(render("[{{ s | trim('-') }}]", { s: '--a-' }), '[a]');
    assert.equal(render("[{{ s.strip(none) }}]", { s: ' a ' }), '[a]');
  });
  it('.strip on a mapping still reads its key', () => {
    assert.equal(render('{{ m.strip }}', { m: { strip: 'k' } }), 'k');
  });
  it('select / reject filters', () => {
    assert.equal(render("{{ xs | reject('equalto', 'b') | join(',') }}", { xs: ['a', 'b', 'c'] }), 'a,c');
    assert.equal(render("{{ xs | select('equalto', 'b') | join(',') }}", { xs: ['a', 'b', 'c'] }), 'b');
    assert.equal(render("{{ xs | select | join(',') }}", { xs: ['a', '', 'c'] }), 'a,c');
    assert.equal(render("{{ xs | reject('none') | list | length }}", { xs: [1, null, 2] }), '2');
  });
  it('raise_exception throws the template\'s message; strftime_now', () => {
    assert.throws(() => render("{{ raise_exception('bad, very: bad') }}"), { name: 'ChatTemplateError', message: 'bad, very: bad' });
    const d = new Date(2024, 6, 6, 9, 5, 3);
    assert.equal(strftimeNow('%d %b %Y|%B %-d|%m/%y %H:%M:%S %I%p %a %A %j %%', d), '06 Jul 2024|July 6|07/24 09:05:03 09AM Sat Saturday 188 %');
    assert.match(render('{{ strftime_now("%d %b %Y") }}'), /^\d\d [A-Z][a-z]{2} \d{4}$/);
  });
  it('range, none/None, special tokens by name and option, kwargs override', () => {
    assert.equal(render('{{ range(3) | join(",") }}{{ None is none }}'), '0,1,2true');
    const t = '{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools is none }}|{{ x }}';
    assert.equal(applyChatTemplate(t, [], { bosToken: '<s>', specialTokens: { eos_token: '</s>', bos_token: 'B' }, x: 1 }), '<s>|</s>|false|true|1');
    assert.equal(applyChatTemplate(t, [], { bosToken: '<s>', eosToken: 'E', x: 1, variables: { x: 2, eos_token: 'K' } }), '<s>|K|false|true|2');
  });
});

describe('chat templates: chatTemplateOf', () => {
  const list = [{ name: 'default', template: 'D' }, { name: 'tool_use', template: 'T' }];
  it('a string as is', () => assert.equal(chatTemplateOf({ chat_template: 'X' }), 'X'));
  it('a list of named templates: tool_use with tools, else default', () => {
    assert.equal(chatTemplateOf({ chat_template: list }), 'D');
    assert.equal(chatTemplateOf({ chat_template: list }, { tools: [] }), 'T');
    assert.equal(chatTemplateOf({ chat_template: list }, { tools: [{ type: 'function' }] }), 'T');
    assert.equal(chatTemplateOf({ chat_template: list }, { tools: null }), 'D');
    assert.equal(chatTemplateOf({ chat_template: [list[0]] }, { tools: [{}] }), 'D');
    assert.equal(chatTemplateOf({ chat_template: list }, { name: 'tool_use' }), 'T');
    assert.equal(chatTemplateOf({ chat_template: { default: 'D', rag: 'R' } }, { name: 'rag' }), 'R');
    assert.throws(() => chatTemplateOf({ chat_template: [list[1]] }), /none named "default" \(it has: tool_use\)/);
    assert.throws(() => chatTemplateOf({ chat_template: list }, { name: 'rag' }), /no chat template named "rag"/);
  });
  it('no template: one clear line', () => {
    for (const cfg of [{}, { chat_template: null }, { chat_template: '' }, undefined, null]) {
      assert.throws(() => chatTemplateOf(cfg), (e) => e.message === NO_CHAT_TEMPLATE && !e.message.includes('\n'));
    }
    assert.equal(NO_CHAT_TEMPLATE, 'this model has no chat template (tokenizer_config.json chat_template); give one with --chat-template FILE');
  });
  it('is exported from the package entry', () => {
    assert.equal(nodeEntry.applyChatTemplate, applyChatTemplate);
    assert.equal(nodeEntry.chatTemplateOf, chatTemplateOf);
  });
});

describe('chat templates: ChatML of turbosparse-mistral-tiny, rendered then tokenized', () => {
  const dir = root + 'test/fixtures/replicas/turbosparse-mistral-tiny/';
  const config = JSON.parse(readFileSync(dir + 'tokenizer_config.json', 'utf8'));
  const fx = JSON.parse(readFileSync(fixtures + 'chatml-turbosparse-mistral.json', 'utf8'));
  const withIds = fx.cases.filter((c) => c.rendered !== undefined && Array.isArray(c.ids));
  it('the replica\'s tokenizer_config.json template is the fixture\'s', () => {
    assert.equal(chatTemplateOf(config), fx.chat_template);
  });
  it(`every case with ids (${withIds.length}) tokenizes to transformers' ids`, function () {
    if (withIds.length === 0) this.skip();
    const tok = Tokenizer.fromJSON(readFileSync(dir + 'tokenizer.json', 'utf8'), config);
    for (const c of withIds) {
      const text = applyChatTemplate(chatTemplateOf(config), c.messages, optionsOf(fx, c));
      assert.equal(text, c.rendered, c.id);
      assert.deepEqual(tok.encode(text, { addSpecialTokens: false }), c.ids, c.id);
    }
  });
});

describe('chat templates: a GGUF\'s tokenizer.chat_template reaches the tokenizer config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fn-chat-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const gguf = (name, extra) => {
    const s = (value) => ({ type: 'string', value }), u = (value) => ({ type: 'u32', value });
    const meta = [['general.architecture', s('llama')], ['tokenizer.ggml.model', s('gpt2')],
      ['tokenizer.ggml.tokens', { type: 'array', of: 'string', value: ['a', 'b'] }], ['tokenizer.ggml.merges', { type: 'array', of: 'string', value: [] }],
      ['llama.embedding_length', u(4)], ['llama.block_count', u(1)], ['llama.attention.head_count', u(1)], ['llama.feed_forward_length', u(8)],
      ['llama.context_length', u(16)], ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: 1e-5 }], ...extra];
    const chunks = [];
    writeGGUF((b, pos) => chunks.push([pos, Buffer.from(b)]), meta, [{ name: 'token_embd.weight', dims: [4, 2], dtype: 'f32', data: () => new Uint8Array(32) }]);
    const out = Buffer.alloc(Math.max(...chunks.map(([p, b]) => p + b.length)));
    for (const [p, b] of chunks) b.copy(out, p);
    const path = join(dir, name);
    writeFileSync(path, out);
    return openGGUFCheckpoint(path);
  };
  it('one template: chat_template; named ones: the list; none: none', () => {
    const chatml = JSON.parse(readFileSync(fixtures + 'chatml-turbosparse-mistral.json', 'utf8')).chat_template;
    assert.equal(chatTemplateOf(gguf('one.gguf', [['tokenizer.chat_template', { type: 'string', value: chatml }]]).tokenizerConfig), chatml);
    const cfg = gguf('named.gguf', [['tokenizer.chat_template', { type: 'string', value: 'D' }],
      ['tokenizer.chat_templates', { type: 'array', of: 'string', value: ['tool_use'] }], ['tokenizer.chat_template.tool_use', { type: 'string', value: 'T' }]]).tokenizerConfig;
    assert.deepEqual(cfg.chat_template, [{ name: 'default', template: 'D' }, { name: 'tool_use', template: 'T' }]);
    assert.equal(chatTemplateOf(cfg, { tools: [{}] }), 'T');
    assert.throws(() => chatTemplateOf(gguf('none.gguf', []).tokenizerConfig), { message: NO_CHAT_TEMPLATE });
  });
});
