#!/usr/bin/env bash
# bench/mpi_scaling.sh — data-parallel training throughput on this machine: the same global
# batch trained by 1 process and by 2 MPI ranks (mpirun, shared memory), with the threads split
# so both use the same cores, plus the time per step inside the gradient allreduce ("comm_s"
# in the trainer's log) and spent waiting for the slower rank before it ("wait_s"), and the
# bandwidth the allreduce implies. The allreduce starts bucket by bucket during the backward pass
# (docs/mpi.md); r2_t1_b512k uses smaller buckets so that more of it does. Prints tokens/s per configuration and the ratio of 2 ranks
# to 1 process at equal cores. The model of K machines on a network is docs/mpi.md.
# Usage: bench/mpi_scaling.sh [steps] [global batch]   (default 12 steps, batch 8)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
STEPS=${1:-12}; GB=${2:-8}
R=$BUILD/retort
command -v mpirun >/dev/null || { echo "mpirun not found (apt-get install openmpi-bin)"; exit 1; }
$R --version | grep -q "MPI: yes" || { echo "$R was built with MPI=0"; exit 1; }
[ -f "$BUILD/data/kjv.txt" ] || make -s corpus
CORES=$(nproc)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -c 400000 "$BUILD/data/kjv.txt" > "$tmp/text.txt"
CFG=(--dim 256 --layers 6 --heads 8 --kv-heads 4 --ffn 704 --seq-len 256)
MR=(mpirun --oversubscribe --allow-run-as-root --bind-to none)
# one short run makes the tokenizer the others reuse
$R train --data "$tmp/text.txt" --vocab-size 2048 "${CFG[@]}" --batch 1 --steps 1 --eval-every 0 \
  --save-every 0 --quiet --out "$tmp/tok.gguf" 2> /dev/null
common=(--data "$tmp/text.txt" --tokenizer "$tmp/tok.gguf" "${CFG[@]}" --steps $((STEPS + 2)) --warmup 2
        --eval-every 0 --eval-batches 1 --val-fraction 0.2 --save-every 0 --quiet)
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
measure() { # label, log → "tokens/s comm_s-per-step" over steps 3.. (the first two allocate)
  /usr/bin/python3 - "$2" "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
t = rows[-1]["elapsed"] - rows[1]["elapsed"]; tok = rows[-1]["tokens"] - rows[1]["tokens"]
comm = [r.get("comm_s", 0.0) for r in rows[2:]]
wait = [r.get("wait_s", 0.0) for r in rows[2:]]
print("%.1f %.5f %.5f" % (tok / t, sum(comm) / len(comm), sum(wait) / len(wait)))
PY
}
run() { # label ranks threads-per-rank [more train options]
  local label=$1 np=$2 th=$3 b=$((GB / $2)); shift 3
  if [ "$np" = 1 ]; then
    $R train "${common[@]}" --batch $b --threads $th "$@" --out "$tmp/$label.gguf" 2> "$tmp/$label.err"
  else
    "${MR[@]}" -np $np $R train "${common[@]}" --batch $b --threads $th "$@" --out "$tmp/$label.gguf" 2> "$tmp/$label.err"
  fi || { cat "$tmp/$label.err"; exit 1; }
  read -r tps comm wait < <(measure "$label" "$tmp/$label.gguf.log.jsonl")
  params=$(sed -n 's/.*model: \([0-9.kMG]*\) parameters.*/\1/p' "$tmp/$label.err" | head -1)
  printf '%-34s %10s tokens/s   allreduce %7.2f ms/step   waiting for the other rank %7.2f ms/step\n' \
    "$label (global batch $GB)" "$tps" "$(calc "$comm * 1000")" "$(calc "$wait * 1000")"
  eval "tps_$label=$tps; comm_$label=$comm"
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)   cores: $CORES   model d256 L6 (4.95M parameters), T256"
run r1_t1 1 1
run r2_t1 2 1
# the same with buckets of 512 Ki floats (10 instead of 2): most start during the backward pass
run r2_t1_b512k 2 1 --allreduce-bucket 524288
grep -h "gradient allreduce:" "$tmp/r2_t1.err" "$tmp/r2_t1_b512k.err" | sed 's/^/  /'
if [ "$CORES" -ge 2 ]; then run r1_t2 1 2; fi
if [ "$CORES" -ge 4 ]; then run r2_t2 2 2; fi
P=4950000
echo "ratio 2 ranks x 1 thread / 1 process x 2 threads (same cores): $(calc "$tps_r2_t1 / ${tps_r1_t2:-$tps_r1_t1}")"
echo "ratio 2 ranks x 1 thread / 1 process x 1 thread: $(calc "$tps_r2_t1 / $tps_r1_t1")"
echo "allreduce of $(calc "$P * 4 / 1e6") MB of fp32 gradients: $(calc "$comm_r2_t1 * 1000") ms/step = $(calc "2 * 0.5 * $P * 4 / $comm_r2_t1 / 1e9") GB/s bus bandwidth (2(K-1)/K x bytes / time)"
