#!/usr/bin/env bash
# bench/distill_bench.sh — the distillation loss (value + gradient for one batch of rows x
# vocabulary) in retort vs PyTorch running TRL's generalized_jsd_loss formula (forward KL,
# reverse KL, JSD 0.5) and a top-64 + rest forward KL, same shape, same threads, best of N.
# Not part of `make test`. Usage: bench/distill_bench.sh [rows] [vocab] [threads] [reps]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CC=${CC:-gcc}
ROWS=${1:-2048}; VOCAB=${2:-2048}; THREADS=${3:-2}; REPS=${4:-10}
[ -f "$BUILD/libretort.a" ] || { echo "error: $BUILD/libretort.a missing; run make first" >&2; exit 1; }
BLIS_DIR=/usr/lib/x86_64-linux-gnu/blis-openmp
mkdir -p "$BUILD/bench"
$CC -std=c17 -D_GNU_SOURCE -O3 -march=native -fopenmp -Wall -Wextra -Isrc \
    -o "$BUILD/bench/distill_loss_bench" bench/distill_loss_bench.c "$BUILD/libretort.a" \
    -L$BLIS_DIR -Wl,-rpath,$BLIS_DIR -lblis $(pkg-config --libs libzstd jansson) -lm -lpthread
OMP_NUM_THREADS=$THREADS "$BUILD/bench/distill_loss_bench" "$ROWS" "$VOCAB" "$THREADS" "$REPS"
OMP_NUM_THREADS=$THREADS /usr/bin/python3 - "$ROWS" "$VOCAB" "$THREADS" "$REPS" <<'PY'
import json, sys, time
import torch
import torch.nn.functional as F
N, V, th, reps = map(int, sys.argv[1:5])
torch.set_num_threads(th)
g = torch.Generator().manual_seed(1)
s0 = torch.randn(N, V, generator=g) * 2
t = torch.randn(N, V, generator=g) * 3
def jsd(student_logits, teacher_logits, beta):  # TRL's generalized_jsd_loss, mean over rows
    sl = F.log_softmax(student_logits, -1); tl = F.log_softmax(teacher_logits, -1)
    if beta == 0: d = F.kl_div(sl, tl, reduction="none", log_target=True)
    elif beta == 1: d = F.kl_div(tl, sl, reduction="none", log_target=True)
    else:
        b = torch.tensor(beta)
        m = torch.logsumexp(torch.stack([sl + torch.log(1 - b), tl + torch.log(b)]), 0)
        d = b * F.kl_div(m, tl, reduction="none", log_target=True) + (1 - b) * F.kl_div(m, sl, reduction="none", log_target=True)
    return d.sum(-1).mean()
def topk_fkl(student_logits, teacher_logits, k=64):  # DistillKit-style: top-k + one rest bucket
    tl = F.log_softmax(teacher_logits, -1); sl = F.log_softmax(student_logits, -1)
    tv, ti = tl.topk(k, -1)
    sv = sl.gather(-1, ti)
    tr = torch.log1p(-tv.exp().sum(-1).clamp(max=1 - 1e-7)); sr = torch.log1p(-sv.exp().sum(-1).clamp(max=1 - 1e-7))
    tb = torch.cat([tv, tr[:, None]], -1); sb = torch.cat([sv, sr[:, None]], -1)
    return (tb.exp() * (tb - sb)).sum(-1).mean()
for name, fn in (("fkl", lambda s: jsd(s, t, 0.0)), ("rkl", lambda s: jsd(s, t, 1.0)), ("jsd", lambda s: jsd(s, t, 0.5)),
                 ("fkl_top64", lambda s: topk_fkl(s, t))):
    best = 1e30
    for _ in range(reps):
        s = s0.clone().requires_grad_(True)
        t0 = time.perf_counter(); loss = fn(s); loss.backward(); dt = time.perf_counter() - t0
        best = min(best, dt)
    print(json.dumps({"impl": "torch", "case": name, "rows": N, "vocab": V, "threads": th, "ms": round(best * 1e3, 3), "loss": round(loss.item(), 6)}))
PY
