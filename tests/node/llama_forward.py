#!/usr/bin/python3
"""llama_forward.py — a naive float64 Llama forward pass in numpy, the independent side of
tests/ref_llamacpp_gguf.sh.

It reads the *intended* weights that tests/test_gguf.c (case tiny_llama) wrote next to the GGUF
(MODEL.gguf.ref.bin: 8 int32 config, 2 float32, then each matrix row-major (out, in) as used in
y = W x), NOT the GGUF itself. So if retort's writer got a tensor name or the dimension order
wrong, llama.cpp (which reads the GGUF) and this script disagree.

Model: RMSNorm (x / sqrt(mean(x^2) + eps) * w), RoPE on adjacent pairs (x[2i], x[2i+1]) with
theta_i = pos * base^(-2i/head_dim) (llama.cpp's LLAMA_ROPE_TYPE_NORM, used for arch "llama"),
grouped-query attention (query head h reads kv head h // (n_head / n_kv_head)), causal softmax
with scale 1/sqrt(head_dim), SwiGLU FFN down(silu(gate x) * up x), final norm, output matmul.

Usage: llama_forward.py MODEL.gguf.ref.bin 1,2,3 OUT.f32 [neox]
       (writes T x V log-softmax, float32; "neox" rotates half-split pairs instead: a negative
       control that must NOT match llama.cpp on a natively written GGUF)
Not a model implementation for retort: a test oracle only.
"""
import sys

import numpy as np


def load(path):
    raw = open(path, "rb").read()
    cfg = np.frombuffer(raw, dtype="<i4", count=8)
    vocab, dim, n_layers, n_heads, n_kv, ff, ctx, hd = (int(x) for x in cfg)
    eps, base = (float(x) for x in np.frombuffer(raw, dtype="<f4", count=2, offset=32))
    off = 40

    def take(rows, cols):
        nonlocal off
        a = np.frombuffer(raw, dtype="<f4", count=rows * cols, offset=off).astype(np.float64)
        off += rows * cols * 4
        return a.reshape(rows, cols) if rows > 1 else a

    w = {"emb": take(vocab, dim), "layers": []}
    for _ in range(n_layers):
        L = {}
        L["attn_norm"] = take(1, dim)
        L["wq"] = take(n_heads * hd, dim)
        L["wk"] = take(n_kv * hd, dim)
        L["wv"] = take(n_kv * hd, dim)
        L["wo"] = take(dim, n_heads * hd)
        L["ffn_norm"] = take(1, dim)
        L["wg"] = take(ff, dim)
        L["wu"] = take(ff, dim)
        L["wd"] = take(dim, ff)
        w["layers"].append(L)
    w["out_norm"] = take(1, dim)
    w["out"] = take(vocab, dim)
    assert off == len(raw), f"{path}: {len(raw) - off} unread bytes; layout mismatch"
    cfg = dict(vocab=vocab, dim=dim, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv, ff=ff, hd=hd, eps=eps, base=base)
    return cfg, w


def rmsnorm(x, g, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def rope(x, base, neox=False):
    # x: (T, heads, hd); rotate adjacent pairs (x[2i], x[2i+1]), or with neox=True the pairs
    # (x[i], x[i + hd/2]) that HF / GPT-NeoX use (only for the negative control)
    T, _, hd = x.shape
    i = np.arange(hd // 2, dtype=np.float64)
    theta = np.arange(T, dtype=np.float64)[:, None] * base ** (-2.0 * i / hd)[None, :]  # (T, hd/2)
    c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    a, b = (slice(0, hd // 2), slice(hd // 2, hd)) if neox else (slice(0, None, 2), slice(1, None, 2))
    x0, x1 = x[..., a], x[..., b]
    out = np.empty_like(x)
    out[..., a] = x0 * c - x1 * s
    out[..., b] = x0 * s + x1 * c
    return out


def forward(cfg, w, ids, neox=False):
    T, H, KV, hd = len(ids), cfg["n_heads"], cfg["n_kv"], cfg["hd"]
    x = w["emb"][ids]
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    for L in w["layers"]:
        h = rmsnorm(x, L["attn_norm"], cfg["eps"])
        q = rope((h @ L["wq"].T).reshape(T, H, hd), cfg["base"], neox)
        k = rope((h @ L["wk"].T).reshape(T, KV, hd), cfg["base"], neox)
        v = (h @ L["wv"].T).reshape(T, KV, hd)
        out = np.empty((T, H, hd))
        for hh in range(H):
            kh = hh // (H // KV)
            s = q[:, hh, :] @ k[:, kh, :].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            out[:, hh, :] = s @ v[:, kh, :]
        x = x + out.reshape(T, H * hd) @ L["wo"].T
        h = rmsnorm(x, L["ffn_norm"], cfg["eps"])
        g = h @ L["wg"].T
        x = x + ((g / (1.0 + np.exp(-g))) * (h @ L["wu"].T)) @ L["wd"].T
    x = rmsnorm(x, w["out_norm"], cfg["eps"])
    return x @ w["out"].T


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def main():
    if len(sys.argv) not in (4, 5) or (len(sys.argv) == 5 and sys.argv[4] != "neox"):
        sys.exit("usage: llama_forward.py MODEL.gguf.ref.bin ID,ID,... OUT.f32 [neox]")
    cfg, w = load(sys.argv[1])
    ids = [int(t) for t in sys.argv[2].split(",") if t]
    neox = len(sys.argv) == 5
    log_softmax(forward(cfg, w, ids, neox)).astype("<f4").tofile(sys.argv[3])


if __name__ == "__main__":
    main()
