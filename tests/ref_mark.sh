#!/usr/bin/env bash
# ref_mark.sh — the watermark detector against an independent Python implementation written
# here from the specifications, not from retort's code:
#   - subkeys: libsodium's crypto_kdf_derive_from_key is BLAKE2b(key=master, salt=LE64(id)||0^8,
#     person="rtmark01"||0^8, empty message) — Python's hashlib.blake2b;
#   - SipHash-2-4 (Aumasson & Bernstein) in pure Python;
#   - green flags, SelfHash seeds, Gumbel values, dedup of score keys, prompt exclusion;
#   - exact p-values: the binomial tail as an exact rational (fractions + math.comb; n <= 300)
#     or mpmath's 50-digit regularized incomplete beta I_p(k, n-k+1), and the Gamma(n,1)
#     tail as e^-s sum_{j<n} s^j/j! in 60-digit decimal arithmetic.
# Token ids come from `retort tokenize` (the detector re-tokenizes the same way). Also checks
# `retort watermark pvalue` on a grid of (n, k, gamma) and (n, s) including far tails, and
# that generate -> detect finds its own watermark while plain text is not flagged.
set -euo pipefail
BUILD=${BUILD:-build}
PY=/usr/bin/python3
R=$BUILD/retort
if ! $PY -c "import mpmath" 2>/dev/null; then
  echo "SKIP ref_mark: /usr/bin/python3 has no mpmath (apt-get install python3-mpmath)"
  exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -c 40000 "$BUILD/data/kjv.txt" > "$tmp/text.txt"
$R train --data "$tmp/text.txt" --vocab-size 320 --dim 32 --layers 1 --heads 2 --kv-heads 1 --ffn 64 \
  --seq-len 32 --batch 4 --steps 40 --lr 3e-3 --eval-every 0 --out "$tmp/m.gguf" --quiet --threads 2 2> "$tmp/train.log"
$R watermark keygen --out "$tmp/k.key" > /dev/null
# a text with repeats (dedup matters), a prompt, and a JSONL with two records
sed -n '30,60p' "$tmp/text.txt" > "$tmp/doc.txt"
printf 'And God said, Let there be light: and there was light. And God said, Let there be light.' > "$tmp/rep.txt"
printf 'In the beginning' > "$tmp/prompt.txt"
$PY - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
recs = [{"prompt": "In the beginning God", "completion": open(d + "/doc.txt").read()[:700]},
        {"completion": open(d + "/rep.txt").read()}]
with open(d + "/recs.jsonl", "w") as f:
    for r in recs: f.write(json.dumps(r) + "\n")
PY
for s in kgw kgw-selfhash gumbel; do
  for h in 1 3; do
    $R watermark detect --model "$tmp/m.gguf" --key-file "$tmp/k.key" --scheme $s --context $h --gamma 0.3 \
      --input "$tmp/doc.txt" > "$tmp/det_${s}_${h}_doc.json"
    $R watermark detect --model "$tmp/m.gguf" --key-file "$tmp/k.key" --scheme $s --context $h --gamma 0.3 \
      --input "$tmp/rep.txt" --prompt-file "$tmp/prompt.txt" > "$tmp/det_${s}_${h}_rep.json"
    $R watermark detect --model "$tmp/m.gguf" --key-file "$tmp/k.key" --scheme $s --context $h --gamma 0.3 \
      --input "$tmp/recs.jsonl" --aggregate > "$tmp/det_${s}_${h}_agg.json"
  done
done
for f in doc rep prompt; do $R tokenize --model "$tmp/m.gguf" --input "$tmp/$f.txt" > "$tmp/$f.ids"; done
$PY - "$tmp/recs.jsonl" > "$tmp/recs_split.txt" <<'PY'
import json, sys
for i, l in enumerate(open(sys.argv[1])):
    r = json.loads(l)
    for k in ("prompt", "completion"):
        if k in r: open(sys.argv[1] + ".%d.%s" % (i, k), "w").write(r[k])
PY
for f in "$tmp"/recs.jsonl.*.*; do $R tokenize --model "$tmp/m.gguf" --input "$f" > "$f.ids"; done
# p-value grid from the CLI
: > "$tmp/pv.txt"
for n in 1 7 200 3000; do
  for g in 0.25 0.1; do
    for k in 0 1 $((n/4)) $((n/3)) $((n/2)) $((3*n/4)) $n; do
      echo "kgw $n $k $g $($R watermark pvalue --scored $n --green $k --gamma $g)" >> "$tmp/pv.txt"
    done
  done
