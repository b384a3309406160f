// One flashneuron decode-rate measurement: bench/peers.js takes it in its own process (Node 20)
// and, through bench/fn-rate.js, in the other runtimes it compares.
import { loadModel } from '../dist/src/index.js';

/** Greedy decode rates (tok/s) of `samples` runs of `tokens` tokens after `prompt`, after a warm-up. */
export async function measureRate({ image, threads, tokens, samples: n, prompt }) {
  const m = await loadModel(image, { threads });
  try {
    // Time only once every compute worker has joined (they start in the background): as a peer's thread pool is up before its timing.
    for (const t0 = Date.now(); m.engine.threads < threads && Date.now() - t0 < 5000;) await new Promise((r) => setTimeout(r, 5));
    const opts = { temperature: 0, maxTokens: tokens, stopAtEos: false };
    await m.complete(prompt, { ...opts, maxTokens: 16 }); // warm-up
    const samples = []; let st;
    for (let k = 0; k < n; k++) { st = (await m.complete(prompt, opts)).stats; samples.push(st.tokens_per_s); }
    return { samples, threads: st.threads, mode: st.mode, device: st.device };
  } finally { m.close(); }
}
