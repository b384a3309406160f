// PyTorch .bin checkpoints: the replicas that ship them open through openWeights, and hostile
// files built here are refused with one line each, executing nothing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { openWeights } from '../dist/src/format/weights.js';
import { TorchBinFile, readTorchStateDict } from '../dist/src/format/torch.js';
import { readZipEntries } from '../dist/src/format/zip.js';
import { CheckpointError, bytesFile } from '../dist/src/format/safetensors.js';
import { nodeCheckpointFS } from '../dist/src/node/checkpoint-fs.js';
import { cleanupTmp, copyModel, tmpDir, writeSafetensors } from './helpers/hostile.js';
import {
  Pickle,
  encodeTorchBin,
  encodeZip,
  f16Bits,
  listZip,
  stateDictPickle,
  torchBinWithPickle,
  writeTorchBin,
} from './helpers/torchfiles.js';

const REPLICAS = fileURLToPath(new URL('./fixtures/replicas/', import.meta.url));

/** Asserts `fn` throws a one-line CheckpointError matching every pattern (a refusal that hangs fails by the suite's timeout). */
function refuses(fn, ...patterns) {
  let err;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected a CheckpointError matching ${patterns.join(', ')}, but nothing was thrown`);
  assert.ok(err instanceof CheckpointError, `expected a CheckpointError, got ${err?.stack ?? err}`);
  assert.ok(!err.message.includes('\n'), `message is not one line: ${err.message}`);
  for (const p of patterns) {
    assert.ok(p instanceof RegExp ? p.test(err.message) : err.message.includes(p), `message ${JSON.stringify(err.message)} lacks ${p}`);
  }
  return err;
}

/** Opens a .bin held in memory. */
const openBin = (bytes, name = 'test.bin') => new TorchBinFile(name, bytesFile(bytes));

/** Shapes a tensor name must have, from config.json (every name must match a rule). */
function expectedShape(cfg, name) {
  const H = cfg.hidden_size, V = cfg.vocab_size;
  const nh = cfg.num_attention_heads, kv = cfg.num_key_value_heads ?? cfg.num_kv_heads ?? nh, hd = H / nh;
  const I = cfg.intermediate_size ?? cfg.ffn_dim ?? 4 * H;
  const rules = [
    [/(embed_tokens|word_embeddings)\.weight$/, [V, cfg.word_embed_proj_dim ?? H]],
    [/lm_head\.weight$/, [V, H]],
    [/embed_positions\.weight$/, [cfg.max_position_embeddings + 2, H]],
    [/\.(q_proj|o_proj|out_proj|self_attention\.dense)\.weight$/, [H, H]],
    [/\.(k_proj|v_proj)\.weight$/, [kv * hd, H]],
    [/\.query_key_value\.weight$/, [(nh + 2 * kv) * hd, H]],
    [/\.(gate_proj|up_proj|fc1|dense_h_to_4h)\.weight$/, [I, H]],
    [/\.(down_proj|fc2|dense_4h_to_h)\.weight$/, [H, I]],
    [/\.fc1\.bias$/, [I]],
    [/(norm|ln_\w+|layer_norm)\.(weight|bias)$/, [H]],
    [/\.(q_proj|k_proj|v_proj|out_proj|fc2)\.bias$/, [H]],
  ];
  for (const [re, shape] of rules) if (re.test(name)) return shape;
  assert.fail(`no expected shape for tensor ${name}`);
}

function values(bytes, stDtype) {
  const n = bytes.length / (stDtype === 'F32' ? 4 : 2);
  if (stDtype === 'F32') return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  const u16 = new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const h = u16[i];
    if (stDtype === 'BF16') out[i] = new Float32Array(new Uint32Array([h << 16]).buffer)[0];
    else {
      const e = (h >> 10) & 0x1f, m = h & 0x3ff, s = h & 0x8000 ? -1 : 1;
      out[i] = e === 31 ? (m ? NaN : s * Infinity) : e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  return out;
}

after(cleanupTmp);

describe('PyTorch .bin checkpoints', function () {
  describe('replicas that ship .bin weights', () => {
    const cases = [
      ['relullama-tiny', 'F32', 3],
      ['falcon-relu-tiny', 'F32', 2],
      ['opt-relu-bin-tiny', 'F16', 2],
      ['spm-only-relu-tiny', 'F16', 1],
    ];
    for (const [folder, dtype, shards] of cases) {
      it(`${folder}: every tensor opens with its shape, ${dtype}, finite values`, () => {
        const dir = join(REPLICAS, folder);
        const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
        const idxPath = join(dir, 'pytorch_model.bin.index.json');
        const index = existsSync(idxPath) ? JSON.parse(readFileSync(idxPath, 'utf8')).weight_map : null;
        const ck = openWeights(nodeCheckpointFS(dir));
        try {
          assert.equal(ck.files.length, shards);
          assert.ok(ck.files.every((f) => f.endsWith('.bin')));
          const names = index ? Object.keys(index) : [...ck.tensors.keys()];
          if (index) assert.deepEqual([...ck.tensors.keys()].sort(), names.slice().sort());
          else assert.equal(names.length, 3 + 9 * cfg.num_hidden_layers); // embed, norm, head + 9 per layer
          // Independent of the pickle: each tensor's bytes are exactly one data/<key> entry.
          const zips = new Map(ck.files.map((f) => [f, listZip(readFileSync(join(dir, f)))]));
          for (const name of names) {
            const e = ck.entry(name);
            assert.ok(e, `tensor ${name} missing`);
            assert.equal(e.stDtype, dtype, name);
            assert.deepEqual(e.shape, expectedShape(cfg, name), name);
            if (index) assert.equal(e.file, join(dir, index[name]));
            const z = zips.get(index ? index[name] : 'pytorch_model.bin');
            const ze = z.entries.find((x) => x.dataOffset === e.offset);
            assert.ok(ze && /\/data\/\d+$/.test(ze.name) && ze.size === e.length, `${name}: not at a storage entry`);
            const v = values(ck.readTensor(name), dtype);
            assert.equal(v.length, e.shape.reduce((a, b) => a * b, 1));
            assert.ok(v.every(Number.isFinite), `${name} has non-finite values`);
            assert.ok(v.some((x) => x !== 0) || /bias$/.test(name), `${name} is all zeros`);
          }
        } finally {
          ck.close();
        }
      });
    }

    it('safetensors wins over .bin in the same folder (as transformers picks)', () => {
      const dir = copyModel(join(REPLICAS, 'spm-only-relu-tiny'));
      writeSafetensors(join(dir, 'model.safetensors'), { 'only.weight': { dtype: 'F32', shape: [2] } });
      const ck = openWeights(nodeCheckpointFS(dir));
      assert.deepEqual([...ck.tensors.keys()], ['only.weight']);
      ck.close();
    });

    it('no weights at all: the error lists every file looked for', () => {
      refuses(() => openWeights(nodeCheckpointFS(tmpDir())), 'no weights found', 'model.safetensors.index.json', 'pytorch_model.bin.index.json');
    });

    it('the .bin index is validated like the safetensors one', () => {
      const src = join(REPLICAS, 'falcon-relu-tiny');
      const patchIndex = (fn) => {
        const dir = copyModel(src);
        const p = join(dir, 'pytorch_model.bin.index.json');
        const j = JSON.parse(readFileSync(p, 'utf8'));
        fn(j.weight_map);
        writeFileSync(p, JSON.stringify(j));
        return nodeCheckpointFS(dir);
      };
      refuses(() => openWeights(patchIndex((wm) => (wm['transformer.ln_f.bias'] = '../evil.bin'))), 'path traversal');
      refuses(() => openWeights(patchIndex((wm) => (wm['transformer.ghost'] = 'pytorch_model-00001-of-00002.bin'))), 'transformer.ghost', 'does not contain it');
      refuses(() => openWeights(patchIndex((wm) => (wm['transformer.ln_f.bias'] = 'pytorch_model-00009.bin'))), 'missing shard file');
    });
  });

  describe('files built here', () => {
    it('reads f32 / f16 / bf16, shared storages, Parameters, zip64 extras and _metadata state', () => {
      const f32 = new Float32Array([1.5, -2, 3.25, 4, 5, 6]);
      const f16 = new Uint16Array([1, -0.5, 65504].map(f16Bits));
      const bf16 = new Uint16Array([0x3f80, 0xc000]);
      const bin = encodeTorchBin(
        {
          'a.weight': { dtype: 'F32', shape: [2, 3], data: f32 },
          'b.weight': { dtype: 'F16', shape: [3], data: f16, parameter: true },
          'c.weight': { dtype: 'BF16', shape: [1, 2], data: bf16, stride: [7, 1] },
          'ids': { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, 2n]) },
        },
        { metadataState: true, folder: 'my_model', entry: (e) => ({ ...e, zip64Extra: true }) },
      );
      const f = openBin(bin);
      assert.deepEqual([...f.tensors.keys()], ['a.weight', 'b.weight', 'c.weight', 'ids']);
      assert.deepEqual(values(f.readTensor('a.weight'), 'F32'), f32);
      assert.deepEqual([...values(f.readTensor('b.weight'), 'F16')], [1, -0.5, 65504]);
      assert.deepEqual([...values(f.readTensor('c.weight'), 'BF16')], [1, -2]);
      assert.equal(f.entry('ids').stDtype, 'I64');
      refuses(() => f.readTensor('ids'), 'unsupported dtype I64', '"ids"');

      // Two views of one storage (rows 0 and 1 of a [2, 3] tensor).
      const pkl = stateDictPickle([
        { name: 'row0', dtype: 'F32', shape: [3], key: 0, numel: 6, storageOffset: 0 },
        { name: 'row1', dtype: 'F32', shape: [3], key: 0, numel: 6, storageOffset: 3 },
      ]);
      const g = openBin(torchBinWithPickle(pkl, { 0: Buffer.from(f32.buffer) }));
      assert.deepEqual([...values(g.readTensor('row1'), 'F32')], [4, 5, 6]);
      assert.deepEqual([...values(g.readTensor('row0'), 'F32')], [1.5, -2, 3.25]);
    });

    describe('hostile pickles: refused by name, nothing runs', () => {
      let canaryDir, canary;
      before(() => {
        canaryDir = tmpDir('canary');
        canary = join(canaryDir, 'pwned');
      });
      afterEach(() => assert.ok(!existsSync(canary), 'the payload ran'));

      /** A file whose pickle calls `module.name(cmd)` as its first act, torch-zip wrapped. */
      const payload = (how, module, name) => {
        const p = new Pickle().proto(2);
        if (how === 'GLOBAL') p.global(module, name);
        else p.stackGlobal(module, name);
        p.str(`touch ${canary}`).tupleN(1).reduce().stop();
        return torchBinWithPickle(p.bytes());
      };
      for (const [how, module, name] of [
        ['GLOBAL', 'os', 'system'],
        ['STACK_GLOBAL', 'builtins', 'eval'],
        ['STACK_GLOBAL', 'posix', 'system'],
        ['STACK_GLOBAL', 'subprocess', 'Popen'],
        ['STACK_GLOBAL', '__builtin__', 'getattr'],
        ['GLOBAL', 'nt', 'system'],
        ['GLOBAL', 'torch', 'load'],
        ['GLOBAL', 'torch._utils', '_rebuild_sparse_tensor'],
      ]) {
        it(`${how} ${module}.${name}`, () => {
          refuses(() => openBin(payload(how, module, name)), `the pickle names the global ${module}.${name}`, 'refusing to load');
        });
      }

      it('the payload is live: Python\'s own pickle runs it (skipped without python3)', function () {
        // Shows that the canary checks above could fail: the same bytes do run under pickle.loads.
        const live = join(canaryDir, 'live');
        const p = new Pickle().proto(2).global('os', 'system').str(`touch ${live}`).tupleN(1).reduce().stop().bytes();
        const r = spawnSync('python3', ['-c', 'import pickle,sys; pickle.loads(sys.stdin.buffer.read())'], { input: p });
        if (r.error) this.skip();
        assert.ok(existsSync(live), `python3 did not run the payload: ${r.stderr}`);
        refuses(() => readTorchStateDict(p, 'live.pkl'), 'os.system');
      });

      it('a forbidden global hidden after valid tensors, and through openWeights', () => {
        const dir = tmpDir('evil');
        const good = stateDictPickle([{ name: 'w', dtype: 'F32', shape: [1], key: 0, numel: 1 }]);
        const p = new Pickle().buf(good.subarray(0, good.length - 2)); // drop SETITEMS + STOP
        p.str('x').global('os', 'system').str(`touch ${canary}`).tupleN(1).reduce().setitems().stop();
        writeFileSync(join(dir, 'pytorch_model.bin'), torchBinWithPickle(p.bytes(), { 0: Buffer.alloc(4) }));
        refuses(() => openWeights(nodeCheckpointFS(dir)), 'pytorch_model.bin', 'os.system');
      });

      it('opcodes that build objects torch never writes (INST, OBJ, NEWOBJ, EXT1, PERSID)', () => {
        const inst = new Pickle().proto(2).mark().str(`touch ${canary}`).raw(0x69).buf(Buffer.from('os\nsystem\n')).stop();
        refuses(() => openBin(torchBinWithPickle(inst.bytes())), 'INST');
        refuses(() => openBin(torchBinWithPickle(new Pickle().proto(2).mark().raw(0x6f).stop().bytes())), 'OBJ');
        refuses(() => openBin(torchBinWithPickle(new Pickle().proto(2).emptyTuple().emptyTuple().raw(0x81).stop().bytes())), 'NEWOBJ');
        refuses(() => openBin(torchBinWithPickle(new Pickle().proto(2).raw(0x82, 1).stop().bytes())), 'EXT1');
        refuses(() => openBin(torchBinWithPickle(new Pickle().proto(2).raw(0x50).buf(Buffer.from('x\n')).stop().bytes())), 'PERSID');
      });

      it('persistent ids that are not storages, or whose key is a path', () => {
        const pid = (...items) => new Pickle().proto(2).emptyDict().str('w').mark().buf(Buffer.concat(items)).tuple().binpersid().raw(0x73).stop().bytes();
        const s = (x) => new Pickle().str(x).bytes();
        const storageType = new Pickle().global('torch', 'FloatStorage').bytes();
        const n = new Pickle().int(4).bytes();
        refuses(() => openBin(torchBinWithPickle(pid(s('storage'), storageType, s('../../etc/passwd'), s('cpu'), n))), 'not a plain name');
        refuses(() => openBin(torchBinWithPickle(pid(s('module'), storageType, s('0'), s('cpu'), n))), 'persistent id');
        refuses(() => openBin(torchBinWithPickle(pid(s('storage'), s('FloatStorage'), s('0'), s('cpu'), n))), 'storage type');
      });
    });

    describe('malformed files: one line each, no hang', () => {
      const good = () => encodeTorchBin({ w: { dtype: 'F32', shape: [4, 4] }, b: { dtype: 'F32', shape: [4] } });

      it('truncated zip', () => {
        const b = good();
        refuses(() => openBin(b.subarray(0, b.length >> 1)), 'test.bin', 'truncated');
        refuses(() => openBin(b.subarray(0, b.length - 10)), 'test.bin', 'no end-of-central-directory');
        refuses(() => openBin(b.subarray(0, 3)), 'test.bin');
      });

      it('bad central directory offsets', () => {
        let b = Buffer.from(good());
        const z = listZip(b);
        b.writeBigUInt64LE(BigInt(b.length * 4), z.z64Offset + 48); // zip64 central directory offset
        refuses(() => openBin(b), 'central directory', 'runs past');
        b = Buffer.from(good());
        b.writeUInt32LE(0x7ffffff0, listZip(b).entries[2].cdhOffset + 42); // a local header offset
        refuses(() => openBin(b), 'local header offset', 'outside');
        b = Buffer.from(good());
        b.writeUInt32LE(0xdeadbeef, listZip(b).entries[1].lfhOffset); // no local header there
        refuses(() => openBin(b), 'no local header');
        b = Buffer.from(good());
        b.writeBigUInt64LE(1n << 60n, listZip(b).z64Offset + 32); // entry count
        refuses(() => openBin(b), /absurd|cannot fit/);
      });

      it('compressed and encrypted entries', () => {
        const bin = encodeTorchBin({ w: { dtype: 'F32', shape: [64] } }, { entry: (e) => (e.name.endsWith('data/0') ? { ...e, method: 8 } : e) });
        refuses(() => openBin(bin), 'archive/data/0', 'compressed (deflate)');
        const enc = encodeTorchBin({ w: { dtype: 'F32', shape: [4] } }, { entry: (e) => ({ ...e, flags: 1 }) });
        refuses(() => openBin(enc), 'encrypted');
      });

      it('a storage shorter than its tensor', () => {
        // The pickle's storage holds 8 elements, the tensor wants 16.
        const over = stateDictPickle([{ name: 'w', dtype: 'F32', shape: [4, 4], key: 0, numel: 8 }]);
        refuses(() => openBin(torchBinWithPickle(over, { 0: Buffer.alloc(32) })), '"w"', 'run past its storage');
        // The pickle says 16 elements, the zip entry holds 8.
        const short = stateDictPickle([{ name: 'w', dtype: 'F32', shape: [4, 4], key: 0, numel: 16 }]);
        refuses(() => openBin(torchBinWithPickle(short, { 0: Buffer.alloc(32) })), '"w"', 'shorter than');
        refuses(() => openBin(torchBinWithPickle(short, {})), 'archive/data/0', 'missing');
        const offset = stateDictPickle([{ name: 'w', dtype: 'F32', shape: [4], key: 0, numel: 4, storageOffset: 2 }]);
        refuses(() => openBin(torchBinWithPickle(offset, { 0: Buffer.alloc(16) })), 'run past its storage');
      });

      it('a non-contiguous stride', () => {
        const t = stateDictPickle([{ name: 'w', dtype: 'F32', shape: [4, 4], stride: [1, 4], key: 0, numel: 16 }]);
        refuses(() => openBin(torchBinWithPickle(t, { 0: Buffer.alloc(64) })), '"w"', 'not contiguous');
      });

      it('legacy (pre-1.6) and other non-zip files', () => {
        const legacy = Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]);
        refuses(() => openBin(legacy), 'test.bin', 'legacy pre-1.6');
        const tar = Buffer.alloc(1024);
        tar.write('ustar', 257);
        refuses(() => openBin(tar), 'legacy tar');
        refuses(() => openBin(Buffer.from('{"not": "a checkpoint"}')), 'not a zip archive');
        refuses(() => openBin(Buffer.alloc(0)), 'not a zip archive');
        const dir = tmpDir('legacy');
        writeFileSync(join(dir, 'pytorch_model.bin'), legacy);
        refuses(() => openWeights(nodeCheckpointFS(dir)), join(dir, 'pytorch_model.bin'), 'legacy');
      });

      it('huge length fields', () => {
        const str = new Pickle().proto(2).raw(0x58).u32(0xfffffff0).stop().bytes();
        refuses(() => openBin(torchBinWithPickle(str)), 'runs past the end of the pickle');
        const b8 = new Pickle().proto(4).raw(0x8e).buf(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])).stop().bytes();
        refuses(() => openBin(torchBinWithPickle(b8)), 'runs past the end of the pickle');
        const long4 = new Pickle().proto(2).raw(0x8b).u32(1 << 30).stop().bytes();
        refuses(() => openBin(torchBinWithPickle(long4)), /too large|runs past/);
        // A zip64 size of 2^62 for a storage.
        const b = Buffer.from(encodeTorchBin({ w: { dtype: 'F32', shape: [4] } }, { entry: (e) => ({ ...e, zip64Extra: true }) }));
        const ze = listZip(b).entries.find((e) => e.name.endsWith('data/0'));
        const nameLen = b.readUInt16LE(ze.cdhOffset + 28);
        b.writeBigUInt64LE(1n << 62n, ze.cdhOffset + 46 + nameLen + 4);
        b.writeBigUInt64LE(1n << 62n, ze.cdhOffset + 46 + nameLen + 12);
        refuses(() => openBin(b), 'archive/data/0', /absurd|run past/);
        // A huge element count in the persistent id.
        const big = stateDictPickle([{ name: 'w', dtype: 'F32', shape: [4], key: 0, numel: 2 ** 50 }]);
        refuses(() => openBin(torchBinWithPickle(big, { 0: Buffer.alloc(16) })), 'shorter than');
      });

      it('deep nesting and runaway stacks', () => {
        refuses(() => openBin(torchBinWithPickle(new Pickle().proto(2).raw(new Array(100000).fill(0x28)).stop().bytes())), 'nest deeper');
        // 200k lists nested in one another (no MARKs): parsed without recursion, then refused as not a state dict.
        const nest = new Pickle().proto(2).raw(new Array(200000).fill(0x5d)).raw(new Array(199999).fill(0x61)).stop();
        refuses(() => openBin(torchBinWithPickle(nest.bytes())), 'holds a list, not a state dict');
        const tuples = new Pickle().proto(2).none().raw(new Array(300000).fill(0x85)).stop();
        refuses(() => openBin(torchBinWithPickle(tuples.bytes())), 'holds a tuple');
        refuses(() => openBin(torchBinWithPickle(new Pickle().proto(2).raw(new Array(1 << 23).fill(0x4e)).stop().bytes())), 'stack grows past');
      });

      it('other corruptions: memo, stack, opcodes, CRC, byte order, non-tensor values', () => {
        const bin = (p) => openBin(torchBinWithPickle(p.bytes()));
        refuses(() => bin(new Pickle().proto(2).binget(7).stop()), 'memo slot 7');
        refuses(() => bin(new Pickle().proto(2).reduce().stop()), 'empty stack');
        refuses(() => bin(new Pickle().proto(2).raw(0xff).stop()), 'not a pickle opcode');
        refuses(() => bin(new Pickle().proto(2).emptyDict()), 'without a STOP');
        refuses(() => bin(new Pickle().proto(2).emptyDict().str('n').int(3).raw(0x73).stop()), 'entry "n" is an int, not a tensor');
        refuses(() => bin(new Pickle().proto(9).stop()), 'protocol 9');
        const b = Buffer.from(good());
        b[listZip(b).entries[0].dataOffset + 5] ^= 0xff;
        refuses(() => openBin(b), 'CRC-32');
        refuses(() => openBin(encodeTorchBin({ w: { dtype: 'F32', shape: [1] } }, { byteorder: 'big' })), 'big');
        refuses(() => openBin(encodeZip([{ name: 'x/other.txt', data: Buffer.from('hi') }])), 'no <folder>/data.pkl');
        // readZipEntries alone: duplicate names.
        const dup = encodeZip([{ name: 'a/data.pkl', data: Buffer.from('x') }, { name: 'a/data.pkl', data: Buffer.from('y') }]);
        refuses(() => readZipEntries(bytesFile(dup), 'dup.bin'), 'appears twice');
        refuses(() => readTorchStateDict(new Uint8Array([0x80, 0x02, 0x29, 0x2e]), 'x.pkl'), 'holds a tuple');
      });

      it('a .bin in a checkpoint folder: the error names the file', () => {
        const dir = tmpDir('named');
        writeTorchBin(join(dir, 'pytorch_model.bin'), { w: { dtype: 'F32', shape: [4, 4], stride: [1, 4] } });
        refuses(() => openWeights(nodeCheckpointFS(dir)), join(dir, 'pytorch_model.bin'), 'not contiguous');
      });
    });
  });
});