done
for n in 1 100 5000; do
  for f in 0.5 1.0 3.0; do
    s=$($PY -c "print(repr($f*$n+0.123))")
    echo "gumbel $n $s 0 $($R watermark pvalue --scheme gumbel --scored $n --score $s)" >> "$tmp/pv.txt"
  done
done
$PY - "$tmp" <<'PY'
import hashlib, json, math, sys, glob
import mpmath
from fractions import Fraction
from decimal import Decimal, getcontext
getcontext().prec = 60
d = sys.argv[1]
M = (1 << 64) - 1
def rotl(x, b): return ((x << b) | (x >> (64 - b))) & M
def siphash24(k, m):
    k0 = int.from_bytes(k[:8], "little"); k1 = int.from_bytes(k[8:], "little")
    v = [k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d, k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573]
    def rnd():
        v[0] = (v[0] + v[1]) & M; v[1] = rotl(v[1], 13) ^ v[0]; v[0] = rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & M; v[3] = rotl(v[3], 16) ^ v[2]
        v[0] = (v[0] + v[3]) & M; v[3] = rotl(v[3], 21) ^ v[0]
        v[2] = (v[2] + v[1]) & M; v[1] = rotl(v[1], 17) ^ v[2]; v[2] = rotl(v[2], 32)
    n = len(m); full = n - n % 8
    for i in range(0, full, 8):
        w = int.from_bytes(m[i:i+8], "little"); v[3] ^= w; rnd(); rnd(); v[0] ^= w
    b = (n & 0xff) << 56 | int.from_bytes(m[full:] + b"\0" * 8, "little") & ((1 << (8 * (n - full))) - 1)
    v[3] ^= b; rnd(); rnd(); v[0] ^= b; v[2] ^= 0xff
    for _ in range(4): rnd()
    return v[0] ^ v[1] ^ v[2] ^ v[3]
# the SipHash paper's test vector
assert siphash24(bytes(range(16)), bytes(range(15))) == 0xa129ca6149be45e5
key = bytes.fromhex(open(d + "/k.key").read().strip())
def subkey(i):
    return hashlib.blake2b(b"", digest_size=16, key=key, salt=i.to_bytes(8, "little") + b"\0" * 8,
                           person=b"rtmark01" + b"\0" * 8).digest()
kg, ks, ku = subkey(1), subkey(2), subkey(3)
key_id = hashlib.blake2b(b"retort-watermark-key-id" + key, digest_size=8).hexdigest()
def words(ws): return b"".join((w & 0xffffffff).to_bytes(4, "little") for w in ws)
def score_key(scheme, win, tok):
    if scheme == "kgw-selfhash":
        s = min(siphash24(ks, words([u, tok])) for u in list(win) + [tok])
        return (s & 0xffffffff, s >> 32, tok)
    return tuple(win) + (tok,)
def score(scheme, h, gamma, seqs):
    """seqs: list of (tokens, from). Returns (n, green or gumbel score)."""
    thr = int(Fraction(gamma) * (1 << 64))
    seen = set(); n = 0; g = 0; sc = Decimal(0)
    for toks, frm in seqs:
        for i in range(frm, len(toks)):
            if i < h: continue
            k = score_key(scheme, toks[i-h:i], toks[i])
            if k in seen: continue
            seen.add(k); n += 1
            if scheme == "gumbel":
                x = siphash24(ku, words(k)); r = (Decimal(x >> 11) + Decimal("0.5")) / Decimal(2 ** 53)
                sc += -(1 - r).ln()
            else:
                g += siphash24(kg, words(k)) < thr
    return n, (sc if scheme == "gumbel" else g)
def binom_log_sf(k, n, gamma):
    if k == 0: return 0.0
    if n <= 300:  # exact rational sum
        p = Fraction(gamma); q = 1 - p
        a, b = p.numerator * q.denominator, q.numerator * p.denominator
        s = sum(math.comb(n, j) * a ** j * b ** (n - j) for j in range(k, n + 1))
        return math.log(s) - n * math.log(p.denominator * q.denominator)
    # P(X >= k) = I_p(k, n - k + 1), the regularized incomplete beta, at 50 digits (mpmath)
    mpmath.mp.dps = 50
    return float(mpmath.log(mpmath.betainc(k, n - k + 1, 0, mpmath.mpf(gamma), regularized=True)))
def gamma_log_sf(n, s):
    s = Decimal(s); t = Decimal(1); tot = Decimal(0)
    for j in range(n):
        if j: t = t * s / j
        tot += t
    return float((tot.ln() - s))
