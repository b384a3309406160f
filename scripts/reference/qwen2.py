#!/usr/bin/env python3
"""Reference forward pass of the Llama / Qwen2 family in numpy, and the qwen2-silu-tiny replica.

Implements what transformers' modeling_llama / modeling_qwen2 compute (RMSNorm, rotate_half RoPE,
grouped-query attention with a causal mask, the SiLU-gated MLP down(silu(gate x) * up x), Qwen2's
q/k/v biases with no o_proj bias, tied or untied lm_head) in float64, and a byte-level BPE
tokenizer as the `tokenizers` library runs a Qwen2 tokenizer.json (added tokens split first, NFC,
the Qwen2 Split regex, ByteLevel without its own regex, BPE by merge rank).

    python3 scripts/reference/qwen2.py check    # proves the forward against transformers' goldens
    python3 scripts/reference/qwen2.py replica  # writes test/fixtures/replicas/qwen2-silu-tiny/

`check` compares with data transformers produced: models/llama-relu-mini/golden.json (last-position
logits and the first layer's hidden state of every prompt), and test/fixtures/llama-silu-mini/
golden.json (greedy ids of every prompt, and the |silu(gate x) * up x| of every layer for its
activation texts, stored as float16). `replica` runs `check` first and refuses to write if it fails.
Needs numpy and the `regex` module only.
"""
import base64
import json
import os
import struct
import sys
import unicodedata

import numpy as np
import regex

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# ------------------------------------------------------------------------------------------------
# safetensors

DTYPES = {'F32': (np.float32, 4), 'F16': (np.float16, 2), 'BF16': (None, 2)}


def read_safetensors(path):
    with open(path, 'rb') as f:
        data = f.read()
    n = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == '__metadata__':
            continue
        a, b = t['data_offsets']
        raw = data[base + a:base + b]
        if t['dtype'] == 'BF16':
            u = np.frombuffer(raw, dtype='<u2').astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(DTYPES[t['dtype']][0]).newbyteorder('<')).astype(np.float32)
        out[name] = arr.reshape(t['shape'])
    return out


def load_weights(folder):
    index = os.path.join(folder, 'model.safetensors.index.json')
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))['weight_map'].values()))
    else:
        files = ['model.safetensors']
    w = {}
    for f in files:
        w.update(read_safetensors(os.path.join(folder, f)))
    return w


