// One flashneuron decode-rate measurement (bench/fn-measure.js), printed as one line of JSON:
// bench/peers.js runs it in Deno and Node 24 (whose V8s take the relaxed-SIMD build) on the
// images and settings it times in Node 20.
//   deno run -A bench/fn-rate.js '{"image":…,"threads":N,"tokens":N,"samples":N,"prompt":"…"}'
import { measureRate } from './fn-measure.js';

console.log(JSON.stringify(await measureRate(JSON.parse((globalThis.Deno ? Deno.args : process.argv.slice(2))[0]))));
