#!/usr/bin/env python3
"""kjv_slice.py — a small slice of a corpus's *training* text, for data-limited students.

Cuts FILE into the chunks retort's held-out split uses (src/train/data.c dataset_from_text:
32 KiB, each ended at a newline within its last quarter; every round(1/VAL)-th chunk, counting
from 1, is held out) and writes the training chunks whose index is a multiple of EVERY, so the
slice is spread evenly over the whole book and never contains held-out text.
Usage: kjv_slice.py FILE EVERY OUT [VAL=0.05]
"""
import sys

def chunks(data, size=32 * 1024):
    s, n = 0, len(data)
    while s < n:
        e = min(s + size, n)
        if e < n:
            for j in range(e, e - size // 4, -1):
                if data[j - 1] == 0x0A:
                    e = j
                    break
        yield data[s:e]
        s = e

def main():
    src, every, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    val = float(sys.argv[4]) if len(sys.argv) > 4 else 0.05
    held = round(1 / val)
    data = open(src, "rb").read()
    kept = [c for i, c in enumerate(chunks(data)) if i % held != held - 1 and i % every == 0]
    with open(out + ".tmp", "wb") as f:
        f.write(b"".join(kept))
    import os
    os.replace(out + ".tmp", out)
    print(f"{out}: {len(kept)} chunks, {sum(map(len, kept))} bytes of {len(data)}")

main()
