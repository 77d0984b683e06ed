#!/usr/bin/env bash
# ref_serve_mark.sh — the watermark through `retort serve`, binaries end to end: a server started
# with --watermark-key-file on a free loopback port records the scheme's parameters and the key's
# fingerprint (never the key) in its database (read back through GET /admin/api/config); its
# ~200-token completions and chat answers are detected by `retort watermark detect` with the key,
# both with the recorded parameters (--server-db) and with the defaults given as flags. The same
# server restarted on the same database without a key records "none" (--server-db then refuses),
# and its text is not detected. A second keyed server with the Gumbel scheme checks that the
# scheme flags reach the sampler. The model is tiny and barely trained: sampled with top-k 40 it
# writes ASCII (byte tokens of broken UTF-8 would not survive the text round trip), with high
# entropy, so a few completions decide; each run is deterministic (fixed sampling seeds).
set -euo pipefail
BUILD=${BUILD:-build}
R=$BUILD/retort
PY=/usr/bin/python3
command -v curl >/dev/null || { echo "SKIP ref_serve_mark: curl not installed"; exit 0; }
tmp=$(mktemp -d)
srv_pid=""
cleanup() { [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
head -c 60000 "$BUILD/data/kjv.txt" > "$tmp/text.txt"
$R train --data "$tmp/text.txt" --vocab-size 300 --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 \
  --seq-len 256 --batch 2 --steps 10 --lr 3e-3 --eval-every 0 --out "$tmp/m.gguf" --quiet --threads 2 2> "$tmp/train.log"
$R watermark keygen --out "$tmp/k.key" > "$tmp/keygen.json"
KEY_ID=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["key_id"])' "$tmp/keygen.json")
SECRET=$(tr -d '[:space:]' < "$tmp/k.key")

# flag errors: watermark flags without a key, a missing key file
if $R serve --model "$tmp/m.gguf" --db "$tmp/g.db" --port 0 --watermark-delta 3 2> "$tmp/e1"; then
  echo "watermark flags without a key accepted"; exit 1; fi
grep -q -- "--watermark-key-file" "$tmp/e1"
if $R serve --model "$tmp/m.gguf" --db "$tmp/g.db" --port 0 --watermark-key-file "$tmp/nope.key" 2> "$tmp/e2"; then
  echo "missing key file accepted"; exit 1; fi
grep -q "nope.key" "$tmp/e2"

KEY=$($R keys create --db "$tmp/g.db" --name alice --rpm 1000 2>/dev/null)
ADMIN=$($R keys create --db "$tmp/g.db" --name ops --admin 2>/dev/null)

start() { # start DB EXTRA-FLAGS...
  local db=$1; shift
  rm -f "$tmp/port"
  $R serve --model "$tmp/m.gguf" --model-name teacher --db "$db" --port 0 --port-file "$tmp/port" \
    --threads 2 --max-batch 4 "$@" 2> "$tmp/serve.log" &
  srv_pid=$!
  for i in $(seq 1 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
  [ -s "$tmp/port" ] || { echo "server did not start"; cat "$tmp/serve.log"; exit 1; }
  URL="http://127.0.0.1:$(cat "$tmp/port")"
}
stop() { kill -TERM "$srv_pid"; wait "$srv_pid"; srv_pid=""; }
post() { curl -s -o "$3" -w '%{http_code}' "$URL$1" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "$2"; }

# collect OUT.jsonl: 3 completions (200 tokens) and 1 chat answer as {prompt, completion}
collect() {
  local out=$1; : > "$out"
  local prompts=("And God said, Let there be" "In the beginning" "And the earth was")
  local i=0
  for p in "${prompts[@]}"; do
    i=$((i+1))
    code=$(post /v1/completions "{\"model\":\"teacher\",\"prompt\":\"$p\",\"max_tokens\":200,\"temperature\":1,\"top_k\":40,\"seed\":$i}" "$tmp/r.json")
    [ "$code" = 200 ] || { echo "completions: HTTP $code"; cat "$tmp/r.json"; exit 1; }
    $PY -c 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps({"prompt": sys.argv[2], "completion": r["choices"][0]["text"]}))' \
      "$tmp/r.json" "$p" >> "$out"
  done
  code=$(post /v1/chat/completions '{"model":"teacher","messages":[{"role":"user","content":"Tell of the flood."}],"max_tokens":200,"temperature":1,"top_k":40,"seed":9}' "$tmp/r.json")
  [ "$code" = 200 ] || { echo "chat: HTTP $code"; cat "$tmp/r.json"; exit 1; }
  # the chat answer alone (its prompt is the rendered template: not text a detector sees)
  $PY -c 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps({"completion": r["choices"][0]["message"]["content"]}))' \
    "$tmp/r.json" >> "$out"
}

