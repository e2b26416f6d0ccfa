#!/usr/bin/env python3
"""PyTorch side of the side-by-side benchmark (bench/side-by-side.ts runs it).

Reads what the runner wrote (a Hugging Face LLaMA checkpoint and PEFT adapter as
safetensors, token ids as JSON, gradient shards as raw float32) and times the same
computation tda-lab does:

  grads    per-example LoRA gradients, three ways:
             loop  one forward/backward per example (as DataInf does)
             vmap  functorch's vmap(grad(loss)) over the examples of a batch
             bmm   per-example copies of the LoRA matrices applied with bmm, so one
                   backward of the summed loss yields every example's gradient
  graddot  scores test . train over streamed shards
  datainf  DataInf (damping pass, transform pass, scoring pass) over streamed shards

Prints one JSON object on stdout. Written for Debian's python3-torch (1.13, functorch);
no other dependencies than numpy. The model is written out here (no transformers):
RMSNorm, rotate-half RoPE, grouped-query attention, SwiGLU, LoRA (x A^T) B^T * alpha/r,
loss = mean next-token cross-entropy over the response tokens, as in tda-lab.
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


# ---------------------------------------------------------------- files

def read_safetensors(path):
    """Every tensor of one file as float32 (F32, BF16 and F16 are widened)."""
    with open(path, 'rb') as f:
        (n,) = struct.unpack('<Q', f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == '__metadata__':
                continue
            lo, hi = info['data_offsets']
            f.seek(base + lo)
            raw = f.read(hi - lo)
            if info['dtype'] == 'F32':
                arr = np.frombuffer(raw, dtype='<f4').copy()
            elif info['dtype'] == 'BF16':
                arr = (np.frombuffer(raw, dtype='<u2').astype(np.uint32) << 16).view(np.float32)
            elif info['dtype'] == 'F16':
                arr = np.frombuffer(raw, dtype='<f2').astype(np.float32)
            else:
                raise SystemExit(f'{path}: {name}: only F32, BF16 and F16 are supported here, got {info["dtype"]}')
            out[name] = torch.from_numpy(arr.reshape(info['shape']))
    return out


def read_checkpoint(model_dir):
    """model.safetensors, or the shards listed in model.safetensors.index.json."""
    index = os.path.join(model_dir, 'model.safetensors.index.json')
    if not os.path.exists(index):
        return read_safetensors(os.path.join(model_dir, 'model.safetensors'))
    with open(index) as f:
        shard_files = sorted(set(json.load(f)['weight_map'].values()))
    out = {}
    for shard in shard_files:
        out.update(read_safetensors(os.path.join(model_dir, shard)))
    return out


def blas_library():
    """The BLAS library torch's process has mapped (netlib reference BLAS or OpenBLAS)."""
    try:
        with open('/proc/self/maps') as f:
            libs = {line.split()[-1] for line in f if 'libblas' in line or 'openblas' in line}
        return ', '.join(sorted(libs)) or 'unknown'
    except OSError:
        return 'unknown'


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- model

