#!/usr/bin/env bash
# ref_distill.sh — the distillation subcommands end to end on tiny models, checked from the
# outside: `retort eval`'s loss / KL / agreement against an independent numpy computation on
# `retort forward` logits of the same windows; the cache, distill (cache, live, on-policy),
# sft and data commands; exit codes and messages for a vocabulary mismatch, a bad harvest
# line, a mismatched --resume; the student loads in `retort generate`; eval-plot writes SVG.
set -euo pipefail
BUILD=${BUILD:-build}
R=$BUILD/retort
PY=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

head -c 300000 "$BUILD/data/kjv.txt" > "$tmp/text.txt"
common="--seq-len 32 --batch 4 --eval-every 0 --quiet --threads 2 --val-fraction 0.25"
$R train --data "$tmp/text.txt" --vocab-size 400 --dim 48 --layers 2 --heads 4 --kv-heads 2 --ffn 96 \
  --steps 40 --lr 3e-3 $common --out "$tmp/t.gguf" 2>/dev/null

# cache, and distillation from it
$R cache-teacher --teacher "$tmp/t.gguf" --data "$tmp/text.txt" --top-k 16 --seq-len 32 --max-windows 200 \
  --val-fraction 0.25 --quiet --threads 2 --out "$tmp/t.cache" > "$tmp/cache.json" 2>/dev/null
$PY - "$tmp/cache.json" <<'PY'
import json, sys
c = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert c["top_k"] == 16 and c["windows"] == 200 and c["positions"] == 6400, c
assert 0 < c["bytes_per_token"] < 16 * 6, c      # raw ids + bytes would be ~16*3
print("ref_distill: cache %.1f bytes/token at k=16" % c["bytes_per_token"])
PY
shape="--dim 24 --layers 1 --heads 2 --kv-heads 1 --ffn 48"
$R distill --teacher-cache "$tmp/t.cache" --data "$tmp/text.txt" $shape --steps 12 $common --out "$tmp/sc.gguf" 2>/dev/null
$R distill --teacher "$tmp/t.gguf" --data "$tmp/text.txt" --loss rkl --top-k 32 --on-policy 0.5 $shape \
  --steps 8 $common --out "$tmp/sl.gguf" 2>/dev/null
grep -q '"top1_agreement"' "$tmp/sl.gguf.log.jsonl" || fail "distill log has no top1_agreement"

# a cache built on other data is refused
head -c 200000 "$BUILD/data/kjv.txt" | tail -c 150000 > "$tmp/other.txt"
if $R distill --teacher-cache "$tmp/t.cache" --data "$tmp/other.txt" $shape --steps 2 $common --out "$tmp/x.gguf" 2> "$tmp/err"; then
  fail "a cache built from other data was accepted"
fi
grep -q "other data" "$tmp/err" || fail "cache/data mismatch message: $(cat "$tmp/err")"

# eval: one JSON object, checked against numpy on retort forward logits of the same windows
$R eval --model "$tmp/sc.gguf" --data "$tmp/text.txt" --teacher "$tmp/t.gguf" --split all --max-windows 2 \
  --threads 2 --json-out "$tmp/eval.json" > "$tmp/eval.out" 2>/dev/null
[ "$(wc -l < "$tmp/eval.out")" = 1 ] || fail "eval printed more than one line"
cmp -s "$tmp/eval.out" "$tmp/eval.json" || fail "--json-out differs from stdout"
$R tokenize --model "$tmp/sc.gguf" --input "$tmp/text.txt" > "$tmp/ids.json"
ids=$($PY -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))[:65])))" "$tmp/ids.json")
w0=$(echo "$ids" | cut -d, -f1-32); w1=$(echo "$ids" | cut -d, -f33-64)
for m in sc t; do
  $R forward --model "$tmp/$m.gguf" --ids "$w0" --out "$tmp/$m.0.f32" --threads 2 2>/dev/null
  $R forward --model "$tmp/$m.gguf" --ids "$w1" --out "$tmp/$m.1.f32" --threads 2 2>/dev/null
