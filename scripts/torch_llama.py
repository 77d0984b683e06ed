"""torch_llama.py — an independent PyTorch implementation of retort's model, for reference
checks (tests/ref_torch.sh) and the training benchmark (bench/train_vs_torch).

It reads a GGUF file with its own small parser (numpy; not retort's C reader) and builds the
same Llama architecture from PyTorch ops: RMSNorm, RoPE on adjacent pairs, causal grouped-
query attention, SwiGLU, tied or untied output. Run with Debian's /usr/bin/python3 (which
has python3-torch and python3-numpy).

Not a training framework: just enough to compare logits and to time a training step.
"""
import math
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------- GGUF (independent parser)

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def read_gguf(path):
    """Returns (kv: dict, tensors: dict name -> numpy array shaped (rows, cols) / (n,))."""
    data = open(path, "rb").read()
    off = 0

    def take(fmt):
        nonlocal off
        v = struct.unpack_from(fmt, data, off)[0]
        off += struct.calcsize(fmt)
        return v

    def string():
        nonlocal off
        n = take("<Q")
        s = data[off:off + n]
        off += n
        return s.decode("utf-8", errors="surrogateescape")

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et = take("<I")
            n = take("<Q")
            return [value(et) for _ in range(n)]
        return take(_SCALAR[t])

    assert data[:4] == b"GGUF", "not a GGUF file"
    off = 4
    version = take("<I")
    assert version == 3, version
    n_tensors = take("<Q")
    n_kv = take("<Q")
    kv = {}
    for _ in range(n_kv):
        k = string()
        kv[k] = value(take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        nd = take("<I")
        ne = [take("<Q") for _ in range(nd)]
        typ = take("<I")
        toff = take("<Q")
        infos.append((name, ne, typ, toff))
    align = kv.get("general.alignment", 32)
    base = (off + align - 1) // align * align
    tensors = {}
    for name, ne, typ, toff in infos:
        count = int(np.prod(ne))
        dtype = {0: np.float32, 1: np.float16}[typ]
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=base + toff).astype(np.float32)
        tensors[name] = arr.reshape(list(reversed(ne)))  # ne[0] fastest -> last axis
    return kv, tensors


# ---------------------------------------------------------------- model