ids = lambda f: json.load(open(f))
doc, rep, prm = ids(d + "/doc.ids"), ids(d + "/rep.ids"), ids(d + "/prompt.ids")
r0p, r0c, r1c = ids(d + "/recs.jsonl.0.prompt.ids"), ids(d + "/recs.jsonl.0.completion.ids"), ids(d + "/recs.jsonl.1.completion.ids")
bad = 0; checks = 0
for scheme in ("kgw", "kgw-selfhash", "gumbel"):
    for h in (1, 3):
        cases = {"doc": [(doc, 0)], "rep": [(prm + rep, len(prm))], "agg": [(r0p + r0c, len(r0p)), (r1c, 0)]}
        for name, seqs in cases.items():
            out = json.load(open("%s/det_%s_%d_%s.json" % (d, scheme, h, name)))
            n, g = score(scheme, h, 0.3, seqs)
            if scheme == "gumbel":
                lp = gamma_log_sf(n, g) if n else 0.0
                ok = out["tokens_scored"] == n and abs(out["score"] - float(g)) < 1e-6 * max(1, float(g))
            else:
                lp = binom_log_sf(g, n, 0.3) if n else 0.0
                ok = out["tokens_scored"] == n and out["green"] == g
            ok = ok and out["key_id"] == key_id
            ok = ok and abs(out["log10_p_value"] - lp / math.log(10)) <= 1e-4 * max(1, abs(lp / math.log(10)))
            checks += 1
            if not ok:
                bad += 1
                print("MISMATCH %s h=%d %s: retort %s | reference n=%d g=%s log10p=%.6f" % (scheme, h, name, out, n, g, lp / math.log(10)))
worst = 0
for line in open(d + "/pv.txt"):
    sch, n, k, g, js = line.split(" ", 4)
    out = json.loads(js); n = int(n)
    if sch == "kgw":
        lp = binom_log_sf(int(k), n, float(g)) if n else 0.0
    else:
        lp = gamma_log_sf(n, float(k))
    err = abs(out["log_p"] - lp) / max(1.0, abs(lp))
    worst = max(worst, err); checks += 1
    if err > 1e-10:
        bad += 1; print("P-VALUE MISMATCH", line.strip(), "reference log_p", lp)
print("ref_mark: %d checks, %d mismatches; p-value grid worst relative error of ln p %.2e" % (checks, bad, worst))
sys.exit(1 if bad else 0)
PY
# sanity of the whole path: generate with the watermark, detect it; plain text is not flagged
printf 'And God said\nIn the beginning\nAnd it came to pass\nThe LORD is\n' > "$tmp/prompts.txt"
$R watermark generate --model "$tmp/m.gguf" --prompts "$tmp/prompts.txt" --out "$tmp/gen.jsonl" --max-tokens 60 \
  --key-file "$tmp/k.key" --delta 4 --config-out "$tmp/wm.json" --quiet --threads 2
$R watermark detect --model "$tmp/m.gguf" --key-file "$tmp/k.key" --config "$tmp/wm.json" --input "$tmp/gen.jsonl" --aggregate > "$tmp/g.json"
$R watermark detect --model "$tmp/m.gguf" --key-file "$tmp/k.key" --config "$tmp/wm.json" --input "$tmp/doc.txt" > "$tmp/p.json"
$PY - "$tmp/g.json" "$tmp/p.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2]))
print("ref_mark: watermarked generations log10 p %.1f (%d tokens); plain text log10 p %.2f" % (g["log10_p_value"], g["tokens_scored"], p["log10_p_value"]))
sys.exit(0 if g["detected"] and g["delta"] == 4 and not p["detected"] else 1)
PY
# errors: a key that does not match the recorded key id is refused, with the reason
$R watermark keygen --out "$tmp/k2.key" > /dev/null
if $R watermark detect --model "$tmp/m.gguf" --key-file "$tmp/k2.key" --config "$tmp/wm.json" --input "$tmp/doc.txt" 2> "$tmp/err.txt"; then
  echo "ref_mark: a mismatched key was accepted"; exit 1
