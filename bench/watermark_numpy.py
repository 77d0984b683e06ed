"""watermark_numpy.py — the peer for bench/watermark_bench.sh: KGW (h=1) detection written
with numpy, vectorised over all tokens: SipHash-2-4 on the (prev, token) words, dedup with
np.unique, green count, and the binomial tail via the regularized incomplete beta is not in
numpy, so the p-value is left out (it is O(1) after counting). Same random stream size as the
C bench (uniform ids in [0, 32000)). Prints one JSON line."""
import json, sys, time
import numpy as np

M = np.uint64(0xFFFFFFFFFFFFFFFF)
def rotl(x, b):
    return (x << np.uint64(b)) | (x >> np.uint64(64 - b))

def siphash_words2(k0, k1, m):
    """SipHash-2-4 of 8-byte messages m (uint64 array), key (k0, k1)."""
    v0 = np.full_like(m, k0 ^ 0x736f6d6570736575); v1 = np.full_like(m, k1 ^ 0x646f72616e646f6d)
    v2 = np.full_like(m, k0 ^ 0x6c7967656e657261); v3 = np.full_like(m, k1 ^ 0x7465646279746573)
    def rnd(v0, v1, v2, v3):
        v0 = v0 + v1; v1 = rotl(v1, 13) ^ v0; v0 = rotl(v0, 32)
        v2 = v2 + v3; v3 = rotl(v3, 16) ^ v2
        v0 = v0 + v3; v3 = rotl(v3, 21) ^ v0
        v2 = v2 + v1; v1 = rotl(v1, 17) ^ v2; v2 = rotl(v2, 32)
        return v0, v1, v2, v3
    v3 ^= m
    for _ in range(2): v0, v1, v2, v3 = rnd(v0, v1, v2, v3)
    v0 ^= m
    b = np.uint64(8 << 56)
    v3 ^= b
    for _ in range(2): v0, v1, v2, v3 = rnd(v0, v1, v2, v3)
    v0 ^= b; v2 ^= np.uint64(0xff)
    for _ in range(4): v0, v1, v2, v3 = rnd(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3

def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8000000
    rng = np.random.default_rng(1)
    toks = rng.integers(0, 32000, size=n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        t0 = time.thread_time()
        m = toks[:-1] | (toks[1:] << np.uint64(32))   # (prev, token) as one little-endian word pair
        u = np.unique(m)                               # dedup of score keys
        h = siphash_words2(0x0706050403020100, 0x0f0e0d0c0b0a0908, u)
        green = int(np.count_nonzero(h < np.uint64(1 << 62)))
        dt = time.thread_time() - t0
    print(json.dumps({"bench": "numpy_detect", "scheme": "kgw", "context": 1, "tokens": n, "scored": int(u.size),
                      "green": green, "seconds": round(dt, 3), "tokens_per_cpu_s": n / dt}))

main()
