// The demo page: drives the engine worker (worker.js) and shows its figures live.
// window.flashneuron.load(opts) / .generate(opts) return promises, for scripts and tests.
const $ = (id) => document.getElementById(id);
const worker = new Worker('./worker.js', { type: 'module' });
let pending = null, info = null, lastBytes = 0;

const ready = (async () => {
  const [simd, plain] = await Promise.all(['flashneuron.simd.wasm', 'flashneuron.wasm'].map((f) => fetch(f).then((r) => r.arrayBuffer())));
  worker.postMessage({ type: 'init', simd, plain }, [simd, plain]);
})();

const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const kib = (b) => (b >= 2 ** 20 ? mib(b) : `${(b / 1024).toFixed(1)} KiB`);

worker.onmessage = ({ data: m }) => {
  if (m.type === 'progress') {
    $('bar').value = m.total ? m.done / m.total : 0;
    $('phase').textContent = `${m.phase}: ${mib(m.done)}${m.total ? ` of ${mib(m.total)}` : ''}`;
  } else if (m.type === 'ready') {
    info = m.info;
    $('bar').value = 1;
    const mem = info.memory;
    $('phase').textContent = `${info.name}: ${info.mode}, ${mib(mem.total)} held (${(100 * mem.total / info.model_bytes).toFixed(0)}% of ${mib(info.model_bytes)}), ${info.device?.startsWith('wasm') === false ? `WebGPU (${info.device})` : info.simd ? 'SIMD wasm' : 'scalar wasm'}`;
    $('mem').textContent = `${(100 * mem.total / info.model_bytes).toFixed(0)}%`;
    const rows = mem.cache_rows.reduce((a, b) => a + b, 0);
    $('cache').textContent = info.mode === 'dense' ? '100%' : `${(100 * rows / (info.config.ffn * info.config.nLayers)).toFixed(0)}%`;
    $('go').disabled = false;
    settle(null, info);
  } else if (m.type === 'token') {
    $('out').append(m.text);
    $('tps').textContent = m.stats.tokens_per_s.toFixed(0);
    if (m.stats.tokens > 1) $('bpt').textContent = kib((m.stats.bytes_read - lastBytes) / (m.stats.tokens - 1 || 1));
    else lastBytes = m.stats.bytes_read;
  } else if (m.type === 'done') {
    const s = m.completion.stats;
    $('tps').textContent = s.tokens_per_s.toFixed(0);
    if (info.mode !== 'dense') $('bpt').textContent = kib(s.bytes_read_per_token);
    $('go').disabled = false; $('stop').disabled = true;
    settle(null, m.completion);
  } else if (m.type === 'error') {
    $('error').textContent = m.message;
    $('go').disabled = !info; $('stop').disabled = true;
    settle(new Error(m.message));
  }
};

function settle(err, value) {
  const p = pending; pending = null;
  if (p) err ? p.reject(err) : p.resolve(value);
}
function request(msg) {
  return new Promise((resolve, reject) => { pending = { resolve, reject }; worker.postMessage(msg); });
}

async function load(opts = {}) {
  await ready;
  $('error').textContent = ''; $('go').disabled = true; info = null;
  const base = { memory: opts.memory ?? ($('memory').value || undefined), window: opts.window ?? Number($('window').value) };
  if (opts.mode) base.mode = opts.mode;
  if (opts.io) base.io = opts.io;
  if (opts.device) base.device = opts.device;
  if (opts.file) return request({ type: 'load', name: opts.file.name, file: opts.file, predictorUrl: opts.predictorUrl, ...base });
  if (opts.files) {
    const folder = (opts.files[0].webkitRelativePath || 'model/').split('/')[0];
    return request({ type: 'load', name: `${folder}.fnimg`, files: opts.files, ...base });
  }
  const name = opts.model ?? ($('model').value === 'llama' ? 'llama-relu-mini' : 'opt-relu-mini');
  $('model').value = name === 'llama-relu-mini' ? 'llama' : 'default';
  if (opts.memory !== undefined) $('memory').value = opts.memory;
  return request({ type: 'load', name: `${name}.fnimg`, url: `model/${name}.fnimg`, predictorUrl: `model/${name}.fnpred`, ...base });
}

async function generate(opts = {}) {
  $('out').innerHTML = '';
  const p = document.createElement('span'); p.className = 'prompt'; p.textContent = opts.prompt ?? $('prompt').value;
  $('out').append(p);
  $('go').disabled = true; $('stop').disabled = false; lastBytes = 0;
  return request({ type: 'generate', prompt: opts.prompt ?? $('prompt').value, maxTokens: opts.maxTokens ?? Number($('max').value),
    temperature: opts.temperature ?? Number($('temp').value), stopAtEos: opts.stopAtEos, seed: opts.seed });
}

$('model').onchange = () => { if ($('model').value === 'file') $('file').click(); if ($('model').value === 'folder') $('folder').click(); };
$('load').onclick = () => {
  const kind = $('model').value;
  if (kind === 'file') { const f = $('file').files[0]; if (!f) $('file').click(); else load({ file: f }).catch(() => {}); return; }
  if (kind === 'folder') { const fs = [...$('folder').files]; if (!fs.length) $('folder').click(); else load({ files: fs }).catch(() => {}); return; }
  load({}).catch(() => {});
};
$('go').onclick = () => generate().catch(() => {});
$('stop').onclick = () => worker.postMessage({ type: 'stop' });

window.flashneuron = { load, generate };
