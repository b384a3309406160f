// Whether this runtime runs relaxed SIMD as standardised: a module of one
// i32x4.relaxed_dot_i8x16_i7x16_add_s on known lanes must validate and give the standard's sum.
// Node 20's V8 accepts the opcodes behind --experimental-wasm-relaxed-simd but reads the signed
// operand as unsigned, so validation alone would pick a build that computes wrong dots there.

// lanes 0-3: a = (-1, -128, 127, -5) signed, b = (127, 1, 2, 3) in [0, 127]: a . b = -16
const A = [255, 128, 127, 251, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const B = [127, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const BODY = [0, 0xfd, 12, ...A, 0xfd, 12, ...B, 0xfd, 12, ...new Array<number>(16).fill(0), 0xfd, 0x93, 0x02, 0xfd, 0x1b, 0, 0x0b];
// (func (export "f") (result i32) (i32x4.extract_lane 0 (i32x4.relaxed_dot_i8x16_i7x16_add_s a b 0)))
const PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 0x60, 0, 1, 0x7f, 3, 2, 1, 0, 7, 5, 1, 1, 102, 0, 0, 10, BODY.length + 2, 1, BODY.length, ...BODY]);

let works: boolean | undefined;
export function relaxedSimd(): boolean {
  if (works === undefined) {
    try {
      works = WebAssembly.validate(PROBE) && (new WebAssembly.Instance(new WebAssembly.Module(PROBE)).exports as { f(): number }).f() === -16;
    } catch {
      works = false;
    }
  }
  return works;
}
