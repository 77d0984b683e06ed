"""watermark_mix.py — a student's training set with PCT% of its records watermarked: the
watermarked and plain harvests answer the same prompts in the same order; a fixed random
subset of round(PCT/100 * N) records comes from the watermarked one, the rest from the
plain one, so every mixture has the same prompts and size.
Usage: watermark_mix.py WM.jsonl PLAIN.jsonl PCT OUT.jsonl"""
import random, sys
wm = open(sys.argv[1]).read().splitlines()
plain = open(sys.argv[2]).read().splitlines()
pct = float(sys.argv[3])
assert len(wm) == len(plain), "harvests differ in length"
n = len(wm); k = round(pct / 100.0 * n)
pick = set(random.Random(1234).sample(range(n), k))
with open(sys.argv[4], "w") as f:
    for i in range(n):
        f.write((wm[i] if i in pick else plain[i]) + "\n")
print("%s: %d of %d records watermarked" % (sys.argv[4], k, n))