class Llama:
    def __init__(self, model_dir, adapter_dir):
        with open(os.path.join(model_dir, 'config.json')) as f:
            c = json.load(f)
        self.H = c['hidden_size']
        self.L = c['num_hidden_layers']
        self.nh = c['num_attention_heads']
        self.nkv = c.get('num_key_value_heads', self.nh)
        self.d = c.get('head_dim', self.H // self.nh)
        self.eps = c['rms_norm_eps']
        self.theta = c.get('rope_theta', 10000.0)
        w = read_checkpoint(model_dir)
        self.w = {k: v.contiguous() for k, v in w.items()}
        if 'lm_head.weight' not in self.w:
            self.w['lm_head.weight'] = self.w['model.embed_tokens.weight']
        with open(os.path.join(adapter_dir, 'adapter_config.json')) as f:
            a = json.load(f)
        self.r = a['r']
        self.scaling = a['lora_alpha'] / (math.sqrt(self.r) if a.get('use_rslora') else self.r)
        ad = read_safetensors(os.path.join(adapter_dir, 'adapter_model.safetensors'))
        # Module paths in tda-lab's order: layer, then q, k, v, o, gate, up, down.
        order = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']
        paths = sorted({k[len('base_model.model.'):k.index('.lora_')] for k in ad},
                       key=lambda p: (int(p.split('.')[2]), order.index(p.split('.')[-1])))
        self.paths = paths
        self.lora = {p: (ad[f'base_model.model.{p}.lora_A.weight'], ad[f'base_model.model.{p}.lora_B.weight']) for p in paths}

    def rope(self, T):
        inv = 1.0 / (self.theta ** (torch.arange(0, self.d, 2, dtype=torch.float32) / self.d))
        f = torch.outer(torch.arange(T, dtype=torch.float32), inv)
        emb = torch.cat([f, f], dim=-1)
        return emb.cos(), emb.sin()


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def forward_losses(m, ids, prompt, lora, per_example):
    """Per-example losses [B] for ids [B, T] (all with the same prompt length).

    lora maps a module path to (A, B): [r, in] / [out, r] shared, or [B, r, in] /
    [B, out, r] per-example copies (applied with bmm) when per_example is set.
    """
    B, T = ids.shape
    w = m.w
    cos, sin = m.rope(T)
    causal = torch.full((T, T), float('-inf')).triu(1)
    h = w['model.embed_tokens.weight'][ids]  # [B, T, H]
    for l in range(m.L):
        pre = f'model.layers.{l}.'

        def lin(x, name):
            path = pre + name
            y = F.linear(x, w[path + '.weight'], w.get(path + '.bias'))
            if path in lora:
                a, b = lora[path]
                if per_example:
                    y = y + torch.bmm(torch.bmm(x, a.transpose(1, 2)), b.transpose(1, 2)) * m.scaling
                else:
                    y = y + F.linear(F.linear(x, a), b) * m.scaling
            return y

        x = rms(h, w[pre + 'input_layernorm.weight'], m.eps)
        q = lin(x, 'self_attn.q_proj').view(B, T, m.nh, m.d).transpose(1, 2)
        k = lin(x, 'self_attn.k_proj').view(B, T, m.nkv, m.d).transpose(1, 2)
        v = lin(x, 'self_attn.v_proj').view(B, T, m.nkv, m.d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if m.nkv != m.nh:
            k = k.repeat_interleave(m.nh // m.nkv, dim=1)
            v = v.repeat_interleave(m.nh // m.nkv, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(m.d) + causal, dim=-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, m.nh * m.d)
        h = h + lin(o, 'self_attn.o_proj')
        y = rms(h, w[pre + 'post_attention_layernorm.weight'], m.eps)
        h = h + lin(F.silu(lin(y, 'mlp.gate_proj')) * lin(y, 'mlp.up_proj'), 'mlp.down_proj')
    h = rms(h, w['model.norm.weight'], m.eps)
    # Only the counted positions reach the LM head: position t predicts token t + 1.
    sel = h[:, prompt - 1:T - 1]
    logits = F.linear(sel, w['lm_head.weight'])
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, prompt:].reshape(-1), reduction='none')
    return ce.view(B, -1).mean(1)


def grads_loop(m, ids, prompt):
    """One forward/backward per example."""
    params = {p: (a.clone().requires_grad_(), b.clone().requires_grad_()) for p, (a, b) in m.lora.items()}
    out = []
    for i in range(ids.shape[0]):
        loss = forward_losses(m, ids[i:i + 1], prompt, params, False)[0]
        gs = torch.autograd.grad(loss, [t for p in m.paths for t in params[p]])
        out.append(torch.cat([g.reshape(-1) for g in gs]))
    return torch.stack(out)


def grads_bmm(m, ids, prompt):
    """Per-example copies of A and B applied with bmm; one backward gives every example's gradient."""
    B = ids.shape[0]
    params = {p: (a.expand(B, *a.shape).clone().requires_grad_(), b.expand(B, *b.shape).clone().requires_grad_()) for p, (a, b) in m.lora.items()}
    losses = forward_losses(m, ids, prompt, params, True)
    flat = [t for p in m.paths for t in params[p]]
    gs = torch.autograd.grad(losses.sum(), flat)
    return torch.cat([g.reshape(B, -1) for g in gs], dim=1)


def grads_vmap(m, ids, prompt):
    """functorch: vmap over examples of grad of one example's loss."""
    from functorch import grad, vmap

    flat = tuple(t for p in m.paths for t in m.lora[p])

    def loss_one(params, row):
        lora = {p: (params[2 * i], params[2 * i + 1]) for i, p in enumerate(m.paths)}
        return forward_losses(m, row.unsqueeze(0), prompt, lora, False)[0]

    gs = vmap(grad(loss_one), in_dims=(None, 0))(flat, ids)
    return torch.cat([g.reshape(ids.shape[0], -1) for g in gs], dim=1)


METHODS = {'loop': grads_loop, 'vmap': grads_vmap, 'bmm': grads_bmm}


def run_grads(a):
    m = Llama(a.model, a.adapter)
    with open(a.data) as f:
        data = json.load(f)
    ids_all = torch.tensor(data['input_ids'], dtype=torch.long)
    prompt = data['prompt_length']
    out = {'blas': blas_library(), 'threads': torch.get_num_threads(), 'torch': torch.__version__, 'methods': {}}
    for name in a.methods.split(','):
        fn = METHODS[name]
        bs = a.batch_size
        if a.warmup:
            fn(m, ids_all[:bs], prompt)  # warm-up
        n = min(a.examples, ids_all.shape[0])
        t0 = time.perf_counter()
        first = None
        for s in range(0, n, bs):
            g = fn(m, ids_all[s:s + bs], prompt)
            if first is None:
                first = g
        sec = time.perf_counter() - t0
        out['methods'][name] = {'examples': n, 'seconds': sec, 'examples_per_s': n / sec}
        if a.dump and name == a.methods.split(',')[0]:
            first[: a.dump_examples].contiguous().numpy().astype('<f4').tofile(a.dump)
    out['peak_rss_mb'] = peak_rss_mb()
    print(json.dumps(out))


# ---------------------------------------------------------------- scoring

def shards(d):
    with open(os.path.join(d, 'meta.json')) as f:
        meta = json.load(f)
    return meta


_buffer = None


def read_shard(d, meta, k):
    """Shard k as a [rows, dim] tensor over one reused buffer (valid until the next read), as tda-lab's side does."""
    global _buffer
    m = meta['shards'][k]
    size = m['rows'] * meta['dim']
    if _buffer is None or _buffer.size < size:
        _buffer = np.empty(max(s['rows'] for s in meta['shards']) * meta['dim'], dtype='<f4')
    view = _buffer[:size]
    with open(os.path.join(d, m['file']), 'rb') as f:
        if f.readinto(memoryview(view).cast('B')) != size * 4:
            raise SystemExit(f'{m["file"]}: short read')
    return torch.from_numpy(view.reshape(m['rows'], meta['dim']))


def run_scoring(a):
    meta = shards(a.shards)
    if a.max_shards:
        meta['shards'] = meta['shards'][:a.max_shards]
        meta['n'] = sum(s['rows'] for s in meta['shards'])
    D, n = meta['dim'], meta['n']
    test = torch.from_numpy(np.fromfile(os.path.join(a.shards, meta['test']), dtype='<f4').reshape(meta['n_test'], D))
    t0 = time.perf_counter()
    if a.mode == 'datainf':
        # Pass 1: damping lambda = 0.1 * mean(g^2) (one block). Squared row norms without
        # temporaries, kept for pass 2; their sum in float64 (a single float32 sum of 1e9
        # squares is off by ~1e-3, and every score scales with 1 / lambda).
        norms = []
        ss = 0.0
        for k in range(len(meta['shards'])):
            g = read_shard(a.shards, meta, k)
            rn = torch.linalg.vector_norm(g, dim=1) ** 2
            norms.append(rn)
            ss += float(rn.double().sum())
        lam = 0.1 * ss / (n * D)
        # Pass 2: v = (g_q - (1/n) sum_i g_i (g_i . g_q) / (lambda + |g_i|^2)) / lambda.
        acc = torch.zeros_like(test)
        for k in range(len(meta['shards'])):
            g = read_shard(a.shards, meta, k)
            coef = (test @ g.T) / (lam + norms[k])
            acc += coef @ g
        v = (test - acc / n) / lam
    else:
        v = test
    scores = torch.empty(meta['n_test'], n)
    start = 0
    for k in range(len(meta['shards'])):
        g = read_shard(a.shards, meta, k)
        scores[:, start:start + g.shape[0]] = v @ g.T
        start += g.shape[0]
    sec = time.perf_counter() - t0
    out = {'blas': blas_library(), 'threads': torch.get_num_threads(), 'torch': torch.__version__, 'seconds': sec, 'n_train': n,
           'pairs_per_s': meta['n_test'] * n / sec, 'peak_rss_mb': peak_rss_mb()}
    if a.dump:
        scores.numpy().astype('<f4').tofile(a.dump)
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('mode', choices=['grads', 'graddot', 'datainf'])
    p.add_argument('--threads', type=int, default=os.cpu_count())
    p.add_argument('--model')
    p.add_argument('--adapter')
    p.add_argument('--data', help='JSON {input_ids: [[...]], prompt_length}')
    p.add_argument('--examples', type=int, default=16)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--methods', default='bmm,vmap,loop')
    p.add_argument('--warmup', type=int, default=1, help='1: one untimed batch first (0 for large models)')
    p.add_argument('--shards', help='directory with meta.json, test and train shards (raw float32)')
    p.add_argument('--max-shards', type=int, default=0, help='use only the first k training shards')
    p.add_argument('--dump', help='write the first results as raw float32 here (for the runner to compare)')
    p.add_argument('--dump-examples', type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.mode == 'grads':
        run_grads(a)
    else:
        run_scoring(a)


if __name__ == '__main__':
    sys.exit(main())
