#!/usr/bin/env bash
# ref_serve.sh — the binaries end to end: `retort keys` makes accounts, `retort serve` runs on a
# free loopback port, curl asks for completions with log-probs and they are checked against
# `retort forward` (logits of prompt + generated ids, log-softmax in Python); `retort harvest`
# drains the server (resumable), the ledger (read with Python's sqlite3) holds exactly the
# responses, and suspend / resume / revoke from the CLI take effect on the running server.
set -euo pipefail
BUILD=${BUILD:-build}
R=$BUILD/retort
PY=/usr/bin/python3
command -v curl >/dev/null || { echo "SKIP ref_serve: curl not installed"; exit 0; }
tmp=$(mktemp -d)
srv_pid=""
cleanup() { [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
head -c 60000 "$BUILD/data/kjv.txt" > "$tmp/text.txt"
$R train --data "$tmp/text.txt" --vocab-size 300 --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 \
  --seq-len 64 --batch 4 --steps 20 --lr 3e-3 --eval-every 0 --out "$tmp/m.gguf" --quiet --threads 2 2> "$tmp/train.log"

# flags: errors name what is wrong
if $R serve --model "$tmp/m.gguf" 2> "$tmp/e1"; then echo "serve without --db succeeded"; exit 1; fi
grep -q -- "--db" "$tmp/e1"
if $R serve --model "$tmp/nope.gguf" --db "$tmp/g.db" --port 0 2> "$tmp/e2"; then echo "bad model accepted"; exit 1; fi
grep -q "nope.gguf" "$tmp/e2"

KEY=$($R keys create --db "$tmp/g.db" --name alice 2>/dev/null)
SKEY=$($R keys create --db "$tmp/g.db" --name mallory --rpm 1000 2>/dev/null)
ADMIN=$($R keys create --db "$tmp/g.db" --name ops --admin 2>/dev/null)
$R serve --model "$tmp/m.gguf" --model-name teacher --db "$tmp/g.db" --port 0 --port-file "$tmp/port" \
  --threads 1 --max-batch 4 2> "$tmp/serve.log" &
srv_pid=$!
for i in $(seq 1 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
PORT=$(cat "$tmp/port")
URL="http://127.0.0.1:$PORT"
post() { curl -s -o "$3" -w '%{http_code}' "$URL$1" -H "Authorization: Bearer $4" -H 'Content-Type: application/json' -d "$2"; }

# log-probs against retort forward
code=$(post /v1/completions '{"model":"teacher","prompt":"And God said, Let there be","max_tokens":10,"temperature":1,"seed":11,"logprobs":5}' "$tmp/c.json" "$KEY")
[ "$code" = 200 ] || { echo "completions: HTTP $code"; cat "$tmp/c.json"; exit 1; }
printf 'And God said, Let there be' > "$tmp/prompt.txt"
pids=$($R tokenize --model "$tmp/m.gguf" --input "$tmp/prompt.txt" | tr -d '[] \n')
cids=$($PY -c 'import json,sys; print(",".join(str(e["id"]) for e in json.load(open(sys.argv[1]))["choices"][0]["logprobs"]["content"]))' "$tmp/c.json")
$R forward --model "$tmp/m.gguf" --ids "$pids,$cids" --out "$tmp/logits.f32" 2>/dev/null
$PY - "$tmp/c.json" "$tmp/logits.f32" "$pids" <<'PY'
import json, math, struct, sys
resp = json.load(open(sys.argv[1]))
raw = open(sys.argv[2], "rb").read()
n_prompt = len(sys.argv[3].split(","))
content = resp["choices"][0]["logprobs"]["content"]
T = n_prompt + len(content)
V = len(raw) // 4 // T
logits = struct.unpack("<%df" % (T * V), raw)
worst = 0.0
for i, e in enumerate(content):
    row = logits[(n_prompt + i - 1) * V:(n_prompt + i) * V]
    m = max(row); lse = m + math.log(sum(math.exp(x - m) for x in row))
    lp = [x - lse for x in row]
    worst = max(worst, abs(e["logprob"] - lp[e["id"]]))
    ref_top = sorted(lp, reverse=True)[:5]
    for got, want in zip(e["top_logprobs"], ref_top):
        worst = max(worst, abs(got["logprob"] - want))
    assert bytes(e["bytes"]).decode("utf-8", "replace") == e["token"] or "\ufffd" in e["token"], e
text = resp["choices"][0]["text"]
assert resp["usage"]["completion_tokens"] == len(content) == 10, resp["usage"]
print("ref_serve: %d tokens, max |logprob - forward| = %.2e" % (len(content), worst))
sys.exit(0 if worst < 2e-4 else 1)
PY

# harvest (chat, log-probs), then again: nothing left to do
printf 'In the beginning\nAnd the earth\nLet there be light\nAnd God saw\nthe waters\nthe firmament\nAnd the evening\nthe morning\n' > "$tmp/prompts.txt"
$R harvest --endpoint "$URL" --api-key "$KEY" --prompts "$tmp/prompts.txt" --out "$tmp/h.jsonl" --chat \
  --concurrency 3 --max-tokens 16 --top-logprobs 2 --quiet 2> "$tmp/h.log"
[ "$(wc -l < "$tmp/h.jsonl")" = 8 ]
$R harvest --endpoint "$URL/v1" --api-key "$KEY" --prompts "$tmp/prompts.txt" --out "$tmp/h.jsonl" --chat --quiet 2> "$tmp/h2.log"
grep -q "8 already done, 0 written" "$tmp/h2.log"
$PY - "$tmp/h.jsonl" "$tmp/g.db" <<'PY'
import json, sqlite3, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
db = sqlite3.connect(sys.argv[2])
for l in lines:
    assert set(["prompt", "completion", "logprobs"]) <= set(l), l.keys()
    # the API's own logprobs object: the chosen tokens spell the completion, two alternatives each
    content = l["logprobs"]["content"]
    # (a completion that ended at once, on end-of-text, has no tokens to show)
    assert (content or l["completion"] == "") and all(len(e["top_logprobs"]) == 2 for e in content), (l["completion"], content[:2])
    assert bytes(b for e in content for b in e["bytes"]).decode("utf-8", "replace").startswith(l["completion"])
    row = db.execute("SELECT status, completion_tokens, prompt_tokens FROM usage WHERE request_id = ?", (l["id"],)).fetchone()
    assert row and row[0] == 200 and row[1] == l["usage"]["completion_tokens"] and row[2] == l["usage"]["prompt_tokens"], (row, l["usage"])
n = db.execute("SELECT count(*) FROM usage WHERE endpoint = '/v1/chat/completions'").fetchone()[0]
assert n == len(lines) == 8, n
print("ref_serve: %d harvested lines, each on the ledger" % len(lines))
PY

# the CLI acts on the running server
$R keys suspend --db "$tmp/g.db" --name mallory --reason "harvesting pattern" 2>/dev/null
code=$(post /v1/completions '{"model":"teacher","prompt":"x","max_tokens":1}' "$tmp/s.json" "$SKEY")
# the client is told only that it is suspended and a reference; the reason is in the server's log
[ "$code" = 403 ] && grep -q "account_suspended" "$tmp/s.json" && ! grep -q "harvesting pattern" "$tmp/s.json"
ref=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["error"]["message"]; print(m.split("reference ")[1].rstrip("."))' "$tmp/s.json")
grep -q "$ref refused (403 account_suspended).*harvesting pattern" "$tmp/serve.log"
set +e
$R harvest --endpoint "$URL" --api-key "$SKEY" --prompts "$tmp/prompts.txt" --out "$tmp/m.jsonl" --quiet 2> "$tmp/m.log"
rc=$?
set -e
[ $rc = 3 ] && grep -q "account_suspended\|suspended" "$tmp/m.jsonl.errors.jsonl" && ! grep -q "harvesting pattern" "$tmp/m.jsonl.errors.jsonl"
$R keys resume --db "$tmp/g.db" --name mallory 2>/dev/null
code=$(post /v1/completions '{"model":"teacher","prompt":"x","max_tokens":1}' "$tmp/s.json" "$SKEY")
[ "$code" = 200 ]
kid=$(echo "$SKEY" | cut -c4-15)
$R keys revoke --db "$tmp/g.db" "$kid" 2>/dev/null
code=$(post /v1/completions '{"model":"teacher","prompt":"x","max_tokens":1}' "$tmp/s.json" "$SKEY")
[ "$code" = 401 ]
# 1 completion + 1 model lookup + 8 harvested chats
$R keys list --db "$tmp/g.db" > "$tmp/list.txt"
grep -q "alice" "$tmp/list.txt" && grep -q "mallory" "$tmp/list.txt"
# the admin API sees the same
curl -s "$URL/admin/api/accounts" -H "Authorization: Bearer $ADMIN" > "$tmp/acc.json"
$PY -c 'import json,sys; a={x["name"]: x for x in json.load(open(sys.argv[1]))["accounts"]}; assert a["alice"]["usage"]["ok_requests"] == 10, a["alice"]["usage"]' "$tmp/acc.json"
curl -s "$URL/metrics" > "$tmp/metrics.txt"
grep -q 'retort_requests_total{endpoint="/v1/chat/completions",status="200"} 8' "$tmp/metrics.txt"

# SIGHUP (a reload request; serve has no key file to reread) is logged and serving goes on
kill -HUP "$srv_pid"
for i in $(seq 1 100); do grep -q "SIGHUP: nothing to reload" "$tmp/serve.log" && break; sleep 0.05; done
grep -q "SIGHUP: nothing to reload" "$tmp/serve.log" || { echo "no SIGHUP line"; cat "$tmp/serve.log"; exit 1; }
kill -0 "$srv_pid" || { echo "serve ended on SIGHUP"; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")
[ "$code" = 200 ] || { echo "health after SIGHUP: HTTP $code"; exit 1; }

# a clean stop on SIGTERM
kill -TERM "$srv_pid"
wait "$srv_pid"
srv_pid=""
echo "ref_serve: ok"