def to_bf16(x):
    """float32 -> bfloat16 bits, round to nearest even (as torch's .to(torch.bfloat16))."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def bf16_value(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors, metadata):
    """tensors: name -> bf16 bits (uint16 array), written in name order as torch's save_file does."""
    header, blobs, off = {'__metadata__': metadata}, [], 0
    for name in sorted(tensors):
        b = tensors[name].astype('<u2').tobytes()
        header[name] = {'dtype': 'BF16', 'shape': list(tensors[name].shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


# ------------------------------------------------------------------------------------------------
# The forward pass (modeling_llama / modeling_qwen2), float64


class Config:
    def __init__(self, j):
        self.arch = j['architectures'][0]
        self.qwen2 = self.arch == 'Qwen2ForCausalLM'
        self.d = j['hidden_size']
        self.layers = j['num_hidden_layers']
        self.heads = j['num_attention_heads']
        self.kv = j.get('num_key_value_heads', self.heads)
        self.head_dim = j.get('head_dim') or self.d // self.heads
        self.eps = j['rms_norm_eps']
        rp = j.get('rope_parameters') or {}
        self.theta = rp.get('rope_theta', j.get('rope_theta', 10000.0))
        self.act = j['hidden_act']
        self.tied = j.get('tie_word_embeddings', False)
        # Llama: attention_bias puts a bias on q, k, v and o; Qwen2: q, k, v only.
        self.qkv_bias = self.qwen2 or j.get('attention_bias', False)
        self.o_bias = (not self.qwen2) and j.get('attention_bias', False)
        if self.qwen2 and j.get('use_sliding_window', False):
            raise SystemExit('use_sliding_window is not implemented here')


def rms_norm(x, w, eps):
    return w * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def act_fn(name, x):
    if name in ('silu', 'swish'):
        return x / (1.0 + np.exp(-x))
    if name == 'relu':
        return np.maximum(x, 0.0)
    raise SystemExit(f'activation {name} is not implemented here')


def forward(cfg, W, ids, keep=False, gates=None):
    """Logits of every position (T, vocab); with keep, also the hidden state after layer 0 and
    each layer's |act(gate x) * up x| (and with gates, appends each layer's |act(gate x)| to gates[l])."""
    g = lambda n: W[n].astype(np.float64)
    T, hd = len(ids), cfg.head_dim
    x = g('model.embed_tokens.weight')[ids]
    inv = 1.0 / (cfg.theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = np.cos(emb)[None], np.sin(emb)[None]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    rep = cfg.heads // cfg.kv
    hidden1, inter = None, []
    for l in range(cfg.layers):
        p = f'model.layers.{l}.'
        h = rms_norm(x, g(p + 'input_layernorm.weight'), cfg.eps)

        def proj(name, bias):
            y = h @ g(p + f'self_attn.{name}.weight').T
            return y + g(p + f'self_attn.{name}.bias') if bias else y
        q = proj('q_proj', cfg.qkv_bias).reshape(T, cfg.heads, hd).transpose(1, 0, 2)
        k = proj('k_proj', cfg.qkv_bias).reshape(T, cfg.kv, hd).transpose(1, 0, 2)
        v = proj('v_proj', cfg.qkv_bias).reshape(T, cfg.kv, hd).transpose(1, 0, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k, v = np.repeat(k, rep, axis=0), np.repeat(v, rep, axis=0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(T, cfg.heads * hd) @ g(p + 'self_attn.o_proj.weight').T
        if cfg.o_bias:
            a = a + g(p + 'self_attn.o_proj.bias')
        x = x + a
        h = rms_norm(x, g(p + 'post_attention_layernorm.weight'), cfg.eps)
        gate = act_fn(cfg.act, h @ g(p + 'mlp.gate_proj.weight').T)
        m = gate * (h @ g(p + 'mlp.up_proj.weight').T)
        if gates is not None:
            gates[l].append(np.abs(gate))
        if keep:
            inter.append(np.abs(m))
        x = x + m @ g(p + 'mlp.down_proj.weight').T
        if l == 0:
            hidden1 = x.copy()
    x = rms_norm(x, g('model.norm.weight'), cfg.eps)
    head = g('model.embed_tokens.weight') if cfg.tied else g('lm_head.weight')
    logits = x @ head.T
    return (logits, hidden1, inter) if keep else logits


def greedy(cfg, W, ids, n):
    """n greedy ids after ids (argmax, no EOS stop) and the smallest top-1 minus top-2 gap."""
    ids, out, margin = list(ids), [], np.inf
    for _ in range(n):
        z = forward(cfg, W, ids)[-1]
        top = np.argsort(z)[::-1][:2]
        margin = min(margin, z[top[0]] - z[top[1]])
        out.append(int(top[0]))
        ids.append(int(top[0]))
    return out, float(margin)


def b64f32(a):
    return base64.b64encode(np.asarray(a, dtype='<f4').tobytes()).decode()


def unb64(s, dt):
    return np.frombuffer(base64.b64decode(s), dtype=dt).astype(np.float64)


# ------------------------------------------------------------------------------------------------
# Proof against transformers


def check():
    ok = True
    # 1. Logits: llama-relu-mini (transformers 5.17, float32), the same Llama forward with relu.
    folder = os.path.join(ROOT, 'models', 'llama-relu-mini')
    cfg, W = Config(json.load(open(os.path.join(folder, 'config.json')))), load_weights(folder)
    gold = json.load(open(os.path.join(folder, 'golden.json')))
    worst_l, worst_h = 0.0, 0.0
    for p in gold['prompts']:
        logits, h1, _ = forward(cfg, W, p['ids'], keep=True)
        worst_l = max(worst_l, np.abs(logits[-1] - unb64(p['last_logits_f32_b64'], '<f4')).max())
        worst_h = max(worst_h, np.abs(h1[-1] - unb64(p['first_layer_hidden_last_f32_b64'], '<f4')).max())
    print(f'llama-relu-mini, {len(gold["prompts"])} prompts: last logits within {worst_l:.2e}, first layer hidden within {worst_h:.2e} of transformers')
    ok &= worst_l < 5e-5 and worst_h < 5e-5
    # 2. llama-silu-mini (SiLU): greedy ids, and |silu(gate x) * up x| of every layer (float16).
    folder = os.path.join(ROOT, 'test', 'fixtures', 'llama-silu-mini')
    cfg, W = Config(json.load(open(os.path.join(folder, 'config.json')))), load_weights(folder)
    gold = json.load(open(os.path.join(folder, 'golden.json')))
    same = 0
    for p in gold['prompts']:
        ids, _ = greedy(cfg, W, p['ids'], len(p['greedy_ids']))
        same += ids == p['greedy_ids']
    print(f'llama-silu-mini: greedy ids equal transformers\' for {same} of {len(gold["prompts"])} prompts')
    ok &= same == len(gold['prompts'])
    # The fixture keeps per-layer summaries of |silu(gate x) * up x| over its activation texts
    # (transformers, float32): max and mean over all their tokens, and the largest |silu(gate x)|.
    per = [[] for _ in range(cfg.layers)]
    gates = [[] for _ in range(cfg.layers)]
    for a in gold['activations']:
        _, _, inter = forward(cfg, W, a['ids'], keep=True, gates=gates)
        for l in range(cfg.layers):
            per[l].append(inter[l])
    worst = 0.0
    for l in range(cfg.layers):
        h, ref = np.concatenate(per[l]), gold['magnitude_by_layer'][str(l)]
        for mine, theirs in [(h.max(), ref['max']), (h.mean(), ref['mean']), (max(x.max() for x in gates[l]), ref['gate_silu_abs_max'])]:
            worst = max(worst, abs(mine / theirs - 1))
    print(f'llama-silu-mini, {len(gold["activations"])} texts x {cfg.layers} layers: max and mean |silu(gate x) * up x| and max |silu(gate x)| '
          f'within {worst:.1e} (relative) of transformers\'')
    ok &= worst < 1e-5
    if not ok:
        raise SystemExit('the reference does not reproduce transformers: nothing written')
    return True


# ------------------------------------------------------------------------------------------------
# Byte-level BPE as the tokenizers library runs Qwen2's tokenizer.json

QWEN2_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def bytes_to_unicode():
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


class ByteBPE:
    def __init__(self, tj):
        m = tj['model']
        self.vocab = m['vocab']
        merges = [tuple(x.split(' ')) if isinstance(x, str) else tuple(x) for x in m['merges']]
        self.ranks = {p: i for i, p in enumerate(merges)}
        self.added = {t['content']: t['id'] for t in tj['added_tokens']}
        self.special = {t['id'] for t in tj['added_tokens'] if t['special']}
        self.id_to = {i: s for s, i in self.vocab.items()}
        self.id_to.update({i: s for s, i in self.added.items()})
        self.b2u = bytes_to_unicode()
        self.u2b = {u: b for b, u in self.b2u.items()}
        self.pat = regex.compile(QWEN2_REGEX)
        # Longest added token first where two start at the same place.
        self.split_re = regex.compile('|'.join(regex.escape(t) for t in sorted(self.added, key=len, reverse=True)))

    def bpe(self, word):
        syms = list(word)
        while len(syms) > 1:
            pairs = [(self.ranks.get((syms[i], syms[i + 1]), None), i) for i in range(len(syms) - 1)]
            pairs = [p for p in pairs if p[0] is not None]
            if not pairs:
                break
            r, i = min(pairs)
            syms[i:i + 2] = [syms[i] + syms[i + 1]]
        return [self.vocab[s] for s in syms]

    def encode(self, text):
        out, pos = [], 0
        for m in list(self.split_re.finditer(text)) + [None]:
            seg = text[pos:m.start()] if m else text[pos:]
            seg = unicodedata.normalize('NFC', seg)
            for piece in self.pat.findall(seg):
                out += self.bpe(''.join(self.b2u[b] for b in piece.encode('utf-8')))
            if m:
                out.append(self.added[m.group(0)])
                pos = m.end()
        return out

    def decode(self, ids, skip_special=False):
        text, buf = '', []
        for i in ids:
            if i in self.special or (i in self.id_to and self.id_to[i] in self.added):
                text += bytes(buf).decode('utf-8', errors='replace')
                buf = []
                if not (skip_special and i in self.special):
                    text += self.id_to[i]
            else:
                buf += [self.u2b[c] for c in self.id_to[i]]
        return text + bytes(buf).decode('utf-8', errors='replace')


# ------------------------------------------------------------------------------------------------
# The replica

NAME = 'qwen2-silu-tiny'
OUT = os.path.join(ROOT, 'test', 'fixtures', 'replicas', NAME)
SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']
PROMPTS = ['The meaning of the word', 'In the beginning', 'Once upon a time, in a land far away,', 'def fibonacci(n):\n    return',
           'Sparse activations: 97% of neurons are zero ->', '<|im_start|>user\nÜber café naïve résumé — 東京 🚀<|im_end|>\n<|im_start|>assistant\n']
TOKENIZER_TEXTS = [
    'Hello world', ' Hello world', 'Hello  world', 'hello\nworld\n', '\t tab', '', ' ', '   ', 'a',
    'The quick brown fox jumps over the lazy dog.', "I'm can't won't they'll we've", "I'M CAN'T THEY'LL WE'VE HE'D",
    'numbers 1 12 123 1234 12345 123456', 'ünïcödé naïve café', 'combining e\u0301 a\u0308 (NFC composes them)', '東京都の天気は晴れです',
    'مرحبا بالعالم', 'Привет мир', 'emoji 🚀🔥👍🏽 family 👨\u200d👩\u200d👧', 'zero\u200bwidth', 'rare bytes \x01\x7f',
    '<|endoftext|> literal eos', '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n', 'a<|im_end|>b<|im_start|>',
    '<s> and </s> are plain text here', 'ThisIsAVeryLongWordWithoutSpacesToForceManyMerges', '    def f(x):\n        return x * 2\n',
    'a\r\nb', 'line\n\n\n  indented\r\n\r\n', '\xa0nbsp', '😀😀😀😀😀', 'x=1;y=22;z=333!!!??',
]
CHAT_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant<|im_end|>\\n' }}"
                 "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def qwen2_tokenizer_json():
    """The project's 8,192-id byte-level BPE (llama-silu-mini's vocab and merges) in Qwen2's pipeline."""
    src = json.load(open(os.path.join(ROOT, 'test', 'fixtures', 'llama-silu-mini', 'tokenizer.json')))
    vocab = src['model']['vocab']
    n = len(vocab)
    added = [{'id': n + i, 'content': s, 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': True}
             for i, s in enumerate(SPECIALS)]
    bl = {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False, 'use_regex': False}
    return {
        'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': added,
        'normalizer': {'type': 'NFC'},
        'pre_tokenizer': {'type': 'Sequence', 'pretokenizers': [
            {'type': 'Split', 'pattern': {'Regex': QWEN2_REGEX}, 'behavior': 'Isolated', 'invert': False}, bl]},
        'post_processor': bl, 'decoder': bl,
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': '', 'end_of_word_suffix': '',
                  'fuse_unk': False, 'byte_fallback': False, 'vocab': vocab, 'merges': [' '.join(m) for m in src['model']['merges']]},
    }


def replica():
    check()
    os.makedirs(OUT, exist_ok=True)
    tj = qwen2_tokenizer_json()
    n_tok = len(tj['model']['vocab']) + len(SPECIALS)
    eot = len(tj['model']['vocab'])
    # Qwen2-0.5B's config.json with toy sizes (vocab padded to a multiple of 128, as Qwen pads 151,646 ids to 151,936).
    config = {
        'architectures': ['Qwen2ForCausalLM'], 'attention_dropout': 0.0, 'bos_token_id': eot, 'eos_token_id': eot,
        'hidden_act': 'silu', 'hidden_size': 64, 'initializer_range': 0.02, 'intermediate_size': 192,
        'max_position_embeddings': 131072, 'max_window_layers': 24, 'model_type': 'qwen2', 'num_attention_heads': 4,
        'num_hidden_layers': 2, 'num_key_value_heads': 2, 'rms_norm_eps': 1e-06, 'rope_theta': 1000000.0,
        'sliding_window': 131072, 'tie_word_embeddings': True, 'torch_dtype': 'bfloat16', 'transformers_version': '4.40.1',
        'use_cache': True, 'use_sliding_window': False, 'vocab_size': (n_tok + 127) // 128 * 128,
    }
    cfg = Config(config)
    rng = np.random.default_rng(5)
    d, f, hd, V = cfg.d, config['intermediate_size'], cfg.head_dim, config['vocab_size']
    shapes = {'model.embed_tokens.weight': ((V, d), 0.5), 'model.norm.weight': ((d,), None)}
    for l in range(cfg.layers):
        p = f'model.layers.{l}.'
        shapes.update({
            p + 'input_layernorm.weight': ((d,), None), p + 'post_attention_layernorm.weight': ((d,), None),
            p + 'self_attn.q_proj.weight': ((cfg.heads * hd, d), 0.25), p + 'self_attn.q_proj.bias': ((cfg.heads * hd,), 1.0),
            p + 'self_attn.k_proj.weight': ((cfg.kv * hd, d), 0.25), p + 'self_attn.k_proj.bias': ((cfg.kv * hd,), 1.0),
            p + 'self_attn.v_proj.weight': ((cfg.kv * hd, d), 0.25), p + 'self_attn.v_proj.bias': ((cfg.kv * hd,), 0.5),
            p + 'self_attn.o_proj.weight': ((d, cfg.heads * hd), 0.15),
            p + 'mlp.gate_proj.weight': ((f, d), 0.2), p + 'mlp.up_proj.weight': ((f, d), 0.2), p + 'mlp.down_proj.weight': ((d, f), 0.15),
        })
    bits = {}
    for name, (shape, std) in shapes.items():
        a = 1.0 + 0.1 * rng.standard_normal(shape) if std is None else std * rng.standard_normal(shape)
        if name == 'model.embed_tokens.weight':
            a[n_tok:] *= 0.04  # the padding rows past the tokenizer's ids: small, never the argmax
        bits[name] = to_bf16(a.astype(np.float32))
    W = {k: bf16_value(v).reshape(v.shape) for k, v in bits.items()}
    write_safetensors(os.path.join(OUT, 'model.safetensors'), bits, {'format': 'pt'})
    with open(os.path.join(OUT, 'tokenizer.json'), 'w', encoding='utf-8') as fh:
        json.dump(tj, fh, ensure_ascii=False, indent=2)
    added_decoder = {str(eot + i): {'content': s, 'lstrip': False, 'normalized': False, 'rstrip': False, 'single_word': False, 'special': True}
                     for i, s in enumerate(SPECIALS)}
    tcfg = {'add_prefix_space': False, 'added_tokens_decoder': added_decoder, 'additional_special_tokens': ['<|im_start|>', '<|im_end|>'],
            'bos_token': None, 'chat_template': CHAT_TEMPLATE, 'clean_up_tokenization_spaces': False, 'eos_token': '<|endoftext|>',
            'errors': 'replace', 'model_max_length': 32768, 'pad_token': '<|endoftext|>', 'split_special_tokens': False,
            'tokenizer_class': 'Qwen2Tokenizer', 'unk_token': None}
    for name, obj in [('config.json', config), ('tokenizer_config.json', tcfg),
                      ('generation_config.json', {'bos_token_id': eot, 'do_sample': False, 'eos_token_id': eot, 'max_new_tokens': 2048, 'transformers_version': '4.37.0'})]:
        with open(os.path.join(OUT, name), 'w', encoding='utf-8') as fh:
            json.dump(obj, fh, ensure_ascii=False, indent=2)
            fh.write('\n')

    tok = ByteBPE(tj)
    no_bias = {k: (np.zeros_like(v) if k.endswith('.bias') else v) for k, v in W.items()}
    prompts, bias_effect = [], 0.0
    for text in PROMPTS:
        ids = tok.encode(text)
        logits, h1, _ = forward(cfg, W, ids, keep=True)
        bias_effect = max(bias_effect, np.abs(forward(cfg, no_bias, ids)[-1] - logits[-1]).max())
        g, margin = greedy(cfg, W, ids, 16)
        prompts.append({'text': text, 'ids': ids, 'last_logits_f32_b64': b64f32(logits[-1]), 'first_layer_hidden_last_f32_b64': b64f32(h1[-1]),
                        'greedy_ids': g, 'greedy_text': tok.decode(g), 'greedy_min_margin': margin})
    cases = []
    for text in TOKENIZER_TEXTS:
        ids = tok.encode(text)
        cases.append({'text': text, 'ids': ids, 'ids_no_special': ids, 'decoded': tok.decode(ids), 'decoded_skip_special': tok.decode(ids, True)})
    golden = {
        'model': NAME, 'mirrors': 'Qwen/Qwen2-0.5B layout (Qwen2ForCausalLM, q/k/v biases, tied embeddings, rope_theta 1e6)',
        'dtype_compute': 'float64', 'transformers': 'none: scripts/reference/qwen2.py (numpy), checked against transformers 5.17.0 goldens',
        'tokenizer_reference': 'scripts/reference/qwen2.py ByteBPE (added tokens, NFC, Qwen2 Split regex, ByteLevel, BPE by merge rank)',
        'greedy_tokens': 16, 'prompts': prompts, 'tokenizer': cases,
    }
    with open(os.path.join(OUT, 'golden.json'), 'w', encoding='utf-8') as fh:
        json.dump(golden, fh, ensure_ascii=False, indent=1)
        fh.write('\n')
    print(f'wrote {OUT}: {n_tok} tokenizer ids, vocab_size {V}; smallest greedy margin {min(p["greedy_min_margin"] for p in prompts):.4f}; '
          f'the biases move the last logits by up to {bias_effect:.3f}')


if __name__ == '__main__':
    what = sys.argv[1] if len(sys.argv) > 1 else 'check'
    if what == 'check':
        check()
    elif what == 'replica':
        replica()
    else:
        raise SystemExit(f'usage: {sys.argv[0]} check|replica')
