// The demo page: drives the engine worker (worker.js) and shows its figures live.
// window.flashneuron.load(opts) / .generate(opts) return promises, for scripts and tests.
import { WorkerModel } from './flashneuron.js';

const $ = (id) => document.getElementById(id);
const model = new WorkerModel(new Worker('./worker.js', { type: 'module' }));
let info = null;
const ready = model.init({ simd: 'flashneuron.simd.wasm', plain: 'flashneuron.wasm' });

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
  $('phase').textContent = `${i.name}: ${i.mode}, ${mib(mem.total)} held (${(100 * mem.total / i.model_bytes).toFixed(0)}% of ${mib(i.model_bytes)}), ${i.device?.startsWith('wasm') === false ? `WebGPU (${i.device})` : i.simd ? 'SIMD wasm' : 'scalar wasm'}`;
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
  $('error').textContent = ''; $('go').disabled = true; info = null;
  // The page passes what the user chose; the engine decides the rest (resolveOptions), as the CLI does.
  const options = { memory: (opts.memory ?? $('memory').value) || undefined };
  const w = opts.window ?? $('window').value;
  if (w !== undefined && w !== '') options.window = w === 'lru' ? 'lru' : Number(w);
  for (const k of ['mode', 'io', 'device', 'contextLength']) if (opts[k] !== undefined) options[k] = opts[k];
  let spec;
  if (opts.file) spec = { name: opts.file.name, file: opts.file, predictorUrl: opts.predictorUrl };
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
$('go').onclick = () => generate().catch(() => {});
$('stop').onclick = () => model.stop();

/** A conversation in the worker (ChatSession): for scripts and tests. */
async function session(options = {}) {
  await ready;
  return model.session(options);
}

window.flashneuron = { load, generate, session };
