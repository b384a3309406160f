// One flashneuron decode-rate measurement, printed as one line of JSON: bench/peers.js runs it in
// Deno (whose V8 takes the relaxed-SIMD build) on the images and settings it times in Node.
//   deno run -A bench/fn-rate.js '{"image":…,"threads":N,"tokens":N,"samples":N,"prompt":"…"}'
import { loadModel } from '../dist/src/index.js';

const { image, threads, tokens, samples: n, prompt } = JSON.parse((globalThis.Deno ? Deno.args : process.argv.slice(2))[0]);
const m = await loadModel(image, { threads });
try {
  // Time only once every compute worker has joined (they start in the background): as a peer's thread pool is up before its timing.
  for (const t0 = Date.now(); m.engine.threads < threads && Date.now() - t0 < 5000;) await new Promise((r) => setTimeout(r, 5));
  const opts = { temperature: 0, maxTokens: tokens, stopAtEos: false };
  await m.complete(prompt, { ...opts, maxTokens: 16 }); // warm-up
  const samples = []; let st;
  for (let k = 0; k < n; k++) { st = (await m.complete(prompt, opts)).stats; samples.push(st.tokens_per_s); }
  console.log(JSON.stringify({ samples, threads: st.threads, mode: st.mode, device: st.device }));
} finally { m.close(); }