done
$PY - "$tmp" "$ids" <<'PY'
import json, sys, numpy as np
d, ids = sys.argv[1], [int(x) for x in sys.argv[2].split(",")]
e = json.load(open(d + "/eval.json"))
for k in ("loss", "ppl", "kl", "top1_agreement", "tokens"):
    assert k in e, ("missing key", k, e)
V = 400
ce = kl = ag = n = 0.0
for w in (0, 1):
    s = np.fromfile("%s/sc.%d.f32" % (d, w), dtype="<f4").astype(np.float64).reshape(32, V)
    t = np.fromfile("%s/t.%d.f32" % (d, w), dtype="<f4").astype(np.float64).reshape(32, V)
    ls = s - s.max(1, keepdims=True); ls -= np.log(np.exp(ls).sum(1, keepdims=True))
    lt = t - t.max(1, keepdims=True); lt -= np.log(np.exp(lt).sum(1, keepdims=True))
    tgt = ids[w * 32 + 1: w * 32 + 33]
    ce += -ls[np.arange(32), tgt].sum()
    kl += (np.exp(lt) * (lt - ls)).sum()
    ag += (s.argmax(1) == t.argmax(1)).sum()
    n += 32
ref = dict(loss=ce / n, kl=kl / n, top1_agreement=ag / n)
print("ref_distill: eval %s vs numpy %s" % ({k: round(e[k], 6) for k in ref}, {k: round(v, 6) for k, v in ref.items()}))
assert e["tokens"] == 64, e
for k, v in ref.items():
    assert abs(e[k] - v) <= 1e-4 * max(1, abs(v)), (k, e[k], v)
assert abs(e["ppl"] - np.exp(ref["loss"])) <= 1e-3 * e["ppl"]
PY

# white-box needs one vocabulary: the mismatch names both sides
$R train --data "$tmp/text.txt" --vocab-size 380 --dim 32 --layers 1 --heads 2 --kv-heads 1 --ffn 64 \
  --steps 2 $common --out "$tmp/other.gguf" 2>/dev/null
if $R distill --teacher "$tmp/t.gguf" --init "$tmp/other.gguf" --data "$tmp/text.txt" --steps 2 $common \
  --out "$tmp/x.gguf" 2> "$tmp/err"; then fail "vocabulary mismatch accepted"; fi
grep -q "different vocabularies" "$tmp/err" && grep -q "other.gguf" "$tmp/err" && grep -q "t.gguf" "$tmp/err" \
  || fail "vocabulary mismatch message: $(cat "$tmp/err")"

# --resume with another loss is refused
$R distill --teacher "$tmp/t.gguf" --data "$tmp/text.txt" $shape --steps 6 --save-every 3 $common \
  --out "$tmp/r.gguf" 2>/dev/null
if $R distill --teacher "$tmp/t.gguf" --data "$tmp/text.txt" --loss jsd $shape --steps 6 --save-every 3 $common \
  --out "$tmp/r.gguf" --resume 2> "$tmp/err"; then fail "resume with another --loss accepted"; fi
grep -q -- "--loss" "$tmp/err" || fail "resume mismatch message: $(cat "$tmp/err")"

# sft from teacher generations (with log-probs), a bad line, --skip-bad
$R data generate --model "$tmp/t.gguf" --text "$tmp/text.txt" --n 24 --prompt-tokens 8 --max-tokens 16 \
  --logprobs 5 --quiet --threads 2 --out "$tmp/gen.jsonl" 2>/dev/null
[ "$(wc -l < "$tmp/gen.jsonl")" = 24 ] || fail "data generate wrote $(wc -l < "$tmp/gen.jsonl") lines"
sed -i '3s/.*/{"prompt": "In the beginning", "completion": 42}/' "$tmp/gen.jsonl"
if $R sft --data "$tmp/gen.jsonl" --tokenizer "$tmp/t.gguf" $shape --steps 4 $common --out "$tmp/sft.gguf" \
  2> "$tmp/err"; then fail "a bad harvest line was accepted"; fi
