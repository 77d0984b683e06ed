"""torch_train_step.py — PyTorch's side of bench/train_vs_torch: the same Llama config
trained with AdamW on random token windows, on CPU with a fixed thread count; prints
training tokens/s as JSON. Uses scripts/torch_llama.py's model (same math as retort).

usage: /usr/bin/python3 bench/torch_train_step.py --threads 2 --steps 12 --batch 16 \
         --dim 256 --layers 6 --heads 8 --kv-heads 4 --ffn 704 --vocab 2048 --seq-len 256
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torch_llama  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    for k, v in [("threads", 2), ("steps", 12), ("warmup_steps", 2), ("batch", 16), ("dim", 256), ("layers", 6),
                 ("heads", 8), ("kv_heads", 4), ("ffn", 704), ("vocab", 2048), ("seq_len", 256)]:
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = torch_llama.Config(a.dim, a.layers, a.heads, a.kv_heads, a.ffn, a.vocab, a.seq_len, tied=True)
    m = torch_llama.Llama(cfg)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    data = torch.randint(0, a.vocab, (a.batch * 64, a.seq_len + 1))
    times = []
    for step in range(a.warmup_steps + a.steps):
        batch = data[torch.randint(0, data.shape[0], (a.batch,))]
        x, y = batch[:, :-1], batch[:, 1:]
        t0 = time.perf_counter()
        logits = m(x)
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        if step >= a.warmup_steps:
            times.append(time.perf_counter() - t0)
    tokens = a.batch * a.seq_len * len(times)
    print(json.dumps({"torch_version": torch.__version__, "threads": a.threads, "tokens_per_s": tokens / sum(times),
                      "step_s": sum(times) / len(times), "params": sum(p.numel() for p in m.parameters())}))


if __name__ == "__main__":
    main()