fi
grep -q "is not the key" "$tmp/err.txt"
# bad input: a clear error naming the file or field, exit status 1 or 2, never a crash
expect_fail() { # expect_fail SUBSTRING cmd...
  local want=$1; shift
  set +e; "$@" > /dev/null 2> "$tmp/err.txt"; local rc=$?; set -e
  if [ $rc -ne 1 ] && [ $rc -ne 2 ]; then echo "ref_mark: exit $rc (want 1 or 2): $*"; cat "$tmp/err.txt"; exit 1; fi
  if ! grep -q -- "$want" "$tmp/err.txt"; then echo "ref_mark: error lacks '$want': $*"; cat "$tmp/err.txt"; exit 1; fi
}
printf 'not a key' > "$tmp/bad.key"
printf '{"prompt": "a", "completion": 5}\n' > "$tmp/bad.jsonl"
printf '{"prompt": "a"}\n{broken\n' > "$tmp/bad2.jsonl"
printf '{"scheme": "kgw", "gamma": 7}\n' > "$tmp/bad_cfg.json"
D=(watermark detect --model "$tmp/m.gguf")
expect_fail "bad.key" $R "${D[@]}" --key-file "$tmp/bad.key" --input "$tmp/doc.txt"
expect_fail "missing.key" $R "${D[@]}" --key-file "$tmp/missing.key" --input "$tmp/doc.txt"
expect_fail "bad.jsonl:1" $R "${D[@]}" --key-file "$tmp/k.key" --input "$tmp/bad.jsonl"
expect_fail "bad2.jsonl:2" $R "${D[@]}" --key-file "$tmp/k.key" --input "$tmp/bad2.jsonl"
expect_fail "gamma" $R "${D[@]}" --key-file "$tmp/k.key" --config "$tmp/bad_cfg.json" --input "$tmp/doc.txt"
expect_fail "kgw, kgw-selfhash or gumbel" $R "${D[@]}" --key-file "$tmp/k.key" --scheme nope --input "$tmp/doc.txt"
expect_fail "--gamma" $R "${D[@]}" --key-file "$tmp/k.key" --gamma abc --input "$tmp/doc.txt"
expect_fail "the flag says" $R "${D[@]}" --key-file "$tmp/k.key" --config "$tmp/wm.json" --delta 1 --input "$tmp/doc.txt"
expect_fail "doc.txt" $R watermark detect --model "$tmp/doc.txt" --key-file "$tmp/k.key" --input "$tmp/doc.txt"
expect_fail "--key-file" $R "${D[@]}" --input "$tmp/doc.txt"
expect_fail "exists" $R watermark keygen --out "$tmp/k.key"
expect_fail "without --watermark-key-file" $R generate --model "$tmp/m.gguf" --prompt "In the" --watermark-delta 3
expect_fail "--exclude windows" $R radioactivity --suspect "$tmp/m.gguf" --tokenizer "$tmp/m.gguf" --key-file "$tmp/k.key" \
  --mode open --text "$tmp/gen.jsonl" --exclude windows
expect_fail "needs --prompts" $R radioactivity --suspect "$tmp/m.gguf" --tokenizer "$tmp/m.gguf" --key-file "$tmp/k.key" --mode closed
# a suspect with a different tokenizer: open mode refuses, closed mode re-tokenizes and runs
$R train --data "$tmp/text.txt" --vocab-size 300 --dim 16 --layers 1 --heads 2 --kv-heads 1 --ffn 32 \
  --seq-len 32 --batch 4 --steps 5 --eval-every 0 --out "$tmp/other.gguf" --quiet --threads 2 2> /dev/null
expect_fail "share the watermark's tokenizer" $R radioactivity --suspect "$tmp/other.gguf" --tokenizer "$tmp/m.gguf" \
  --key-file "$tmp/k.key" --mode open --text "$tmp/gen.jsonl"
$R radioactivity --suspect "$tmp/other.gguf" --tokenizer "$tmp/m.gguf" --key-file "$tmp/k.key" --mode closed \
  --prompts "$tmp/prompts.txt" --max-tokens 20 --controls 3 --quiet --threads 2 > "$tmp/rc.json"
$R radioactivity --suspect "$tmp/m.gguf" --tokenizer "$tmp/m.gguf" --key-file "$tmp/k.key" --mode open \
  --text "$tmp/gen.jsonl" --controls 3 --quiet --threads 2 > "$tmp/ro.json"
$PY - "$tmp/rc.json" "$tmp/ro.json" <<'PY'
import json, sys
for f in sys.argv[1:]:
    r = json.load(open(f))
    assert r["tokens_scored"] > 0 and len(r["controls"]["p_values"]) == 3 and 0 <= r["p_value"] <= 1, r
print("ref_mark: bad-input errors as expected; radioactivity closed (other tokenizer) and open run")
PY
