"""gguf_min.py — a minimal GGUF v3 reader/writer for the reference tests (numpy only).

Written from ggml's GGUF spec (docs/gguf.md): header, key/values, tensor infos, aligned data.
Independent of retort's C reader/writer on purpose: tests use it to build inputs and to pull
raw tensor bytes out of files retort wrote. Not a general library (no big-endian files).
"""
import struct
import numpy as np

# ggml type id -> (block elements, block bytes)
BLOCK = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34), 12: (256, 144), 13: (256, 176),
         14: (256, 210), 30: (1, 2)}
NAMES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8, "q4_k": 12, "q5_k": 13, "q6_k": 14, "bf16": 30}
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B", 10: "<Q", 11: "<q", 12: "<d"}


def _rd_str(b, o):
    n = struct.unpack_from("<Q", b, o)[0]
    return b[o + 8:o + 8 + n].decode("utf-8", "replace"), o + 8 + n


def _rd_val(b, o, t):
    if t == 8:
        return _rd_str(b, o)
    if t == 9:
        et, n = struct.unpack_from("<IQ", b, o)
        o += 12
        out = []
        for _ in range(n):
            v, o = _rd_val(b, o, et)
            out.append(v)
        return out, o
    f = _SCALAR[t]
    return struct.unpack_from(f, b, o)[0], o + struct.calcsize(f)


def read(path):
    """Returns (kv dict, tensors dict name -> (type, ne list, raw bytes))."""
    b = open(path, "rb").read()
    magic, ver, nt, nkv = struct.unpack_from("<4sIQQ", b, 0)
    assert magic == b"GGUF" and ver == 3, (magic, ver)
    o = 24
    kv = {}
    for _ in range(nkv):
        k, o = _rd_str(b, o)
        t = struct.unpack_from("<I", b, o)[0]
        v, o = _rd_val(b, o + 4, t)
        kv[k] = v
    infos = []
    for _ in range(nt):
        name, o = _rd_str(b, o)
        nd = struct.unpack_from("<I", b, o)[0]
        ne = list(struct.unpack_from("<%dQ" % nd, b, o + 4))
        o += 4 + 8 * nd
        t, off = struct.unpack_from("<IQ", b, o)
        o += 12
        infos.append((name, t, ne, off))
    align = kv.get("general.alignment", 32)
    data = (o + align - 1) // align * align
    tensors = {}
    for name, t, ne, off in infos:
        be, bb = BLOCK[t]
        n = int(np.prod(ne))
        nbytes = n // be * bb
        tensors[name] = (t, ne, b[data + off:data + off + nbytes])
    return kv, tensors


def write(path, kv, tensors):
    """kv: list of (key, type id, value) for u32 (4), f32 (6), str (8) values.
    tensors: list of (name, float32 ndarray) written as F32; shape (rows, cols) -> ne [cols, rows]."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)))
    for k, t, v in kv:
        kb = k.encode()
        out += struct.pack("<Q", len(kb)) + kb + struct.pack("<I", t)
        if t == 8:
            vb = v.encode()
            out += struct.pack("<Q", len(vb)) + vb
        else:
            out += struct.pack(_SCALAR[t], v)
    off = 0
    for name, a in tensors:
        nb = name.encode()
        ne = list(a.shape[::-1])
        out += struct.pack("<Q", len(nb)) + nb + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
        out += struct.pack("<IQ", 0, off)
        off += (a.nbytes + 31) // 32 * 32
    out += b"\0" * ((32 - len(out) % 32) % 32)
    for _, a in tensors:
        out += np.ascontiguousarray(a, dtype="<f4").tobytes()
        out += b"\0" * ((32 - a.nbytes % 32) % 32)
    open(path, "wb").write(out)
