// The demo page: drives the engine worker (worker.js) and shows its figures live.
// window.flashneuron.load(opts) / .generate(opts) return promises, for scripts and tests.
// The page passes what its controls hold — a budget (60% to begin with: the demo is about the FFN
// on flash) and a window only when one is picked; every other load option is resolveOptions'
// default, the same as the CLI's and the Node API's, and the page shows what it decided.
import { WorkerModel, probeStorage } from './flashneuron.js';

const $ = (id) => document.getElementById(id);
const model = new WorkerModel(new Worker('./worker.js', { type: 'module' }));
let info = null;
const ready = model.init({ simd: 'flashneuron.simd.wasm', plain: 'flashneuron.wasm', threads: 'flashneuron.threads.wasm', relaxed: 'flashneuron.relaxed.wasm', relaxedThreads: 'flashneuron.relaxed-threads.wasm' });

/**
 * A temporary profile (incognito, a throwaway automation profile) keeps OPFS where each small
 * read costs hundreds of µs: the FFN read per token then runs at a few tokens/s. Say so, and
 * start with the budget off (the model held in memory, read from OPFS once) unless one was picked.
 */
const storage = probeStorage().then((r) => {
  if (!r.slow) return r;
  const note = $('storage-note');
  note.hidden = false;
  note.textContent = `This browser keeps its private file system (OPFS) in slow storage — ${r.readUs.toFixed(0)} µs per small read ` +
    'against about 2 in a normal profile; a private/incognito window or a temporary profile does this. With a memory budget the ' +
    'model is read from there every token (a few tokens/s), so the budget starts off here: the model is held in memory. ' +
    'Open the page in a normal browser profile to run it from flash at full speed.';
  if (!$('memory').dataset.picked) $('memory').value = '';
  return r;
}, () => undefined);
$('memory').addEventListener('change', () => { $('memory').dataset.picked = '1'; });

const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const kib = (b) => (b >= 2 ** 20 ? mib(b) : `${(b / 1024).toFixed(1)} KiB`);

function progress(phase, done, total) {
  $('bar').value = total ? done / total : 0;
  $('phase').textContent = `${phase}: ${mib(done)}${total ? ` of ${mib(total)}` : ''}`;
}

function shown(i) {
  info = i;
  $('bar').value = 1;
  const mem = i.memory;
  const o = i.options, flash = i.mode !== 'dense';
  const decided = [i.mode, flash && i.mode === 'sparse' && `window ${o.window}`, `KV ${o.kvDtype}`, flash && mem.resident_dtype === 'q8_0' && 'resident Q8_0'].filter(Boolean).join(', ');
  $('phase').textContent = `${i.name}: ${decided}; ${mib(mem.total)} held (${(100 * mem.total / i.model_bytes).toFixed(0)}% of ${mib(i.model_bytes)}), ${i.device?.startsWith('wasm') === false ? `WebGPU (${i.device})` : i.simd ? `${i.device?.includes('relaxed') ? 'relaxed ' : ''}SIMD wasm` : 'scalar wasm'}`;
  $('mem').textContent = `${(100 * mem.total / i.model_bytes).toFixed(0)}%`;
  const rows = mem.cache_rows.reduce((a, b) => a + b, 0);
  $('cache').textContent = i.mode === 'dense' ? '100%' : `${(100 * rows / (i.config.ffn * i.config.nLayers)).toFixed(0)}%`;
  $('go').disabled = false;
  return i;
}

/** Shows the error on the page and rethrows it for the caller. */
function failed(e) {
  $('error').textContent = e.message;
  $('go').disabled = !info; $('stop').disabled = true;
  throw e;
}

async function load(opts = {}) {
  await ready;
  await storage;
  $('error').textContent = ''; $('go').disabled = true; info = null; chat = null;
  if ($('log')) $('log').innerHTML = '';
  // The page passes what the user chose; the engine decides the rest (resolveOptions), as the CLI does.
  const options = { memory: (opts.memory ?? $('memory').value) || undefined };
  const w = opts.window ?? $('window').value;
  if (w !== undefined && w !== '') options.window = w === 'lru' ? 'lru' : Number(w);
  for (const k of ['mode', 'io', 'device', 'contextLength', 'sparsity', 'ffnThresholds']) if (opts[k] !== undefined) options[k] = opts[k];
  let spec;
  if (opts.file) spec = { name: opts.file.name, file: opts.file, predictorUrl: opts.predictorUrl, thresholdsUrl: opts.thresholdsUrl };
  else if (opts.files) {
    const folder = (opts.files[0].webkitRelativePath || 'model/').split('/')[0];
    spec = { name: `${folder}.fnimg`, files: opts.files };
  } else {
    const name = opts.model ?? ($('model').value === 'llama' ? 'llama-relu-mini' : 'opt-relu-mini');
    $('model').value = name === 'llama-relu-mini' ? 'llama' : 'default';
    if (opts.memory !== undefined) $('memory').value = opts.memory;
    spec = { name: `${name}.fnimg`, url: `model/${name}.fnimg`, predictorUrl: `model/${name}.fnpred` };
  }
  return model.load(spec, options, progress).then(shown, failed);
}

