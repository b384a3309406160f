// PyTorch `.bin` checkpoints (torch.save since PyTorch 1.6) as safetensors-like entries.
//
// Layout of such a file (see torch/serialization.py, _save / _load):
//   <folder>/data.pkl      the state dict, pickled (protocol 2): an OrderedDict of name → tensor,
//                          each tensor `torch._utils._rebuild_tensor_v2(storage, offset, size,
//                          stride, requires_grad, hooks)`, each storage a persistent id
//                          ('storage', torch.FloatStorage, key, location, numel)
//   <folder>/data/<key>    the raw little-endian bytes of storage <key>, stored uncompressed
//   <folder>/byteorder     "little" (absent in files older than PyTorch 1.10: little as well)
// The pickle is read by the restricted unpickler (pickle.ts) under the policy below, which
// accepts only the globals a state dict of dense tensors needs; REDUCE builds descriptions, so
// nothing in the file is ever called. A tensor then becomes an absolute byte range of the .bin
// (its storage entry's data offset + storage offset × element size), read like a safetensors one.

import type { RandomAccess } from '../io/source.js';
import type { DType } from './dtype.js';
import { crc32 } from './crc32.js';
import { PyGlobal, aType, isTuple, pyType, unpickle, type PicklePolicy, type PyValue } from './pickle.js';
import { CheckpointError, SUPPORTED_DTYPES, WeightsFile, readRange, type SafetensorsEntry } from './safetensors.js';
import { readZipEntries, type ZipEntry } from './zip.js';

/**
 * Storage classes torch.save names (torch/storage.py, _dtype_to_storage_type_map), with the
 * safetensors spelling of their dtype where it has one. Only F32 / F16 / BF16 can be read; the
 * others parse (a state dict may carry an int buffer the model never uses) and are refused by
 * name when read.
 */
const STORAGE_TYPES: Record<string, { st: string; bytes: number }> = {
  FloatStorage: { st: 'F32', bytes: 4 }, HalfStorage: { st: 'F16', bytes: 2 }, BFloat16Storage: { st: 'BF16', bytes: 2 },
  DoubleStorage: { st: 'F64', bytes: 8 }, LongStorage: { st: 'I64', bytes: 8 }, IntStorage: { st: 'I32', bytes: 4 },
  ShortStorage: { st: 'I16', bytes: 2 }, CharStorage: { st: 'I8', bytes: 1 }, ByteStorage: { st: 'U8', bytes: 1 },
  BoolStorage: { st: 'BOOL', bytes: 1 }, ComplexFloatStorage: { st: 'C64', bytes: 8 },
  ComplexDoubleStorage: { st: 'torch.ComplexDoubleStorage', bytes: 16 }, QInt8Storage: { st: 'torch.QInt8Storage', bytes: 1 },
  QUInt8Storage: { st: 'torch.QUInt8Storage', bytes: 1 }, QInt32Storage: { st: 'torch.QInt32Storage', bytes: 4 },
  QUInt4x2Storage: { st: 'torch.QUInt4x2Storage', bytes: 1 }, QUInt2x4Storage: { st: 'torch.QUInt2x4Storage', bytes: 1 },
};

const REBUILDERS = new Set(['_rebuild_tensor_v2', '_rebuild_tensor', '_rebuild_parameter', '_rebuild_parameter_with_state']);

/** A storage as its persistent id describes it. */
interface StorageRef {
  readonly kind: 'storage';
  readonly type: string;
  readonly key: string;
  readonly numel: number;
}

/** What `_rebuild_tensor_v2(...)` would have built. */
interface TensorDesc {
  readonly kind: 'tensor';
  readonly storage: StorageRef;
  readonly storageOffset: number;
  readonly shape: readonly PyValue[];
  readonly stride: readonly PyValue[];
}

/** One tensor of a state dict, before it is placed in the file. */
export interface TorchTensorRef {
  name: string;
  /** Storage class name, e.g. "FloatStorage". */
  storageType: string;
  /** Safetensors dtype spelling (or the torch storage name when safetensors has none). */
  stDtype: string;
  dtype: DType | null;
  elemBytes: number;
  shape: number[];
  stride: number[];
  /** Key of the storage: its bytes are the zip entry `<folder>/data/<key>`. */
  storageKey: string;
  /** Elements in the storage (from its persistent id). */
  storageNumel: number;
  /** First element of the tensor in its storage. */
  storageOffset: number;
}