# detect OUT.jsonl WANT(true|false) DETECT-FLAGS...: every record's verdict must be WANT,
# with at least 100 tokens scored in each. The negative checks pass --alpha 1e-6, the level the
# positive ones must reach: at the default 1e-3 four unmarked records give a false "detected"
# in 0.4% of runs by chance alone (a CI run had p = 1.2e-4 on one record)
detect() {
  local in=$1 want=$2; shift 2
  $R watermark detect --tokenizer "$tmp/m.gguf" --input "$in" "$@" > "$tmp/d.jsonl"
  $PY - "$tmp/d.jsonl" "$want" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
want = sys.argv[2] == "true"
assert len(rs) == 4, rs
for r in rs:
    assert r["tokens_scored"] >= 100, r
    assert r["detected"] == want, r
    if want: assert r["p_value"] < 1e-6, r
print("detect:", [(r["tokens_scored"], round(r["z"], 1), r["p_value"]) for r in rs])
PY
}

# ---- watermarked server (defaults: kgw, gamma 0.25, delta 2, h 1)
start "$tmp/g.db" --watermark-key-file "$tmp/k.key"
grep -q "watermark" "$tmp/serve.log"
curl -s "$URL/admin/api/config" -H "Authorization: Bearer $ADMIN" > "$tmp/cfg.json"
$PY - "$tmp/cfg.json" "$KEY_ID" "$SECRET" <<'PY'
import json, sys
raw = open(sys.argv[1]).read()
assert sys.argv[3].lower() not in raw.lower(), "the key itself is in the server config"
cfg = json.loads(raw)
cfg = cfg.get("config", cfg)
wm = json.loads(cfg["watermark"])
want = {"retort_watermark": 1, "scheme": "kgw", "gamma": 0.25, "delta": 2, "context": 1, "key_id": sys.argv[2]}
for k, v in want.items(): assert wm[k] == v, (k, wm)
PY
collect "$tmp/wm.jsonl"
stop
detect "$tmp/wm.jsonl" true --key-file "$tmp/k.key" --server-db "$tmp/g.db"
detect "$tmp/wm.jsonl" true --key-file "$tmp/k.key"
# a different key finds nothing in the same text
$R watermark keygen --out "$tmp/k2.key" > /dev/null
detect "$tmp/wm.jsonl" false --key-file "$tmp/k2.key" --alpha 1e-6
# --server-db refuses a key that is not the one the server used
if $R watermark detect --tokenizer "$tmp/m.gguf" --input "$tmp/wm.jsonl" --key-file "$tmp/k2.key" \
     --server-db "$tmp/g.db" > /dev/null 2> "$tmp/e3"; then echo "wrong key accepted with --server-db"; exit 1; fi
grep -q "key id" "$tmp/e3"

# ---- the same server and database without a key
start "$tmp/g.db"
curl -s "$URL/admin/api/config" -H "Authorization: Bearer $ADMIN" > "$tmp/cfg.json"
$PY -c 'import json,sys; c=json.load(open(sys.argv[1])); c=c.get("config", c); assert c["watermark"] == "none", c' "$tmp/cfg.json"
collect "$tmp/plain.jsonl"
stop
detect "$tmp/plain.jsonl" false --key-file "$tmp/k.key" --alpha 1e-6
if $R watermark detect --tokenizer "$tmp/m.gguf" --input "$tmp/plain.jsonl" --key-file "$tmp/k.key" \
     --server-db "$tmp/g.db" > /dev/null 2> "$tmp/e4"; then echo "--server-db of an unwatermarked server accepted"; exit 1; fi
grep -q "without --watermark-key-file" "$tmp/e4"

# ---- scheme flags reach the sampler: a Gumbel server, detected only as Gumbel
start "$tmp/g.db" --watermark-key-file "$tmp/k.key" --watermark-scheme gumbel
collect "$tmp/gumbel.jsonl"
stop
detect "$tmp/gumbel.jsonl" true --key-file "$tmp/k.key" --server-db "$tmp/g.db"
detect "$tmp/gumbel.jsonl" false --key-file "$tmp/k.key" --scheme kgw --alpha 1e-6
echo "ref_serve_mark: ok"