async function generate(opts = {}) {
  $('out').innerHTML = '';
  const prompt = opts.prompt ?? $('prompt').value;
  const p = document.createElement('span'); p.className = 'prompt'; p.textContent = prompt;
  $('out').append(p);
  $('go').disabled = true; $('stop').disabled = false;
  const t0 = performance.now();
  let n = 0;
  try {
    const it = model.generate(prompt, { maxTokens: opts.maxTokens ?? Number($('max').value),
      temperature: opts.temperature ?? Number($('temp').value), stopAtEos: opts.stopAtEos, seed: opts.seed });
    for (;;) {
      const r = await it.next();
      if (r.done) {
        const s = r.value.stats;
        $('tps').textContent = s.tokens_per_s.toFixed(0);
        if (info.mode !== 'dense') $('bpt').textContent = kib(s.bytes_read_per_token);
        $('go').disabled = false; $('stop').disabled = true;
        return r.value;
      }
      $('out').append(r.value.text);
      $('tps').textContent = ((1000 * ++n) / (performance.now() - t0)).toFixed(0);
    }
  } catch (e) {
    return failed(e);
  }
}

$('model').onchange = () => { if ($('model').value === 'file') $('file').click(); if ($('model').value === 'folder') $('folder').click(); };
$('load').onclick = () => {
  const kind = $('model').value;
  if (kind === 'file') { const f = $('file').files[0]; if (!f) $('file').click(); else load({ file: f }).catch(() => {}); return; }
  if (kind === 'folder') { const fs = [...$('folder').files]; if (!fs.length) $('folder').click(); else load({ files: fs }).catch(() => {}); return; }
  load({}).catch(() => {});
};
// ---- Chat: a conversation held in the worker (ChatSession over the model's chat template) ----

// For models that ship no chat template (the embedded ones are plain language models): ChatML,
// said so on the page.
const CHATML = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
let chat = null;

function chatMode() { return $('task-chat').checked; }

function showTask() {
  const c = chatMode();
  $('complete-ui').hidden = c; $('out-card').hidden = c;
  $('chat-ui').hidden = !c; $('new-chat').hidden = !c;
  $('go').textContent = c ? 'Send' : 'Generate';
}

/** Starts a conversation (the system prompt from the page unless given); the log is cleared. */
async function newChat(opts = {}) {
  await ready;
  if (!info) throw new Error('load a model first');
  const system = (opts.system ?? $('system').value) || undefined;
  $('log').innerHTML = ''; $('chat-note').textContent = '';
  try {
    chat = await model.session({ system });
  } catch (e) {
    if (!/chat template/.test(e.message)) throw e;
    chat = await model.session({ system, template: CHATML });
    $('chat-note').textContent = 'This model ships no chat template: its turns are written in ChatML.';
  }
  return chat;
}

function turn(role, text) {
  const d = document.createElement('div');
  d.className = `turn ${role}`; d.textContent = text;
  $('log').append(d);
  $('log').scrollTop = $('log').scrollHeight;
  return d;
}

/** Sends a message (the page's box unless given) and streams the answer into the log. */
async function say(opts = {}) {
  const text = opts.text ?? $('msg').value;
  if (!text.trim()) return undefined;
  if (!chat) await newChat();
  $('msg').value = '';
  turn('user', text);
  const a = turn('assistant', ''); a.classList.add('live');
  $('go').disabled = true; $('stop').disabled = false;
  const t0 = performance.now();
  let n = 0;
  try {
    const it = chat.send(text, { maxTokens: opts.maxTokens ?? Number($('max').value),
      temperature: opts.temperature ?? Number($('temp').value), stopAtEos: opts.stopAtEos, seed: opts.seed });
    for (;;) {
      const r = await it.next();
      if (r.done) {
        const s = r.value.stats;
        a.classList.remove('live');
        const note = document.createElement('div');
        note.className = 'turn-stats';
        note.textContent = `${s.tokens} tokens, ${s.tokens_per_s.toFixed(0)} tokens/s; prompt ${s.prompt_tokens} tokens, ${s.prefill_tokens} run (the rest kept from the last turn)`;
        a.after(note);
        $('tps').textContent = s.tokens_per_s.toFixed(0);
        if (info.mode !== 'dense') $('bpt').textContent = kib(s.bytes_read_per_token);
        $('go').disabled = false; $('stop').disabled = true;
        return r.value;
      }
      a.textContent += r.value.text;
      $('log').scrollTop = $('log').scrollHeight;
      $('tps').textContent = ((1000 * ++n) / (performance.now() - t0)).toFixed(0);
    }
  } catch (e) {
    a.classList.remove('live');
    return failed(e);
  }
}

for (const r of ['task-complete', 'task-chat']) $(r).onchange = showTask;
$('go').onclick = () => (chatMode() ? say() : generate()).catch(() => {});
$('stop').onclick = () => model.stop();
$('new-chat').onclick = () => newChat().catch((e) => { $('error').textContent = e.message; });
$('msg').onkeydown = (e) => {
  if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); if (!$('go').disabled) say().catch(() => {}); }
};

/** A conversation in the worker (ChatSession): for scripts and tests. */
async function session(options = {}) {
  await ready;
  return model.session(options);
}

window.flashneuron = { load, generate, session, newChat, say, CHATML };