const isObj = <K extends string>(v: PyValue, kind: K): boolean => typeof v === 'object' && v !== null && (v as { kind?: string }).kind === kind;
const isInt = (v: PyValue): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/** The policy: which globals exist, and what REDUCE / BUILD / persistent ids describe. */
function torchPolicy(label: string): PicklePolicy {
  const fail = (msg: string): never => {
    throw new CheckpointError(`${label}: ${msg}`, { file: label });
  };
  const storages = new Map<string, StorageRef>();
  // requires_grad and backward hooks: torch.save always writes a bool and an empty OrderedDict
  // (hooks are not saved); anything else is not a state dict this reader understands.
  const extras = (fn: string, requiresGrad: PyValue, hooks: PyValue) => {
    if (typeof requiresGrad !== 'boolean') fail(`${fn}: requires_grad is ${aType(requiresGrad)}, not a bool`);
    if (!(hooks instanceof Map) || hooks.size > 0) fail(`${fn}: backward hooks are ${hooks instanceof Map ? `a dict of ${hooks.size}` : aType(hooks)}, not an empty OrderedDict`);
  };
  return {
    global(module, name) {
      if ((module === 'collections' && name === 'OrderedDict') || (module === 'torch._utils' && REBUILDERS.has(name))) {
        return new PyGlobal(module, name);
      }
      if (module === 'torch' && Object.prototype.hasOwnProperty.call(STORAGE_TYPES, name)) return new PyGlobal(module, name);
      const q = `${module}.${name}`;
      if (module === 'torch' || module.startsWith('torch.')) {
        return fail(`the pickle names the global ${q}, which this reader does not handle (state dicts of dense tensors only); refusing to load`);
      }
      return fail(`the pickle names the global ${q}, which a state dict never needs; refusing to load`);
    },
    reduce(fn, args) {
      if (!(fn instanceof PyGlobal)) return fail(`REDUCE calls ${aType(fn)}, which is not callable in a state dict`);
      const arity = (lo: number, hi = lo) => {
        if (args.length < lo || args.length > hi) fail(`${fn.qualified} takes ${lo === hi ? lo : `${lo} to ${hi}`} arguments, the pickle passes ${args.length}`);
      };
      switch (fn.module === 'torch' ? 'storage' : fn.name) {
        case 'OrderedDict':
          arity(0);
          return new Map<PyValue, PyValue>();
        case '_rebuild_tensor_v2': // (storage, offset, size, stride, requires_grad, hooks[, metadata])
        case '_rebuild_tensor': { // (storage, offset, size, stride)
          if (fn.name === '_rebuild_tensor') arity(4);
          else arity(6, 7);
          const [storage, offset, size, stride] = args;
          if (!isObj(storage, 'storage')) fail(`${fn.qualified}: the storage argument is ${aType(storage)}, not a storage`);
          if (!isInt(offset) || offset < 0) fail(`${fn.qualified}: storage offset must be a non-negative integer, got ${aType(offset)}`);
          if (!isTuple(size) || !isTuple(stride)) fail(`${fn.qualified}: size and stride must be tuples, got ${pyType(size)} and ${pyType(stride)}`);
          if (fn.name === '_rebuild_tensor_v2') {
            extras(fn.qualified, args[4], args[5]);
            // torch appends metadata only when a tensor's conj or neg bit is set: its bytes then
            // do not hold its values.
            const md = args[6];
            if (md !== undefined && md !== null && !(md instanceof Map && [...md.values()].every((v) => v === false))) {
              fail(`${fn.qualified}: the tensor carries metadata ${md instanceof Map ? `{${[...md.keys()].map(String).join(', ')}}` : aType(md)} (a conjugate or negative view), which this reader does not apply; re-save it with .resolve_conj().resolve_neg()`);
            }
          }
          const t: TensorDesc = { kind: 'tensor', storage: storage as StorageRef, storageOffset: offset as number, shape: size as PyValue[], stride: stride as PyValue[] };
          return t;
        }
        case '_rebuild_parameter': // (data, requires_grad, hooks): the tensor itself is all we need
        case '_rebuild_parameter_with_state':
          arity(fn.name === '_rebuild_parameter' ? 3 : 4);
          if (!isObj(args[0], 'tensor')) fail(`${fn.qualified}: data is ${aType(args[0])}, not a tensor`);
          extras(fn.qualified, args[1], args[2]);
          return args[0];
        default:
          return fail(`${fn.qualified} is called directly; a storage class only appears inside a persistent id`);
      }
    },
    persistentLoad(pid) {
      if (!isTuple(pid) || pid.length !== 5 || pid[0] !== 'storage') {
        return fail(`persistent id is ${aType(pid)} of ${Array.isArray(pid) ? pid.length : 0} items, not ('storage', type, key, location, numel)`);
      }
      const [, type, key, location, numel] = pid;
      if (!(type instanceof PyGlobal) || type.module !== 'torch' || !STORAGE_TYPES[type.name]) {
        return fail(`persistent id names ${aType(type)} as its storage type, not a torch storage class`);
      }
      // The key becomes part of a zip entry name: plain word characters only.
      if (typeof key !== 'string' || !/^\w{1,64}$/.test(key)) return fail(`storage key ${typeof key === 'string' ? JSON.stringify(key.slice(0, 40)) : pyType(key)} is not a plain name`);
      if (typeof location !== 'string') return fail(`storage ${key}: location is ${aType(location)}, not a device name`);
      if (!isInt(numel) || numel < 0) return fail(`storage ${key}: element count must be a non-negative integer, got ${aType(numel)}`);
      const seen = storages.get(key);
      if (seen) {
        if (seen.type !== type.name || seen.numel !== numel) fail(`storage ${key} is described twice, as ${seen.numel} × ${seen.type} and ${numel} × ${type.name}`);
        return seen;
      }
      const s: StorageRef = { kind: 'storage', type: type.name, key, numel };
      storages.set(key, s);
      return s;
    },
    build(obj, state) {
      // Module.state_dict() carries `_metadata` (per-module versions) as OrderedDict state; unused.
      if (obj instanceof Map) return obj;
      return fail(`BUILD sets the state of ${aType(obj)} (given ${aType(state)}); a state dict has no such object`);
    },
  };
}

