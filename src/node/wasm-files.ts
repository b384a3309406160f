// Node, Deno and Bun find the wasm builds in the package's build/ folder.
import { readFileSync } from 'node:fs';
import { setWasmLoader, type WasmName } from '../core/wasm.js';

const BUILD = new URL('../../../build/', import.meta.url);
const FILES: Record<WasmName, string> = { simd: 'flashneuron.simd.wasm', plain: 'flashneuron.wasm', threads: 'flashneuron.threads.wasm', train: 'train.wasm' };

setWasmLoader((name) => new Uint8Array(readFileSync(new URL(FILES[name], BUILD))));
