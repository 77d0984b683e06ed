#!/usr/bin/env python3
"""bench/mpi_model.py — the step-time model of data-parallel training on K machines
(docs/mpi.md): compute 6*P*tokens/F per machine, plus a ring allreduce of the fp32 gradients,
2(K-1)/K * 4P / BW + 2(K-1) * alpha per bucket (retort: 4 Mi-float = 16 MiB buckets, issued
together), plus with ZeRO-1 an allgather of the parameters, (K-1)/K * 4P / BW + (K-1) * alpha.
Nothing overlaps (retort does not overlap the allreduce with the backward pass; docs/mpi.md).

Prints, per model size and network, the step time and the speed-up over one machine for a fixed
global batch (strong scaling), and the K beyond which doubling the machines gains < 10%.
Usage: python3 bench/mpi_model.py [F_flops_per_machine] [global_batch_tokens]
"""
import math
import sys

F = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0e12    # one 32-core AVX-512 node, ~70% of peak
G = float(sys.argv[2]) if len(sys.argv) > 2 else 1048576.0  # tokens per optimizer step (e.g. 4096 x 256)
BUCKET = 4 * (1 << 22)                                     # bytes per allreduce bucket
NETS = {"10GbE (1.25 GB/s, 25 us)": (1.25e9, 25e-6), "100G IB (12.5 GB/s, 2 us)": (12.5e9, 2e-6)}
MODELS = {"5M (demo teacher)": 4.95e6, "125M": 125e6, "1.3B": 1.3e9, "7B": 7e9}


def step(P, K, bw, alpha, zero=False):
    comp = 6 * P * G / K / F
    if K == 1:
        return comp, 0.0
    nb = math.ceil(4 * P / BUCKET)
    comm = 2 * (K - 1) / K * 4 * P / bw + 2 * (K - 1) * alpha * nb
    if zero:
        comm += (K - 1) / K * 4 * P / bw + (K - 1) * alpha
    return comp, comm


print(f"F = {F:.3g} FLOP/s per machine, global batch {G:.0f} tokens per step, fp32 gradients\n")
for net, (bw, alpha) in NETS.items():
    print(f"== {net}")
    print(f"{'model':20s} {'1 machine':>10s} " + " ".join(f"{'K=' + str(k):>14s}" for k in (8, 64, 512)) + "   stops at")
    for name, P in MODELS.items():
        t1 = sum(step(P, 1, bw, alpha))
        cells = []
        for K in (8, 64, 512):
            comp, comm = step(P, K, bw, alpha)
            cells.append(f"{comp + comm:7.3g}s {t1 / (comp + comm):5.0f}x")
        K = 1
        while sum(step(P, 2 * K, bw, alpha)) < 0.9 * sum(step(P, K, bw, alpha)) and K < 1 << 20:
            K *= 2
        print(f"{name:20s} {t1:9.3g}s " + " ".join(f"{c:>14s}" for c in cells) + f"   K={K}")
    print()