/** Checks one tensor description and turns it into a TorchTensorRef. */
function tensorRef(name: string, t: TensorDesc, label: string): TorchTensorRef {
  const fail = (msg: string): never => {
    throw new CheckpointError(`${label}: tensor "${name}": ${msg}`, { file: label, tensor: name });
  };
  if (!t.shape.every((d) => isInt(d) && d >= 0)) fail(`shape must hold non-negative integers`);
  if (!t.stride.every((d) => isInt(d) && d >= 0)) fail(`stride must hold non-negative integers`);
  const shape = t.shape as number[], stride = t.stride as number[];
  if (shape.length !== stride.length) fail(`shape [${shape}] and stride [${stride}] differ in length`);
  const info = STORAGE_TYPES[t.storage.type];
  let numel = 1;
  for (const d of shape) numel *= d;
  if (!Number.isSafeInteger(numel * info.bytes)) fail(`shape [${shape}] is absurd`);
  // Row-major contiguous: stride[i] = prod(shape[i+1:]); a dimension of size 1 may have any stride.
  let want = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && numel > 0 && stride[i] !== want) {
      fail(`stride [${stride}] of shape [${shape}] is not contiguous (a transposed or sliced view); re-save it with .contiguous() or convert the checkpoint to safetensors`);
    }
    want *= shape[i];
  }
  if (numel > 0 && t.storageOffset + numel > t.storage.numel) {
    fail(`${numel} elements from offset ${t.storageOffset} run past its storage ${t.storage.key} of ${t.storage.numel} elements`);
  }
  return {
    name,
    storageType: t.storage.type,
    stDtype: info.st,
    dtype: SUPPORTED_DTYPES[info.st] ?? null,
    elemBytes: info.bytes,
    shape: shape.slice(),
    stride: stride.slice(),
    storageKey: t.storage.key,
    storageNumel: t.storage.numel,
    storageOffset: t.storageOffset,
  };
}

/** Largest data.pkl accepted; a state dict's pickle is a few bytes per tensor name. */
export const MAX_PICKLE_BYTES = 256 << 20;

/** Unpickles a state dict (data.pkl's bytes) into tensor name → reference, executing nothing. */
export function readTorchStateDict(pkl: Uint8Array, label: string): Map<string, TorchTensorRef> {
  const root = unpickle(pkl, label, torchPolicy(label));
  if (!(root instanceof Map)) {
    throw new CheckpointError(`${label}: the pickle holds ${aType(root)}, not a state dict (a dict of tensors)`, { file: label });
  }
  const out = new Map<string, TorchTensorRef>();
  for (const [k, v] of root) {
    if (typeof k !== 'string') throw new CheckpointError(`${label}: state dict key is ${aType(k)}, not a tensor name`, { file: label });
    if (!isObj(v, 'tensor')) {
      throw new CheckpointError(`${label}: state dict entry "${k}" is ${aType(v)}, not a tensor; not a plain state dict`, { file: label, tensor: k });
    }
    out.set(k, tensorRef(k, v as TensorDesc, label));
  }
  return out;
}

