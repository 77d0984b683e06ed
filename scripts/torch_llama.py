"""torch_llama.py — an independent PyTorch implementation of retort's models, for reference
checks (tests/ref_torch.sh, tests/ref_arch.sh) and the training benchmark (bench/train_vs_torch).

It reads a GGUF file with its own small parser (numpy; not retort's C reader), or a Hugging
Face folder (config.json + safetensors, own parser; the `safetensors` package is not in
Debian), and builds the model from PyTorch ops: RMSNorm, Q/K/V biases (qwen2), per-head Q/K
RMSNorm (qwen3), RoPE on adjacent pairs (GGUF llama) or on halves (HF's rotate_half; GGUF
qwen2/qwen3) with Llama 3 frequency scaling, causal grouped-query attention with any head
size, SwiGLU, tied or untied output. The HF path follows transformers' conventions (no Q/K
row permutation, HF's llama3 inv_freq formula), so it checks retort's import independently.
Run with Debian's /usr/bin/python3 (which has python3-torch and python3-numpy).

  torch_llama.py logits MODEL.gguf 1,2,3 OUT.f32      logits of a GGUF model (T x V float32)
  torch_llama.py hf-logits DIR 1,2,3 OUT.f32          the same for a Hugging Face folder
  torch_llama.py make-hf DIR ARCH VOCAB SEED [--shards N] [--dtype f32|bf16|f16]
      write a random-weight HF folder: ARCH one of llama, llama3 (rope_scaling llama3),
      mistral (rope_scaling linear), qwen2, qwen3 (head_dim != hidden/heads)

Not a training framework: just enough to compare logits and to time a training step.
"""
import json
import os
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
                 norm_eps=1e-5, rope_base=10000.0, tied=True, head_dim=None, qkv_bias=False,
                 qk_norm=False, rope_half=False, inv_freq=None):
        self.dim, self.n_layers, self.n_heads, self.n_kv_heads = dim, n_layers, n_heads, n_kv_heads
        self.ffn_dim, self.vocab_size, self.ctx_len = ffn_dim, vocab_size, ctx_len
        self.norm_eps, self.rope_base, self.tied = norm_eps, rope_base, tied
        self.head_dim = head_dim or dim // n_heads
        self.qkv_bias, self.qk_norm, self.rope_half = qkv_bias, qk_norm, rope_half
        # inv_freq (hd/2, float64 tensor): default base^(-2i/hd)
        self.inv_freq = inv_freq


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_half(x, cos, sin):
    # x (B, T, H, hd): HF's rotate_half, pairs (i, i + hd/2)
    B, T, H, hd = x.shape
    c, s = cos[:T].view(1, T, 1, hd // 2), sin[:T].view(1, T, 1, hd // 2)
    c, s = torch.cat((c, c), -1), torch.cat((s, s), -1)
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * c + torch.cat((-x2, x1), -1) * s


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
            if cfg.qkv_bias:
                l.bq = nn.Parameter(torch.zeros(cfg.n_heads * hd))
                l.bk = nn.Parameter(torch.zeros(cfg.n_kv_heads * hd))
                l.bv = nn.Parameter(torch.zeros(cfg.n_kv_heads * hd))
            if cfg.qk_norm:
                l.q_norm = nn.Parameter(torch.ones(hd))
                l.k_norm = nn.Parameter(torch.ones(hd))
            l.ffn_norm = nn.Parameter(torch.ones(D))
            l.w_gate = nn.Parameter(torch.randn(F_, D) * 0.02)
            l.w_up = nn.Parameter(torch.randn(F_, D) * 0.02)
            l.w_down = nn.Parameter(torch.randn(D, F_) * 0.02)
            self.layers.append(l)
        self.out_norm = nn.Parameter(torch.ones(D))
        self.out = None if cfg.tied else nn.Parameter(torch.randn(V, D) * 0.02)
        i = torch.arange(hd // 2, dtype=torch.float64)
        inv = cfg.inv_freq if cfg.inv_freq is not None else cfg.rope_base ** (-2.0 * i / hd)
        theta = torch.arange(cfg.ctx_len, dtype=torch.float64)[:, None] * inv
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
            q, k, v = h @ l.wq.t(), h @ l.wk.t(), h @ l.wv.t()
            if cfg.qkv_bias:
                q, k, v = q + l.bq, k + l.bk, v + l.bv
            q, k, v = q.view(B, T, NH, hd), k.view(B, T, NKV, hd), v.view(B, T, NKV, hd)
            if cfg.qk_norm:
                q, k = rmsnorm(q, l.q_norm, cfg.norm_eps), rmsnorm(k, l.k_norm, cfg.norm_eps)
            rot = rope_half if cfg.rope_half else rope
            q, k = rot(q, self.cos, self.sin), rot(k, self.cos, self.sin)
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
    a = kv["general.architecture"]
    assert a in ("llama", "qwen2", "qwen3"), a
    D, NH = kv[a + ".embedding_length"], kv[a + ".attention.head_count"]
    hd = kv.get(a + ".attention.key_length", D // NH)
    inv = None
    if kv.get(a + ".rope.scaling.type") == "linear":  # llama.cpp: freq_scale = 1/factor
        i = torch.arange(hd // 2, dtype=torch.float64)
        inv = kv.get(a + ".rope.freq_base", 10000.0) ** (-2.0 * i / hd) / kv[a + ".rope.scaling.factor"]
    if "rope_freqs.weight" in t:  # llama.cpp's Llama 3 factors: theta divisors
        i = torch.arange(hd // 2, dtype=torch.float64)
        inv = kv.get(a + ".rope.freq_base", 10000.0) ** (-2.0 * i / hd) / torch.from_numpy(
            t["rope_freqs.weight"].astype(np.float64))
    cfg = Config(D, kv[a + ".block_count"], NH, kv.get(a + ".attention.head_count_kv", NH),
                 kv[a + ".feed_forward_length"], t["token_embd.weight"].shape[0],
                 kv[a + ".context_length"], kv.get(a + ".attention.layer_norm_rms_epsilon", 1e-5),
                 kv.get(a + ".rope.freq_base", 10000.0), "output.weight" not in t, head_dim=hd,
                 qkv_bias="blk.0.attn_q.bias" in t, qk_norm="blk.0.attn_q_norm.weight" in t,
                 rope_half=a != "llama", inv_freq=inv)
    m = Llama(cfg)
    names = [("attn_norm", "attn_norm.weight"), ("wq", "attn_q.weight"), ("wk", "attn_k.weight"),
             ("wv", "attn_v.weight"), ("wo", "attn_output.weight"), ("ffn_norm", "ffn_norm.weight"),
             ("w_gate", "ffn_gate.weight"), ("w_up", "ffn_up.weight"), ("w_down", "ffn_down.weight")]
    if cfg.qkv_bias:
        names += [("bq", "attn_q.bias"), ("bk", "attn_k.bias"), ("bv", "attn_v.bias")]
    if cfg.qk_norm:
        names += [("q_norm", "attn_q_norm.weight"), ("k_norm", "attn_k_norm.weight")]
    with torch.no_grad():
        m.tok.copy_(torch.from_numpy(t["token_embd.weight"]))
        for i, l in enumerate(m.layers):
            for attr, name in names:
                getattr(l, attr).copy_(torch.from_numpy(t["blk.%d.%s" % (i, name)]))
        m.out_norm.copy_(torch.from_numpy(t["output_norm.weight"]))
        if m.out is not None:
            m.out.copy_(torch.from_numpy(t["output.weight"]))
    return m, kv


# ---------------------------------------------------------------- Hugging Face folders

_ST_DTYPES = {"F32": np.float32, "F16": np.float16}


def read_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack_from("<Q", data, 0)[0]
    hdr = json.loads(data[8:8 + n])
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        raw = data[8 + n + b:8 + n + en]
        if e["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=_ST_DTYPES[e["dtype"]]).astype(np.float32)
        out[name] = arr.reshape(e["shape"])
    return out


def write_safetensors(path, tensors, dtype="f32"):
    """tensors: dict name -> float32 numpy array. The byte layout of the format, by hand."""
    hdr, blobs, off = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        if dtype == "bf16":
            u = a.view(np.uint32)
            raw = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()  # RNE
            st = "BF16"
        elif dtype == "f16":
            raw, st = a.astype("<f2").tobytes(), "F16"
        else:
            raw, st = a.astype("<f4").tobytes(), "F32"
        hdr[name] = {"dtype": st, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hdr["__metadata__"] = {"format": "pt"}
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_hf_tensors(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        t = {}
        for shard in sorted(set(json.load(open(idx))["weight_map"].values())):
            t.update(read_safetensors(os.path.join(d, shard)))
        return t
    return read_safetensors(os.path.join(d, "model.safetensors"))


def hf_inv_freq(c, hd):
    """transformers' default and llama3 inverse frequencies (modeling_rope_utils), float64."""
    base = c.get("rope_theta", 10000.0)
    inv = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    rs = c.get("rope_scaling") or {}
    if rs.get("rope_type", rs.get("type")) == "linear":
        inv = inv / rs["factor"]
    if rs.get("rope_type", rs.get("type")) == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        lo_wl, hi_wl = old / lo, old / hi
        wl = 2 * math.pi / inv
        inv_l = torch.where(wl > lo_wl, inv / factor, inv)
        smooth = (old / wl - lo) / (hi - lo)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wl < hi_wl) & ~(wl > lo_wl)
        inv = torch.where(medium, smoothed, inv_l)
    return inv


def from_hf(d):
    c = json.load(open(os.path.join(d, "config.json")))
    t = read_hf_tensors(d)
    D, NH = c["hidden_size"], c["num_attention_heads"]
    hd = c.get("head_dim") or D // NH
    mt = c["model_type"]
    tied = c.get("tie_word_embeddings", False) or "lm_head.weight" not in t
    cfg = Config(D, c["num_hidden_layers"], NH, c.get("num_key_value_heads", NH), c["intermediate_size"],
                 c["vocab_size"], c["max_position_embeddings"], c.get("rms_norm_eps", 1e-6),
                 c.get("rope_theta", 10000.0), tied, head_dim=hd,
                 qkv_bias=mt == "qwen2" or bool(c.get("attention_bias")), qk_norm=mt == "qwen3",
                 rope_half=True, inv_freq=hf_inv_freq(c, hd))
    m = Llama(cfg)
    names = [("attn_norm", "input_layernorm.weight"), ("wq", "self_attn.q_proj.weight"),
             ("wk", "self_attn.k_proj.weight"), ("wv", "self_attn.v_proj.weight"),
             ("wo", "self_attn.o_proj.weight"), ("ffn_norm", "post_attention_layernorm.weight"),
             ("w_gate", "mlp.gate_proj.weight"), ("w_up", "mlp.up_proj.weight"),
             ("w_down", "mlp.down_proj.weight")]
    if cfg.qkv_bias:
        names += [("bq", "self_attn.q_proj.bias"), ("bk", "self_attn.k_proj.bias"), ("bv", "self_attn.v_proj.bias")]
    if cfg.qk_norm:
        names += [("q_norm", "self_attn.q_norm.weight"), ("k_norm", "self_attn.k_norm.weight")]
    with torch.no_grad():
        m.tok.copy_(torch.from_numpy(t["model.embed_tokens.weight"]))
        for i, l in enumerate(m.layers):
            for attr, name in names:
                getattr(l, attr).copy_(torch.from_numpy(t["model.layers.%d.%s" % (i, name)]))
        m.out_norm.copy_(torch.from_numpy(t["model.norm.weight"]))
        if m.out is not None:
            m.out.copy_(torch.from_numpy(t["lm_head.weight"]))
    return m, c


def make_hf(d, arch, vocab, seed, shards=1, dtype="f32"):
    """A random-weight HF folder of the given family (small, but every feature non-trivial)."""
    g = torch.Generator().manual_seed(seed)
    mt = {"llama3": "llama"}.get(arch, arch)
    c = {"architectures": [{"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                            "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}[mt]],
         "model_type": mt, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "intermediate_size": 96, "vocab_size": vocab,
         "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
         "tie_word_embeddings": arch in ("qwen2", "llama3"), "hidden_act": "silu", "torch_dtype": "float32"}
    if arch == "llama3":
        c.update(rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 64})
    if arch == "qwen3":
        c.update(head_dim=24, num_attention_heads=4, num_key_value_heads=1)  # 4*24 != 64
    if arch == "mistral":  # with linear RoPE scaling (position interpolation)
        c.update(sliding_window=None, num_key_value_heads=1, rope_scaling={"rope_type": "linear", "factor": 4.0})
    if arch == "qwen2":
        c.update(use_sliding_window=False, sliding_window=4096)
    D, NH, NKV, F_ = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["intermediate_size"]
    hd = c.get("head_dim") or D // NH

    def r(*shape, std=0.1):
        return (torch.randn(*shape, generator=g) * std).numpy()

    t = {"model.embed_tokens.weight": r(vocab, D, std=0.5)}
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i
        t[p + "input_layernorm.weight"] = 1 + r(D)
        t[p + "self_attn.q_proj.weight"] = r(NH * hd, D, std=0.3)
        t[p + "self_attn.k_proj.weight"] = r(NKV * hd, D, std=0.3)
        t[p + "self_attn.v_proj.weight"] = r(NKV * hd, D, std=0.3)
        if mt == "qwen2":
            t[p + "self_attn.q_proj.bias"] = r(NH * hd, std=0.5)
            t[p + "self_attn.k_proj.bias"] = r(NKV * hd, std=0.5)
            t[p + "self_attn.v_proj.bias"] = r(NKV * hd, std=0.5)
        if mt == "qwen3":
            t[p + "self_attn.q_norm.weight"] = 1 + r(hd, std=0.3)
            t[p + "self_attn.k_norm.weight"] = 1 + r(hd, std=0.3)
        t[p + "self_attn.o_proj.weight"] = r(D, NH * hd)
        t[p + "post_attention_layernorm.weight"] = 1 + r(D)
        t[p + "mlp.gate_proj.weight"] = r(F_, D)
        t[p + "mlp.up_proj.weight"] = r(F_, D)
        t[p + "mlp.down_proj.weight"] = r(D, F_)
    t["model.norm.weight"] = 1 + r(D)
    if not c["tie_word_embeddings"]:
        t["lm_head.weight"] = r(vocab, D, std=0.3)
    os.makedirs(d, exist_ok=True)
    json.dump(c, open(os.path.join(d, "config.json"), "w"), indent=2)
    if shards <= 1:
        write_safetensors(os.path.join(d, "model.safetensors"), t, dtype)
        return
    names = list(t)
    wm = {}
    for s_ in range(shards):
        fn = "model-%05d-of-%05d.safetensors" % (s_ + 1, shards)
        part = {n: t[n] for n in names[s_::shards]}
        write_safetensors(os.path.join(d, fn), part, dtype)
        wm.update({n: fn for n in part})
    json.dump({"metadata": {}, "weight_map": wm}, open(os.path.join(d, "model.safetensors.index.json"), "w"))


def main():
    # usage: torch_llama.py logits MODEL.gguf 1,2,3 OUT.f32
    if len(sys.argv) >= 6 and sys.argv[1] == "make-hf":
        a = sys.argv
        shards = int(a[a.index("--shards") + 1]) if "--shards" in a else 1
        dtype = a[a.index("--dtype") + 1] if "--dtype" in a else "f32"
        make_hf(a[2], a[3], int(a[4]), int(a[5]), shards, dtype)
        return 0
    if len(sys.argv) == 5 and sys.argv[1] in ("logits", "hf-logits"):
        m, _ = (from_gguf if sys.argv[1] == "logits" else from_hf)(sys.argv[2])
        ids = torch.tensor([[int(x) for x in sys.argv[3].split(",")]])
        with torch.no_grad():
            out = m(ids)[0].numpy().astype("<f4")
        out.tofile(sys.argv[4])
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
