// Runs under Deno (WebGPU): the same token sequence through the wasm and the WebGPU backend,
// printing one JSON line per case with the largest logit difference. test/webgpu.test.js runs
// it and holds the figures to the tolerance. Usage: deno run -A compare.js CASES_JSON
import { loadModel } from '../../dist/src/index.js';
import { openGpu } from '../../dist/src/gpu/webgpu.js';

const cases = JSON.parse(Deno.args[0]);
const gpu = await openGpu({ allowFallback: true });
console.log(JSON.stringify({ adapter: gpu ? gpu.name : null, shaderF16: gpu ? gpu.f16 : false }));
gpu?.device.destroy();
if (!gpu) Deno.exit(0);

async function logits(c, device) {
  const m = await loadModel(c.model, { ...c.options, device, shaderF16: c.shaderF16 });
  try {
    const out = [];
    m.engine.reset();
    for (let p = 0; p < c.ids.length; p++) {
      await m.engine.forwardAsync(c.ids[p], p);
      out.push(m.engine.logits().slice());
    }
    return { out, device: m.engine.backend.name, stats: m.engine.stats() };
  } finally {
    m.engine.close();
  }
}

// Greedy generation: on a dense GPU model the loop is chained on the GPU (src/gpu/greedy.wgsl);
// twice in a row, the first stopping early at EOS, the second after a sampled (host) run.
async function complete(c, device) {
  const m = await loadModel(c.model, { ...c.options, device });
  try {
    const a = await m.complete(c.prompt, { temperature: 0, maxTokens: c.maxTokens });
    const s = await m.complete(c.prompt, { temperature: 0.8, seed: 3, maxTokens: 4 });
    const b = await m.complete(c.prompt, { temperature: 0, maxTokens: 12, stopAtEos: false });
    return { first: a.ids, sampled: s.ids, second: b.ids, chained: m.engine.backend.canChain === true };
  } finally {
    m.close();
  }
}

for (const c of cases) {
  if (c.prompt !== undefined) {
    const cpu = await complete(c, 'cpu'), gpuRun = await complete(c, 'gpu');
    console.log(JSON.stringify({ name: c.name, kind: 'generate', cpu, gpu: gpuRun }));
    continue;
  }
  const cpu = await logits(c, 'cpu');
  const gpuRun = await logits(c, 'gpu');
  let worst = 0, argmaxSame = 0;
  const argmax = (a) => a.reduce((b, v, i) => (v > a[b] ? i : b), 0);
  cpu.out.forEach((a, p) => {
    const b = gpuRun.out[p];
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) || (Number.isNaN(b[i]) ? Infinity : 0));
    if (argmax(a) === argmax(b)) argmaxSame++;
  });
  console.log(JSON.stringify({ name: c.name, device: gpuRun.device, positions: cpu.out.length, worst, argmax_same: argmaxSame,
    bytes_read_cpu: cpu.stats.bytes_read, bytes_read_gpu: gpuRun.stats.bytes_read }));
}
