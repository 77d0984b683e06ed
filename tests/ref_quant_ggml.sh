#!/usr/bin/env bash
# ref_quant_ggml.sh — retort's encoders and decoders against llama.cpp's own: the prebuilt
# libggml-base.so that node-llama-cpp 3.21.1 ships exports ggml_quantize_chunk (which, with no
# importance matrix, runs quantize_row_*_ref — what llama-quantize writes) and dequantize_row_*.
# Loaded with ctypes from /usr/bin/python3.
#   1. `retort quantize --type T` of a GGUF holding awkward F32 tensors (normal, heavy-tailed,
#      all-zero blocks, one-hot blocks, constant rows, tiny and huge magnitudes, subnormals)
#      gives tensor bytes IDENTICAL to ggml_quantize_chunk's, for q8_0, q4_0, q4_K, q5_K, q6_K,
#      f16 and bf16; 1-D tensors stay f32; general.file_type is llama.cpp's.
#   2. `retort quantize --type f32` of each quantized file (i.e. retort's decoder) gives floats
#      IDENTICAL to ggml's dequantize_row_* / *_to_fp32_row on the same bytes.
# Prints SKIP and exits 0 when the library or numpy is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
LIB=tests/node/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so
if [ ! -f "$LIB" ]; then echo "SKIP ggml quantizer parity: $LIB missing (tests/node/node_modules)"; exit 0; fi
if ! "$PY" -c 'import numpy' >/dev/null 2>&1; then echo "SKIP ggml quantizer parity: $PY has no numpy"; exit 0; fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/retort-ref-quant-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$PY" - "$tmp/in.gguf" <<'PY'
import sys, numpy as np
sys.path.insert(0, "tests/py")
import gguf_min
rng = np.random.default_rng(7)
def rows(k):  # k rows of 512
    return np.zeros((k, 512), np.float32)
a = rng.standard_normal((24, 512)).astype(np.float32) * 0.02            # weights-like
b = rng.standard_t(2, (16, 512)).astype(np.float32)                     # heavy tails
c = rows(8)
c[0, 5] = 1.0; c[1, 100] = -3.0; c[2, :] = 0.5; c[3, :] = -2.5          # one-hot, constant
c[4, :32] = 1e-30; c[5] = rng.standard_normal(512) * 1e-6               # subnormal-ish, tiny
c[6] = rng.standard_normal(512) * 3e4                                   # near the f16 range
c[7, ::2] = rng.uniform(0, 1, 256); c[7, 1::2] = -c[7, ::2] * 0.999     # ties-ish
d = rng.uniform(-1, 1, (4, 256)).astype(np.float32) + 0.75              # all positive-ish (mins)
e = (rng.integers(-8, 8, (4, 512)) * 0.125).astype(np.float32)          # exact grid values
f = rng.standard_normal((3, 96)).astype(np.float32)                     # rows not a multiple of 256
g = rng.standard_normal((2, 40)).astype(np.float32)                     # nor of 32
norm = (1 + 0.1 * rng.standard_normal(512)).astype(np.float32)
gguf_min.write(sys.argv[1], [("general.architecture", 8, "test"), ("test.value", 4, 42)],
               [("a.weight", a), ("b.weight", b), ("c.weight", c), ("d.weight", d), ("e.weight", e),
                ("f.weight", f), ("g.weight", g), ("n.weight", norm)])
PY
for t in q8_0 q4_0 q4_k q5_k q6_k f16 bf16; do
  "$BUILD/retort" quantize --quiet --type $t "$tmp/in.gguf" "$tmp/$t.gguf"
  "$BUILD/retort" quantize --quiet --type f32 "$tmp/$t.gguf" "$tmp/$t.deq.gguf"
done
"$PY" - "$tmp" "$LIB" <<'PY'
import sys, ctypes, numpy as np
sys.path.insert(0, "tests/py")
import gguf_min
tmp, lib = sys.argv[1], sys.argv[2]
L = ctypes.CDLL(lib)
L.ggml_quantize_chunk.restype = ctypes.c_size_t
L.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                  ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
deq = {8: "dequantize_row_q8_0", 2: "dequantize_row_q4_0", 12: "dequantize_row_q4_K",
       13: "dequantize_row_q5_K", 14: "dequantize_row_q6_K", 1: "ggml_fp16_to_fp32_row", 30: "ggml_bf16_to_fp32_row"}
ftype = {"q8_0": 7, "q4_0": 2, "q4_k": 14, "q5_k": 16, "q6_k": 18, "f16": 1, "bf16": 32}
_, src = gguf_min.read(tmp + "/in.gguf")
fails = 0
for name_t, tid in [("q8_0", 8), ("q4_0", 2), ("q4_k", 12), ("q5_k", 13), ("q6_k", 14), ("f16", 1), ("bf16", 30)]:
    kv, q = gguf_min.read("%s/%s.gguf" % (tmp, name_t))
    _, dq = gguf_min.read("%s/%s.deq.gguf" % (tmp, name_t))
    assert kv["general.file_type"] == ftype[name_t] and kv["test.value"] == 42, kv
    nblk = nmatch = 0
    for name, (st, ne, raw) in src.items():
        x = np.frombuffer(raw, "<f4").copy()
        qt, qne, qraw = q[name]
        cols = ne[0]
        if len(ne) == 1:
            if not (qt == 0 and qraw == raw):
                print("  %s %s: 1-D tensor not kept f32" % (name_t, name)); fails += 1
            continue
        be, bb = gguf_min.BLOCK[tid]
        exp_t = tid if cols % be == 0 else (8 if cols % 32 == 0 else 1)
        if qt != exp_t:
            print("  %s %s: type %d, expected %d" % (name_t, name, qt, exp_t)); fails += 1; continue
        rows = len(x) // cols
        be, bb = gguf_min.BLOCK[qt]
        ref = np.zeros(rows * cols // be * bb, np.uint8)
        n = L.ggml_quantize_chunk(qt, x.ctypes.data, ref.ctypes.data, 0, rows, cols, None)
        assert n == ref.size and len(qraw) == n, (n, ref.size, len(qraw))
        got = np.frombuffer(qraw, np.uint8)
        blocks_eq = (got.reshape(-1, bb) == ref.reshape(-1, bb)).all(1)
        nblk += blocks_eq.size; nmatch += int(blocks_eq.sum())
        # the decoder: retort's f32 re-export vs ggml's dequantize on the same bytes
        fn = getattr(L, deq[qt]); fn.restype = None
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        y = np.zeros(rows * cols, np.float32)
        buf = np.frombuffer(qraw, np.uint8).copy()
        fn(buf.ctypes.data, y.ctypes.data, rows * cols)
        dt, _, draw = dq[name]
        yr = np.frombuffer(draw, "<f4")
        deq_same = dt == 0 and yr.tobytes() == y.tobytes()
        if not blocks_eq.all() or not deq_same:
            bad = np.nonzero(~blocks_eq)[0][:3]
            print("  %-5s %-9s blocks identical %d/%d (first differing %s), decode identical %s"
                  % (name_t, name, blocks_eq.sum(), blocks_eq.size, list(bad), deq_same))
            fails += 1
    print("%-5s: %d/%d blocks identical to ggml_quantize_chunk; decoding identical to ggml's" % (name_t, nmatch, nblk)
          if nmatch == nblk else "%-5s: %d/%d blocks identical" % (name_t, nmatch, nblk))
sys.exit(1 if fails else 0)
PY