grep -q "gen.jsonl:3:" "$tmp/err" || fail "bad line not reported with its number: $(cat "$tmp/err")"
$R sft --data "$tmp/gen.jsonl" --tokenizer "$tmp/t.gguf" $shape --steps 6 --skip-bad $common \
  --out "$tmp/sft.gguf" 2> "$tmp/err" || fail "sft --skip-bad: $(cat "$tmp/err")"
grep -q "soft targets on" "$tmp/err" || fail "sft did not report soft targets"
$R generate --model "$tmp/sft.gguf" --prompt "And God said" --max-tokens 8 --seed 1 --quiet > /dev/null 2>&1 \
  || fail "retort generate cannot load the sft student"
# continue a student (--init) on a harvest that holds \u0000, then eval it on that JSONL with a
# teacher and a token budget: whole examples until --max-tokens completion tokens are reached
sed '3d' "$tmp/gen.jsonl" > "$tmp/h.jsonl"
echo '{"prompt":"And\u0000God","completion":" said\u0000 let"}' >> "$tmp/h.jsonl"
$R sft --data "$tmp/h.jsonl" --init "$tmp/sft.gguf" --steps 3 $common --out "$tmp/sft2.gguf" 2> "$tmp/err" \
  || fail "sft --init on a harvest with NUL: $(cat "$tmp/err")"
$R eval --model "$tmp/sft2.gguf" --data "$tmp/h.jsonl" --teacher "$tmp/t.gguf" --max-tokens 20 --threads 2 \
  --json-out "$tmp/h.json" > /dev/null 2> "$tmp/err" || fail "eval on a harvest: $(cat "$tmp/err")"
$R eval --model "$tmp/sft2.gguf" --data "$tmp/text.txt" --max-tokens 40 --seq-len 32 --val-fraction 0.25 --threads 2 \
  --json-out "$tmp/hm.json" > /dev/null 2> "$tmp/err" || fail "eval --max-tokens on text: $(cat "$tmp/err")"
$PY - "$tmp/h.json" "$tmp/hm.json" <<'PY'
import json, sys
h, t = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert 20 <= h["tokens"] < 20 + 17 + 1 and h["kl"] >= 0 and 0 <= h["top1_agreement"] <= 1, h   # completions: 16 tokens + end
assert t["tokens"] == 64 and t["loss"] > 0, t                                                 # two whole windows of 32
PY

# the arithmetic task and the plot
$R data arith --n 8 --digits 2 --seed 3 --out "$tmp/arith.jsonl" 2>/dev/null
$R sft --data "$tmp/arith.jsonl" --vocab-size 262 $shape --seq-len 48 --batch 4 --steps 3 --eval-every 0 --quiet \
  --threads 2 --out "$tmp/a.gguf" 2>/dev/null
$R eval --model "$tmp/a.gguf" --data "$tmp/arith.jsonl" --task arith --max-new 40 --threads 2 \
  --json-out "$tmp/a.json" > /dev/null 2>&1
$PY - "$tmp/a.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
assert e["examples"] == 8 and 0 <= e["accuracy"] <= 1 and e["correct"] == round(e["accuracy"] * 8), e
assert e["loss"] > 0, e
PY
$R eval-plot --out "$tmp/cmp.svg" --metrics loss,ppl "$tmp/eval.json" "$tmp/a.json" 2>/dev/null
grep -q "</svg>" "$tmp/cmp.svg" || fail "eval-plot wrote no SVG"
$R eval-plot --curves --key val_loss --out "$tmp/curves.svg" "$tmp/sc.gguf.log.jsonl" "$tmp/sl.gguf.log.jsonl" 2>/dev/null
echo "ref_distill: ok"
