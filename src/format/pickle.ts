// A restricted unpickler: reads the pickle streams torch.save writes (protocol 2) and executes
// nothing.
//
// Python's pickle is a little stack machine whose GLOBAL + REDUCE opcodes import and call any
// function, which is how a malicious .bin runs code on load. Here a GLOBAL is resolved through the
// caller's policy (an allow-list) and refused by name otherwise, at the GLOBAL itself, before any
// argument is even built; REDUCE / BUILD / BINPERSID hand plain values to the policy, which
// returns plain descriptions. Opcodes outside the set torch emits (INST, OBJ, NEWOBJ, EXT*,
// text-mode PERSID …) are refused by name. Memory is bounded: every length is checked against
// the bytes left, and the stack, the mark nesting and the memo have caps. The machine is a loop,
// never a recursion, so a deeply nested stream cannot overflow the JS stack either.

import { CheckpointError } from './safetensors.js';

/** A module-level name the policy accepted; only the policy gives it meaning. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/**
 * Values on the stack. Tuples are frozen arrays, lists plain arrays, dicts Maps; anything else
 * is a PyGlobal or an object the policy built (its descriptions).
 */
export type PyValue = null | boolean | number | string | Uint8Array | PyValue[] | Map<PyValue, PyValue> | PyGlobal | object;

export interface PicklePolicy {
  /** The GLOBAL module.name as a value, or a thrown refusal. */
  global(module: string, name: string): PyValue;
  /** What `callable(*args)` describes; never a call of anything the file names. */
  reduce(callable: PyValue, args: readonly PyValue[]): PyValue;
  /** BINPERSID: the object a persistent id stands for. */
  persistentLoad(pid: PyValue): PyValue;
  /** BUILD: `obj.__setstate__(state)`; returns the object to leave on the stack. */
  build(obj: PyValue, state: PyValue): PyValue;
}

/** Caps far above anything a state dict needs (a 70B model's pickle has a few thousand tensors). */
export const PICKLE_LIMITS = { stack: 1 << 22, marks: 1000, memo: 1 << 22, textLine: 4096 };

/** Short type name for messages (never stringifies the value: it may be huge or deeply nested). */
export function pyType(v: PyValue): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'string') return 'str';
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return Object.isFrozen(v) ? 'tuple' : 'list';
  if (v instanceof Map) return 'dict';
  if (v instanceof PyGlobal) return v.qualified;
  return 'object';
}

/** pyType with its article ("an int", "a tuple", "None"), for messages. */
export function aType(v: PyValue): string {
  const t = pyType(v);
  return t === 'None' ? t : /^[aeiou]/i.test(t) ? `an ${t}` : `a ${t}`;
}

export const isTuple = (v: PyValue): v is readonly PyValue[] => Array.isArray(v) && Object.isFrozen(v);

const tuple = (items: PyValue[]): PyValue[] => Object.freeze(items) as PyValue[];

// Opcode names of the whole pickletools table, so that a refusal names what it met.
const OPNAMES: Record<number, string> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT', 0x4a: 'BININT',
  0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x52: 'REDUCE',
  0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND',
  0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT', 0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET',
  0x69: 'INST', 0x6a: 'LONG_BINGET', 0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT',
  0x72: 'LONG_BINPUT', 0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2',
  0x87: 'TUPLE3', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x92: 'NEWOBJ_EX', 0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME',
  0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

/**
 * Runs the pickle `data` (named `label` in errors) under `policy` and returns the object STOP
 * leaves. Throws a CheckpointError on any refusal, malformation or cap.
 */