class Config:
    def __init__(self, dim, n_layers, n_heads, n_kv_heads, ffn_dim, vocab_size, ctx_len,
                 norm_eps=1e-5, rope_base=10000.0, tied=True):
        self.dim, self.n_layers, self.n_heads, self.n_kv_heads = dim, n_layers, n_heads, n_kv_heads
        self.ffn_dim, self.vocab_size, self.ctx_len = ffn_dim, vocab_size, ctx_len
        self.norm_eps, self.rope_base, self.tied = norm_eps, rope_base, tied
        self.head_dim = dim // n_heads


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin):
    # x (B, T, H, hd): rotate adjacent pairs (2i, 2i+1)
    B, T, H, hd = x.shape
    x2 = x.reshape(B, T, H, hd // 2, 2)
    a, b = x2[..., 0], x2[..., 1]
    c, s = cos[:T].view(1, T, 1, hd // 2), sin[:T].view(1, T, 1, hd // 2)
    return torch.stack((a * c - b * s, a * s + b * c), dim=-1).reshape(B, T, H, hd)


class Llama(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        D, F_, V, hd = cfg.dim, cfg.ffn_dim, cfg.vocab_size, cfg.head_dim
        self.tok = nn.Parameter(torch.randn(V, D) * 0.02)
        self.layers = nn.ModuleList()
        for _ in range(cfg.n_layers):
            l = nn.Module()
            l.attn_norm = nn.Parameter(torch.ones(D))
            l.wq = nn.Parameter(torch.randn(cfg.n_heads * hd, D) * 0.02)
            l.wk = nn.Parameter(torch.randn(cfg.n_kv_heads * hd, D) * 0.02)
            l.wv = nn.Parameter(torch.randn(cfg.n_kv_heads * hd, D) * 0.02)
            l.wo = nn.Parameter(torch.randn(D, cfg.n_heads * hd) * 0.02)
            l.ffn_norm = nn.Parameter(torch.ones(D))
            l.w_gate = nn.Parameter(torch.randn(F_, D) * 0.02)
            l.w_up = nn.Parameter(torch.randn(F_, D) * 0.02)
            l.w_down = nn.Parameter(torch.randn(D, F_) * 0.02)
            self.layers.append(l)
        self.out_norm = nn.Parameter(torch.ones(D))
        self.out = None if cfg.tied else nn.Parameter(torch.randn(V, D) * 0.02)
        i = torch.arange(hd // 2, dtype=torch.float64)
        theta = torch.arange(cfg.ctx_len, dtype=torch.float64)[:, None] * cfg.rope_base ** (-2.0 * i / hd)
        self.register_buffer("cos", torch.cos(theta).float())
        self.register_buffer("sin", torch.sin(theta).float())
        mask = torch.full((cfg.ctx_len, cfg.ctx_len), float("-inf")).triu(1)
        self.register_buffer("mask", mask)

    def forward(self, idx):
        cfg = self.cfg
        B, T = idx.shape
        NH, NKV, hd = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        x = self.tok[idx]
        for l in self.layers:
            h = rmsnorm(x, l.attn_norm, cfg.norm_eps)
            q = rope((h @ l.wq.t()).view(B, T, NH, hd), self.cos, self.sin)
            k = rope((h @ l.wk.t()).view(B, T, NKV, hd), self.cos, self.sin)
            v = (h @ l.wv.t()).view(B, T, NKV, hd)
            rep = NH // NKV
            k = k.repeat_interleave(rep, dim=2)
            v = v.repeat_interleave(rep, dim=2)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, hd)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + self.mask[:T, :T]
            y = torch.softmax(att, dim=-1) @ v
            x = x + y.transpose(1, 2).reshape(B, T, NH * hd) @ l.wo.t()
            h = rmsnorm(x, l.ffn_norm, cfg.norm_eps)
            x = x + (F.silu(h @ l.w_gate.t()) * (h @ l.w_up.t())) @ l.w_down.t()
        x = rmsnorm(x, self.out_norm, cfg.norm_eps)
        return x @ (self.tok if self.out is None else self.out).t()


def from_gguf(path):
    kv, t = read_gguf(path)
    assert kv["general.architecture"] == "llama"
    D = kv["llama.embedding_length"]
    cfg = Config(D, kv["llama.block_count"], kv["llama.attention.head_count"],
                 kv.get("llama.attention.head_count_kv", kv["llama.attention.head_count"]),
                 kv["llama.feed_forward_length"], t["token_embd.weight"].shape[0],
                 kv["llama.context_length"], kv.get("llama.attention.layer_norm_rms_epsilon", 1e-5),
                 kv.get("llama.rope.freq_base", 10000.0), "output.weight" not in t)
    m = Llama(cfg)
    with torch.no_grad():
        m.tok.copy_(torch.from_numpy(t["token_embd.weight"]))
        for i, l in enumerate(m.layers):
            p = "blk.%d." % i
            for attr, name in [("attn_norm", "attn_norm"), ("wq", "attn_q"), ("wk", "attn_k"), ("wv", "attn_v"),
                               ("wo", "attn_output"), ("ffn_norm", "ffn_norm"), ("w_gate", "ffn_gate"),
                               ("w_up", "ffn_up"), ("w_down", "ffn_down")]:
                getattr(l, attr).copy_(torch.from_numpy(t[p + name + ".weight"]))
        m.out_norm.copy_(torch.from_numpy(t["output_norm.weight"]))
        if m.out is not None:
            m.out.copy_(torch.from_numpy(t["output.weight"]))
    return m, kv


def main():
    # usage: torch_llama.py logits MODEL.gguf 1,2,3 OUT.f32
    if len(sys.argv) == 5 and sys.argv[1] == "logits":
        m, _ = from_gguf(sys.argv[2])
        ids = torch.tensor([[int(x) for x in sys.argv[3].split(",")]])
        with torch.no_grad():
            out = m(ids)[0].numpy().astype("<f4")
        out.tofile(sys.argv[4])
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
