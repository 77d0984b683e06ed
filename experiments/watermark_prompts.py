"""watermark_prompts.py — prompt sets for the watermark experiments, cut from the KJV corpus:
each prompt is the start of a verse as it appears in the corpus ("  3 And God said, Let"),
3 to 8 words long. Disjoint verse sets: --train prompts (the teacher's "API traffic" whose
answers a student is distilled from) and --test prompts (detection and closed-mode
radioactivity). Also --human: plain KJV passages of about --human-words words (unwatermarked
human text for the false-positive rate). Deterministic for --seed.
Usage: watermark_prompts.py KJV OUTDIR [--train N] [--test N] [--human N] [--seed S]"""
import argparse, os, random, re

ap = argparse.ArgumentParser()
ap.add_argument("kjv"); ap.add_argument("outdir")
ap.add_argument("--train", type=int, default=2000); ap.add_argument("--test", type=int, default=300)
ap.add_argument("--human", type=int, default=200); ap.add_argument("--human-words", type=int, default=320)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
verses = []
cur = None
for line in open(a.kjv, encoding="utf-8", errors="replace"):
    m = re.match(r"^\s+(\d+) (.*)$", line.rstrip("\n"))
    if m:
        if cur: verses.append(cur)
        cur = [m.group(1), m.group(2).strip()]
    elif line.strip() and cur:
        cur[1] += " " + line.strip()
    else:
        if cur: verses.append(cur)
        cur = None
if cur: verses.append(cur)
rng = random.Random(a.seed)
idx = list(range(len(verses)))
rng.shuffle(idx)
need = a.train + a.test
def prompt(v):
    words = v[1].split()
    k = rng.randint(3, 8)
    return "  %s %s" % (v[0], " ".join(words[:k]))
os.makedirs(a.outdir, exist_ok=True)
good = [i for i in idx if len(verses[i][1].split()) >= 10][:need]
with open(os.path.join(a.outdir, "prompts_train.txt"), "w") as f:
    for i in good[:a.train]: f.write(prompt(verses[i]) + "\n")
with open(os.path.join(a.outdir, "prompts_test.txt"), "w") as f:
    for i in good[a.train:need]: f.write(prompt(verses[i]) + "\n")
# human passages: consecutive verses from random places, as JSONL completions
import json
with open(os.path.join(a.outdir, "human.jsonl"), "w") as f:
    for _ in range(a.human):
        s = rng.randrange(0, len(verses) - 200)
        words, j = [], s
        while len(words) < a.human_words:
            words += ("%s %s" % (verses[j][0], verses[j][1])).split(); j += 1
        f.write(json.dumps({"completion": " ".join(words[:a.human_words])}) + "\n")
print("verses %d; wrote %d train, %d test prompts, %d human passages" % (len(verses), a.train, a.test, a.human))
