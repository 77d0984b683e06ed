#!/usr/bin/env bash
# bench/decode_only_memory.sh — peak resident memory and decode speed of `retort generate` on a
# quantized model, with the decode-only loader (model_load_decode_only: block matrices kept only
# as blocks) against a retort binary from before it (BEFORE=path, which decodes the same blocks
# but also holds the fp32 copy of every matrix). The models are bench/decode_quant_vs_llamacpp.sh's
# (~103M-parameter random model, Q8_0 and Q4_K; ARCH as there), made by that script if absent
# (it needs the llama.cpp peer); the peer here is the older binary on the same file. Peak RSS
# from /usr/bin/time -v; tokens/s from generate's own line; best of 2.
# usage: BEFORE=/path/to/old/retort [ARCH=llama|qwen2] bench/decode_only_memory.sh [tokens] [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N=${1:-64}; TH=${2:-2}
ARCH=${ARCH:-llama}
DIR=$BUILD/bench/quant
[ "$ARCH" = llama ] || DIR=$BUILD/bench/quant_$ARCH
: "${BEFORE:?set BEFORE to a retort binary without the decode-only loader}"
[ -f "$DIR/q4_k.gguf" ] || ARCH=$ARCH bash bench/decode_quant_vs_llamacpp.sh 8 "$TH" >/dev/null
run() { # binary file -> "rss_kib tok_s"
  local out
  out=$(/usr/bin/time -v "$1" generate --model "$2" --prompt "And it came to pass" --max-tokens "$N" --temperature 0 \
        --threads "$TH" 2>&1 >/dev/null)
  echo "$(sed -n 's/.*Maximum resident set size (kbytes): //p' <<<"$out") \
$(sed -n 's/.*generated: [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p' <<<"$out")"
}
for t in q8_0 q4_k; do
  for which in before after; do
    bin=$BEFORE; [ $which = after ] && bin=$BUILD/retort
    best_r=999999999; best_s=0
    for rep in 1 2; do
      read -r r s < <(run "$bin" "$DIR/$t.gguf")
      best_r=$(( r < best_r ? r : best_r )); best_s=$(/usr/bin/python3 -c "print(max($best_s, $s))")
    done
    echo "$t $which: peak RSS $((best_r / 1024)) MiB, $best_s tok/s ($N tokens, $TH threads)"
  done
done
echo "file sizes: $(stat -c '%n %s' "$DIR"/q8_0.gguf "$DIR"/q4_k.gguf | tr '\n' ' ')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