/** One torch.save zip file, its tensors placed as absolute byte ranges (SafetensorsEntry). */
export class TorchBinFile extends WeightsFile {
  readonly tensors = new Map<string, SafetensorsEntry>();
  /** The pickle's view of each tensor (stride, storage key and offset). */
  readonly refs: Map<string, TorchTensorRef>;
  readonly metadata: Record<string, unknown> = { format: 'pt' };
  /** Each tensor's storage entry, whose CRC-32 is checked the first time one of its tensors is read. */
  private readonly storageOf = new Map<string, ZipEntry>();
  private readonly checked = new Set<string>();

  constructor(name: string, handle: RandomAccess) {
    super(name, handle);
    const fail = (msg: string, tensor?: string): never => {
      throw new CheckpointError(`${name}: ${msg}`, { file: name, tensor });
    };
    const zip = readZipEntries(handle, name);
    // The top folder is named after the file torch.save wrote (archive/, pytorch_model/ …).
    const pkls = [...zip.keys()].filter((k) => /^[^/]+\/data\.pkl$/.test(k));
    if (pkls.length !== 1) {
      fail(pkls.length ? `holds ${pkls.length} data.pkl records (${pkls.slice(0, 3).join(', ')}); ambiguous` : 'is a zip archive but not a torch.save checkpoint (no <folder>/data.pkl)');
    }
    const folder = pkls[0].slice(0, -'data.pkl'.length);
    const bo = zip.get(`${folder}byteorder`);
    if (bo) {
      const b = new Uint8Array(Math.min(bo.size, 16));
      readRange(handle, b, bo.dataOffset, name, 'byteorder record');
      const order = new TextDecoder().decode(b);
      if (order !== 'little') fail(`was saved on a ${JSON.stringify(order)}-endian machine; only little-endian checkpoints are read`);
    }
    const pe = zip.get(pkls[0])!;
    if (pe.size > MAX_PICKLE_BYTES) fail(`${pkls[0]} is ${pe.size} bytes, beyond any state dict's pickle (limit ${MAX_PICKLE_BYTES})`);
    const pkl = new Uint8Array(pe.size);
    readRange(handle, pkl, pe.dataOffset, name, pkls[0]);
    if (crc32(pkl) !== pe.crc32) fail(`${pkls[0]} fails its CRC-32 check; the file is corrupted`);
    this.refs = readTorchStateDict(pkl, `${name} (${pkls[0]})`);
    for (const [t, r] of this.refs) {
      const se = zip.get(`${folder}data/${r.storageKey}`);
      if (!se) fail(`tensor "${t}": its storage ${folder}data/${r.storageKey} is missing from the archive`, t);
      // torch.save writes each storage whole: its entry holds exactly numel × element size bytes.
      const need = r.storageNumel * r.elemBytes;
      if (se!.size !== need) {
        fail(`tensor "${t}": storage ${se!.name} holds ${se!.size} bytes, ${se!.size < need ? 'shorter' : 'longer'} than its ${r.storageNumel} × ${r.storageType} (${need} bytes); the file is truncated or corrupted`, t);
      }
      const length = r.shape.reduce((a, b) => a * b, 1) * r.elemBytes;
      this.storageOf.set(t, se!);
      this.tensors.set(t, {
        name: t,
        stDtype: r.stDtype,
        dtype: r.dtype,
        shape: r.shape.slice(),
        file: name,
        offset: se!.dataOffset + r.storageOffset * r.elemBytes,
        length,
      });
    }
  }

  /**
   * A tensor, its storage's bytes checked against the archive's CRC-32 the first time: the zip
   * structure can be consistent while a storage's start is not where the data is.
   */
  override readTensor(name: string, dst?: Uint8Array): Uint8Array {
    const se = this.storageOf.get(name);
    if (se && !this.checked.has(se.name)) {
      let crc = 0;
      const chunk = new Uint8Array(Math.min(se.size, 1 << 22));
      for (let at = 0; at < se.size; at += chunk.length) {
        const part = chunk.subarray(0, Math.min(chunk.length, se.size - at));
        readRange(this.handle, part, se.dataOffset + at, this.name, se.name);
        crc = crc32(part, crc);
      }
      if ((crc >>> 0) !== se.crc32) throw new CheckpointError(`${this.name}: ${se.name} fails its CRC-32 check; the file is corrupted`, { file: this.name, tensor: name });
      this.checked.add(se.name);
    }
    return super.readTensor(name, dst);
  }
}