export function unpickle(data: Uint8Array, label: string, policy: PicklePolicy): PyValue {
  const fail = (msg: string): never => {
    throw new CheckpointError(`${label}: ${msg}`, { file: label });
  };
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const stack: PyValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();
  let pos = 0;
  let op = 0;
  let opAt = 0;

  const need = (n: number, what: string) => {
    if (!(n >= 0) || pos + n > data.length) {
      fail(`${what} of ${n} bytes at offset ${pos} runs past the end of the pickle (${data.length} bytes); truncated or corrupted`);
    }
  };
  const u8 = () => (need(1, 'operand'), data[pos++]);
  const u16 = () => (need(2, 'operand'), (pos += 2), view.getUint16(pos - 2, true));
  const u32 = () => (need(4, 'operand'), (pos += 4), view.getUint32(pos - 4, true));
  const u64 = () => {
    need(8, 'operand');
    const x = view.getBigUint64(pos, true);
    pos += 8;
    if (x > BigInt(data.length)) fail(`length ${x} at offset ${pos - 8} runs past the end of the pickle (${data.length} bytes); corrupted`);
    return Number(x);
  };
  const bytes = (n: number, what: string) => (need(n, what), (pos += n), data.subarray(pos - n, pos));
  const text = (n: number, what: string) => {
    const b = bytes(n, what);
    try {
      return utf8.decode(b);
    } catch {
      return fail(`${what} at offset ${pos - n} is not valid UTF-8`);
    }
  };
  // GLOBAL's operands: two newline-terminated ASCII lines.
  const line = () => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0 || end - pos > PICKLE_LIMITS.textLine) fail(`GLOBAL at offset ${opAt} has no newline-terminated name`);
    let s = '';
    for (let i = pos; i < end; i++) {
      if (data[i] < 0x20 || data[i] > 0x7e) fail(`GLOBAL at offset ${opAt} names a non-ASCII module or attribute`);
      s += String.fromCharCode(data[i]);
    }
    pos = end + 1;
    return s;
  };
  const push = (v: PyValue) => {
    if (stack.length >= PICKLE_LIMITS.stack) fail(`stack grows past ${PICKLE_LIMITS.stack} items; not a state dict`);
    stack.push(v);
  };
  const pop = (): PyValue => {
    const floor = marks.length ? marks[marks.length - 1] : 0;
    if (stack.length <= floor) fail(`${OPNAMES[op]} at offset ${opAt} pops from an empty stack; corrupted pickle`);
    return stack.pop() as PyValue;
  };
  const top = (): PyValue => {
    const floor = marks.length ? marks[marks.length - 1] : 0;
    if (stack.length <= floor) fail(`${OPNAMES[op]} at offset ${opAt} needs an object on the stack; corrupted pickle`);
    return stack[stack.length - 1];
  };
  const popMark = (): PyValue[] => {
    const m = marks.pop();
    if (m === undefined) fail(`${OPNAMES[op]} at offset ${opAt} has no MARK before it; corrupted pickle`);
    return stack.splice(m as number);
  };
  const put = (i: number) => {
    if (!memo.has(i) && memo.size >= PICKLE_LIMITS.memo) fail(`memo grows past ${PICKLE_LIMITS.memo} entries; not a state dict`);
    memo.set(i, top());
  };
  const get = (i: number) => {
    if (!memo.has(i)) fail(`${OPNAMES[op]} at offset ${opAt} reads memo slot ${i}, which was never stored; corrupted pickle`);
    push(memo.get(i) as PyValue);
  };
  const asList = (v: PyValue): PyValue[] => {
    if (!Array.isArray(v) || Object.isFrozen(v)) fail(`${OPNAMES[op]} at offset ${opAt} appends to ${aType(v)}, not a list`);
    return v as PyValue[];
  };
  const asDict = (v: PyValue): Map<PyValue, PyValue> => {
    if (!(v instanceof Map)) fail(`${OPNAMES[op]} at offset ${opAt} sets items on ${aType(v)}, not a dict`);
    return v as Map<PyValue, PyValue>;
  };
  // A key set twice: Python keeps the last silently; a state dict never does it, so one tensor
  // hiding another is refused.
  const setKey = (d: Map<PyValue, PyValue>, k: PyValue, v: PyValue) => {
    if ((typeof k === 'string' || typeof k === 'number') && d.has(k)) fail(`${OPNAMES[op]} at offset ${opAt} sets the dict key ${JSON.stringify(String(k).slice(0, 80))} twice`);
    d.set(k, v);
  };
  const setItems = (d: Map<PyValue, PyValue>, kv: PyValue[]) => {
    if (kv.length % 2) fail(`${OPNAMES[op]} at offset ${opAt} has an odd number of items`);
    for (let i = 0; i < kv.length; i += 2) setKey(d, kv[i], kv[i + 1]);
  };
  const long = (b: Uint8Array): number => {
    // Little-endian two's complement; torch only stores small ints this way (sizes, offsets).
    if (b.length > 8) fail(`integer of ${b.length} bytes at offset ${opAt} is too large for a state dict`);
    let x = 0n;
    for (let i = b.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i]);
    if (b.length && b[b.length - 1] & 0x80) x -= 1n << BigInt(8 * b.length);
    if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < -BigInt(Number.MAX_SAFE_INTEGER)) fail(`integer ${x} at offset ${opAt} is too large for a state dict`);
    return Number(x);
  };

  while (true) {
    opAt = pos;
    if (pos >= data.length) fail('pickle ends without a STOP opcode; truncated or corrupted');
    op = data[pos++];
    switch (op) {
      case 0x80: { // PROTO
        const v = u8();
        if (v < 2 || v > 5) fail(`pickle protocol ${v} is not one torch.save writes (2..5 are read)`);
        break;
      }
      case 0x95: u64(); break; // FRAME: only a read-ahead hint
      case 0x2e: { // STOP
        if (marks.length) fail('STOP inside an open MARK; corrupted pickle');
        return pop();
      }
      case 0x28: // MARK
        if (marks.length >= PICKLE_LIMITS.marks) fail(`MARKs nest deeper than ${PICKLE_LIMITS.marks}; not a state dict`);
        marks.push(stack.length);
        break;
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: push(top()); break; // DUP
      case 0x4e: push(null); break; // NONE
      case 0x88: push(true); break; // NEWTRUE
      case 0x89: push(false); break; // NEWFALSE
      case 0x4a: push(u32() | 0); break; // BININT (signed)
      case 0x4b: push(u8()); break; // BININT1
      case 0x4d: push(u16()); break; // BININT2
      case 0x8a: push(long(bytes(u8(), 'LONG1'))); break;
      case 0x8b: push(long(bytes(u32(), 'LONG4'))); break;
      case 0x47: need(8, 'BINFLOAT'); push(view.getFloat64(pos, false)); pos += 8; break; // big-endian
      case 0x58: push(text(u32(), 'BINUNICODE')); break;
      case 0x8c: push(text(u8(), 'SHORT_BINUNICODE')); break;
      case 0x8d: push(text(u64(), 'BINUNICODE8')); break;
      case 0x54: push(text(u32(), 'BINSTRING')); break; // Python 2 str: ASCII names in practice
      case 0x55: push(text(u8(), 'SHORT_BINSTRING')); break;
      case 0x42: push(bytes(u32(), 'BINBYTES').slice()); break;
      case 0x43: push(bytes(u8(), 'SHORT_BINBYTES').slice()); break;
      case 0x8e: push(bytes(u64(), 'BINBYTES8').slice()); break;
      case 0x29: push(tuple([])); break; // EMPTY_TUPLE
      case 0x74: push(tuple(popMark())); break; // TUPLE
      case 0x85: push(tuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(), a = pop(); push(tuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(), b = pop(), a = pop(); push(tuple([a, b, c])); break; } // TUPLE3
      case 0x5d: push([]); break; // EMPTY_LIST
      case 0x6c: push(popMark()); break; // LIST
      case 0x61: { const v = pop(); asList(top()).push(v); break; } // APPEND
      case 0x65: { const items = popMark(); const l = asList(top()); for (const v of items) l.push(v); break; } // APPENDS
      case 0x7d: push(new Map()); break; // EMPTY_DICT
      case 0x64: { const d = new Map<PyValue, PyValue>(); setItems(d, popMark()); push(d); break; } // DICT
      case 0x73: { const v = pop(), k = pop(); setKey(asDict(top()), k, v); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(asDict(top()), kv); break; } // SETITEMS
      case 0x71: put(u8()); break; // BINPUT
      case 0x72: put(u32()); break; // LONG_BINPUT
      case 0x94: put(memo.size); break; // MEMOIZE
      case 0x68: get(u8()); break; // BINGET
      case 0x6a: get(u32()); break; // LONG_BINGET
      case 0x63: { const m = line(), n = line(); push(policy.global(m, n)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const n = pop(), m = pop();
        if (typeof m !== 'string' || typeof n !== 'string') fail(`STACK_GLOBAL at offset ${opAt} needs two strings, got ${pyType(m)} and ${pyType(n)}`);
        push(policy.global(m as string, n as string));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop(), fn = pop();
        if (!isTuple(args)) fail(`REDUCE at offset ${opAt} has ${pyType(args)} arguments, not a tuple`);
        push(policy.reduce(fn, args as PyValue[]));
        break;
      }
      case 0x62: { const state = pop(); push(policy.build(pop(), state)); break; } // BUILD
      case 0x51: push(policy.persistentLoad(pop())); break; // BINPERSID
      default:
        fail(
          OPNAMES[op]
            ? `pickle opcode ${OPNAMES[op]} at offset ${opAt} is not one torch.save writes for a state dict; refusing to load`
            : `byte 0x${op.toString(16).padStart(2, '0')} at offset ${opAt} is not a pickle opcode; corrupted pickle`,
        );
    }
  }
}
