#!/usr/bin/env bash
# ref_gateway_guard.sh — the same simulated morning twice: once against `retort serve --guard`,
# once against `retort gateway --guard --embed-model` (the same model) in front of a plain
# `retort serve`. `retort simulate` drives both (one worker, so both see the requests in the
# same order; seeded scenario, simulated clock). The guard must reach the same verdicts:
# for every simulated account, the same strongest action (none / flag / throttle / suspend),
# the same ledger (rows by status) and the same number of served requests the guard saw, up to
# one request per suspended account (the verdict lands asynchronously, see the check) and the
# requests a sampled follow-up pushes past the context length in one run only. Completions are sampled, so token
# counts may differ by a few between the runs; a verdict that depends on them would show here.
# Also: `retort guard eval` and `retort report` read the gateway's database as they read serve's.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
R=$BUILD/retort
PY=/usr/bin/python3
command -v curl >/dev/null || { echo "SKIP ref_gateway_guard: curl not installed"; exit 0; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/retort-gwguard-XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$tmp"; }
trap cleanup EXIT
wait_port() { for i in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "no port file $1"; cat "$2"; exit 1; }

head -c 60000 "$BUILD/data/kjv.txt" > "$tmp/text.txt"
$R train --data "$tmp/text.txt" --vocab-size 300 --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 \
  --seq-len 128 --batch 4 --steps 10 --lr 3e-3 --eval-every 0 --out "$tmp/m.gguf" --quiet --threads 2 2> "$tmp/train.log"
cat > "$tmp/scenario.json" <<'EOF'
{"name": "gw", "seed": 3, "hours": 4, "max_tokens": 8, "personas": [
  {"name": "user", "kind": "benign", "count": 4, "requests_per_day": [20, 60]},
  {"name": "lp", "kind": "logprob", "count": 1, "requests": 300, "rate_per_hour": 6000},
  {"name": "ring", "kind": "sybil", "count": 1, "keys": 4, "addresses": 2, "requests": 240}
]}
EOF

# run 1: serve with the guard
$R serve --model "$tmp/m.gguf" --model-name tiny --db "$tmp/s.db" --port 0 --port-file "$tmp/port_s" \
  --threads 1 --max-batch 8 --max-tokens 8 --sim-clock --guard 2> "$tmp/s.log" &
pids+=($!)
wait_port "$tmp/port_s" "$tmp/s.log"
$R simulate --endpoint "http://127.0.0.1:$(cat "$tmp/port_s")" --db "$tmp/s.db" --scenario "$tmp/scenario.json" \
  --corpus "$BUILD/data/kjv.txt" --speed 0 --concurrency 1 --quiet 2> "$tmp/sim_s.log"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true

# run 2: a plain serve upstream (its key allows everything), the gateway with the guard
UPKEY=$($R keys create --db "$tmp/up.db" --name gw --rpm 1000000 --tpm 1000000000 2>/dev/null)
printf '%s\n' "$UPKEY" > "$tmp/upkey"
$R serve --model "$tmp/m.gguf" --model-name tiny --db "$tmp/up.db" --port 0 --port-file "$tmp/port_u" \
  --threads 1 --max-batch 8 --max-tokens 8 2> "$tmp/u.log" &
pids+=($!)
wait_port "$tmp/port_u" "$tmp/u.log"
$R gateway --upstream "http://127.0.0.1:$(cat "$tmp/port_u")/v1" --upstream-key-file "$tmp/upkey" --db "$tmp/g.db" \
  --embed-model "$tmp/m.gguf" --threads 1 --max-tokens 8 --port 0 --port-file "$tmp/port_g" --sim-clock --guard \
  2> "$tmp/g.log" &
pids+=($!)
wait_port "$tmp/port_g" "$tmp/g.log"
$R simulate --endpoint "http://127.0.0.1:$(cat "$tmp/port_g")" --db "$tmp/g.db" --scenario "$tmp/scenario.json" \
  --corpus "$BUILD/data/kjv.txt" --speed 0 --concurrency 1 --quiet 2> "$tmp/sim_g.log"
kill "${pids[2]}"; wait "${pids[2]}" 2>/dev/null || true # stopping flushes the guard's writer

$PY - "$tmp/s.db" "$tmp/g.db" <<'PY'
import sqlite3, sys
rank = {"flag": 1, "throttle": 2, "suspend": 3}
def verdicts(path):
    db = sqlite3.connect(path)
    v = {name: 0 for (name,) in db.execute("select name from guard_sim_accounts")}
    for name, action in db.execute("select s.name, a.action from guard_actions a join guard_sim_accounts s "
                                   "on s.account_id = a.account_id where a.action != 'release'"):
        v[name] = max(v[name], rank[action])
    # (a request the upstream refuses, e.g. context_length_exceeded, reaches the gateway's guard
    # but not serve's, which refuses it before its hook: served requests are compared)
    events = db.execute("select count(*) from guard_events where status = 200").fetchone()[0]
    rows = sorted(db.execute("select status, count(*) from usage group by status").fetchall())
    return v, events, rows
(vs, es, rs), (vg, eg, rg) = verdicts(sys.argv[1]), verdicts(sys.argv[2])
assert vs and max(vs.values()) == 3, ("the scenario must make serve's guard suspend someone", vs)
diff = {k: (vs.get(k), vg.get(k)) for k in set(vs) | set(vg) if vs.get(k) != vg.get(k)}
assert not diff, ("verdicts differ (serve, gateway)", diff)
# The guard decides after a response, on its own thread: the request that follows a decision
# may come before it or after it, so each suspension may let one request more or less through.
# Allowed: per status, and for the served events, at most one request per suspended account.
# A benign follow-up carries the previous (sampled) completion, so near the context limit the
# same request may be answered in one run and refused with 400 context_length_exceeded in the
# other (a fresh-clone run: one such swap, plus one request of the suspended prober). So 200
# and 400 are compared together as "answered", and the swaps (at most 2) widen the served count.
slack = sum(1 for v in vs.values() if v == 3)
ds, dg = dict(rs), dict(rg)
swap = abs(ds.get(400, 0) - dg.get(400, 0))
assert swap <= 2, ("more than 2 requests answered in one run and refused in the other", rs, rg)
for d in (ds, dg):
    d["answered"] = d.pop(200, 0) + d.pop(400, 0)
far = {k: (ds.get(k, 0), dg.get(k, 0)) for k in set(ds) | set(dg) if abs(ds.get(k, 0) - dg.get(k, 0)) > slack}
assert not far and abs(es - eg) <= slack + swap, \
    ("events / ledger rows differ by more than %d (+%d swaps)" % (slack, swap), (es, rs), (eg, rg))
names = {0: "none", 1: "flag", 2: "throttle", 3: "suspend"}
print("ref_gateway_guard: same verdicts for %d accounts (%s); %d served events, ledger %s each" %
      (len(vs), ", ".join("%s %s" % (k, names[v]) for k, v in sorted(vs.items()) if v), es, rs))
PY
$R guard eval --db "$tmp/s.db" > "$tmp/eval_s.txt" 2>&1
$R guard eval --db "$tmp/g.db" > "$tmp/eval_g.txt" 2>&1
grep -q . "$tmp/eval_g.txt"
# the evidence report reads the gateway's database as it reads serve's
$R report --db "$tmp/g.db" --out "$tmp/report.html" 2> "$tmp/report.log"
grep -q "</html>" "$tmp/report.html"
echo "ref_gateway_guard: ok"
