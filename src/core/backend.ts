// Where the forward pass's arithmetic runs. Engine.forwardAsync (engine.ts) is the one
// host-side forward pass; it calls a Backend for every step and keeps the FFN-on-flash logic
// (predictor, window, neuron cache, read planning) in the wasm whichever backend computes.
//
//   begin(token, pos)        residual stream <- embeddings (the wasm looks them up, flash or not)
//   per layer l:
//     attention(l, pos)      norm, q/k/v, RoPE, KV cache, attention, o-proj, residual, FFN norm
//     ffnDense(l)            dense mode: the whole FFN from resident bundles
//     -- or, FFN on flash --
//     ffnInput(l)            the FFN input reaches wasm memory (predictor and planner read it)
//     (wasm: ffn_begin plans the misses)
//     ffnCached(l)           neurons already cached (runs while the first reads are in flight)
//     ffnLanded(l)           each round of reads has landed: its neurons
//     ffnEnd(l)              FFN output + down bias into the residual stream
//   end()                    final norm, lm_head: logits in wasm memory (Engine.logits())
import type { EngineExports } from './abi.js';

export interface Backend {
  readonly device: 'cpu' | 'gpu';
  /** What runs the arithmetic, for reports ("wasm simd", the GPU adapter's name). */
  readonly name: string;
  begin(token: number, pos: number): void;
  attention(l: number, pos: number): void;
  ffnDense(l: number): void;
  ffnInput(l: number): void | Promise<void>;
  ffnCached(l: number): void;
  ffnLanded(l: number): void;
  ffnEnd(l: number): void;
  /** `read` false: the logits may stay where they were computed (nobody samples them on the host). */
  end(read?: boolean): void | Promise<void>;
  close(): void;
  /** Greedy decoding without the host in the loop (the WebGPU backend, dense): ids in batches. */
  greedy?(pos: number, count: number): AsyncGenerator<number[], void>;
  readonly canChain?: boolean;
}

/** The reference backend: every step is the wasm's own (assembly/forward.ts). */
export class WasmBackend implements Backend {
  readonly device = 'cpu';
  constructor(private readonly w: EngineExports, readonly name: string) {}
  begin(token: number, pos: number): void { this.w.forward_begin(token, pos); }
  attention(l: number, pos: number): void { this.w.layer_attention(l, pos); }
  ffnDense(l: number): void { this.w.ffn_dense(l); }
  ffnInput(): void {}
  ffnCached(l: number): void { this.w.ffn_hits(l); }
  ffnLanded(l: number): void { this.w.round_done(l); }
  ffnEnd(l: number): void { this.w.layer_end(l); }
  end(): void { this.w.forward_end(); }
  close(): void {}
}

/**
 * No arithmetic at all: the wasm still decides, plans, reads and caches every neuron (host
 * compute), so forwardAsync replays a token's flash traffic exactly. For measuring I/O at
 * shapes whose resident part does not fit wasm32 (Engine option ioOnly, bench:table2).
 */
export class IoReplayBackend implements Backend {
  readonly device = 'cpu';
  readonly name = 'none (I/O replay)';
  constructor(private readonly w: EngineExports) {}
  begin(): void { this.w.flash_step(); }
  attention(): void {}
  ffnDense(): void { throw new Error('an I/O replay has no dense FFN'); }
  ffnInput(): void {}
  ffnCached(): void {}
  ffnLanded(l: number): void { this.w.round_done(l); }   // cache inserts (host compute: no arithmetic)
  ffnEnd(): void {}
  end(): void {}
  close(): void {}
}
