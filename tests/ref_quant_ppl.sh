#!/usr/bin/env bash
# ref_quant_ppl.sh — quantization keeps a trained model's quality: a model trained briefly by
# `retort train` is quantized with `retort quantize`, and `retort eval`'s perplexity on
# held-out text (the end of the corpus, never trained on) after Q8_0 / Q4_K is within 1% / 5%
# of the F32 model's (the reference is the unquantized model itself). Also checks that the
# quantized files are smaller by the expected ratio. Numbers for a longer-trained model:
# docs/quantize.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/retort-ref-quant-ppl-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
R=$BUILD/retort
head -c 200000 "$BUILD/data/kjv.txt" > "$tmp/train.txt"
tail -c 20000 "$BUILD/data/kjv.txt" > "$tmp/held.txt"
$R train --data "$tmp/train.txt" --vocab-size 512 --dim 256 --layers 2 --heads 4 --kv-heads 2 --ffn 512 \
  --seq-len 64 --batch 4 --steps 30 --lr 3e-3 --eval-every 0 --out "$tmp/f32.gguf" --quiet --threads 2 \
  2> "$tmp/train.log" || { cat "$tmp/train.log"; exit 1; }
for t in q8_0 q4_k; do $R quantize --quiet --type $t "$tmp/f32.gguf" "$tmp/$t.gguf"; done
for t in f32 q8_0 q4_k; do
  $R eval --model "$tmp/$t.gguf" --data "$tmp/held.txt" --split all --seq-len 64 --threads 2 \
    --json-out "$tmp/$t.json" > /dev/null 2> "$tmp/eval.log" || { cat "$tmp/eval.log"; exit 1; }
done
"$PY" - "$tmp" <<'PY'
import json, os, sys
tmp = sys.argv[1]
r = {t: json.load(open("%s/%s.json" % (tmp, t))) for t in ("f32", "q8_0", "q4_k")}
ok = True
for t, lim in (("q8_0", 0.01), ("q4_k", 0.05)):
    rel = r[t]["ppl"] / r["f32"]["ppl"] - 1
    size = os.path.getsize("%s/%s.gguf" % (tmp, t)) / os.path.getsize(tmp + "/f32.gguf")
    good = abs(rel) < lim and r[t]["tokens"] == r["f32"]["tokens"] and size < (0.35 if t == "q8_0" else 0.22)
    ok &= good
    print("%-5s ppl %.4f vs f32 %.4f: %+.3f%% (limit %g%%), file %.2f x f32, %d tokens%s"
          % (t, r[t]["ppl"], r["f32"]["ppl"], 100 * rel, 100 * lim, size, r[t]["tokens"], "" if good else "  FAIL"))
sys.exit(0 if ok else 1)
PY
