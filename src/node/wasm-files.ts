// Node, Deno and Bun find the wasm builds in the package's build/ folder.
import { readFileSync } from 'node:fs';
import { setWasmBuild, setWasmLoader, type WasmBuild, type WasmName } from '../core/wasm.js';

const BUILD = new URL('../../../build/', import.meta.url);
const FILES: Record<WasmName, string> = {
  simd: 'flashneuron.simd.wasm', plain: 'flashneuron.wasm', threads: 'flashneuron.threads.wasm',
  relaxed: 'flashneuron.relaxed.wasm', 'relaxed-threads': 'flashneuron.relaxed-threads.wasm', train: 'train.wasm',
};

setWasmLoader((name) => new Uint8Array(readFileSync(new URL(FILES[name], BUILD))));

// FLASHNEURON_WASM=relaxed|simd|plain forces a build (benchmarks, tests); unset or auto: the
// fastest the runtime validates. Deno without --allow-env cannot read it: auto.
let forced: string | undefined;
try { forced = process.env.FLASHNEURON_WASM || undefined; } catch { /* no env access */ }
if (forced !== undefined) setWasmBuild(forced as WasmBuild);
