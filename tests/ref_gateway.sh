#!/usr/bin/env bash
# ref_gateway.sh — `retort gateway` end to end against two upstreams of different kinds:
# `retort serve` (a tiny model trained here) and a small Node server over llama.cpp that retort
# did not write (tests/node/llamacpp_server.mjs: no usage in its answers, its own key, a 401
# that quotes the key it was sent, an ECHO-AUTH prompt that leaks its Authorization header).
# Checked:
#   - the official openai npm client works unchanged through the gateway (chat, completions,
#     streams with and without include_usage, models, an upstream 404 as the library's
#     NotFoundError), against each upstream (round robin);
#   - round robin: sequential requests alternate between the upstreams (the upstreams' own
#     counts: serve's ledger, the Node server's /stats);
#   - ledger rows = responses: the gateway's ledger has one row per request the test made,
#     with usage (the Node upstream's counted by the gateway, retort serve's as it reported);
#   - a suspended account is refused (403) and the upstreams never see its request;
#   - the upstream keys appear in no response the clients got (even when an upstream echoes
#     them) and in no log line;
#   - an upstream that is down: its requests go to the other (connect failure retried), it is
#     marked down and probed back up once something answers on its port; with none up the
#     client gets 502 in OpenAI's error shape;
#   - a client that leaves mid-stream cancels the upstream request (the Node server counts an
#     aborted generation; the gateway's ledger row is a 499);
#   - with --guard and --embed-model the guard records every request with its embedding, the
#     same bytes `retort serve --guard` records for the same prompt on the same model.
# Prints SKIP when curl, node (>= 20) or tests/node/node_modules is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
R=$BUILD/retort
PY=/usr/bin/python3
command -v curl >/dev/null || { echo "SKIP ref_gateway: curl not installed"; exit 0; }
if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "SKIP ref_gateway: node >= 20 not found"; exit 0
fi
[ -d tests/node/node_modules/node-llama-cpp ] && [ -d tests/node/node_modules/openai ] ||
  { echo "SKIP ref_gateway: tests/node/node_modules missing (cd tests/node && npm ci)"; exit 0; }
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_GPU=false
tmp=$(mktemp -d "${TMPDIR:-/tmp}/retort-gateway-XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
mkdir -p "$tmp/out"
wait_port() { for i in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "no port file $1"; exit 1; }
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

head -c 60000 "$BUILD/data/kjv.txt" > "$tmp/text.txt"
$R train --data "$tmp/text.txt" --vocab-size 300 --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 \
  --seq-len 64 --batch 4 --steps 20 --lr 3e-3 --eval-every 0 --out "$tmp/m.gguf" --quiet --threads 2 2> "$tmp/train.log"

# upstream A: retort serve, behind its own key
UPKEY_A=$($R keys create --db "$tmp/up.db" --name the-gateway --rpm 100000 --tpm 10000000 2>/dev/null)
printf '%s\n' "$UPKEY_A" > "$tmp/key_a"
$R serve --model "$tmp/m.gguf" --model-name teacher --db "$tmp/up.db" --port 0 --port-file "$tmp/port_a" \
  --threads 1 --max-batch 4 2> "$tmp/up_a.log" &
pids+=($!)
# upstream B: the Node server over llama.cpp (slow tokens, so a client can leave mid-stream);
# one gateway presents one key upstream, so B accepts the same key as A
PORT_B=$(free_port)
node tests/node/llamacpp_server.mjs "$tmp/m.gguf" --port "$PORT_B" --key "$UPKEY_A" --name teacher --slow-ms 15 --ignore-eos \
  2> "$tmp/up_b.log" &
pids+=($!)
# a key B does not accept (its 401 quotes it back)
UPKEY_B="sk-wrong-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$UPKEY_B" > "$tmp/key_b"
wait_port "$tmp/port_a"
PORT_A=$(cat "$tmp/port_a")
for i in $(seq 1 200); do grep -q "on 127.0.0.1" "$tmp/up_b.log" && break; sleep 0.05; done
grep -q "on 127.0.0.1" "$tmp/up_b.log" || { cat "$tmp/up_b.log"; echo "the Node upstream did not start"; exit 1; }

# flags: errors name what is wrong
if $R gateway --db "$tmp/g.db" 2> "$tmp/e1"; then echo "gateway without --upstream started"; exit 1; fi
grep -q -- "--upstream" "$tmp/e1"
if $R gateway --upstream ftp://x --db "$tmp/g.db" --port 0 2> "$tmp/e2"; then echo "ftp upstream accepted"; exit 1; fi
grep -q "ftp://x" "$tmp/e2"
: > "$tmp/empty"
if $R gateway --upstream "http://127.0.0.1:$PORT_A/v1" --upstream-key-file "$tmp/empty" --db "$tmp/g.db" 2> "$tmp/e3"; then
  echo "empty key file accepted"; exit 1; fi
grep -q "empty" "$tmp/e3"

# the gateway: A and B, the guard with embeddings from the same model
KEY=$($R keys create --db "$tmp/g.db" --name alice 2>/dev/null)
KEY_RR=$($R keys create --db "$tmp/g.db" --name carol 2>/dev/null)
KEY_S=$($R keys create --db "$tmp/g.db" --name mallory 2>/dev/null)
$R gateway --upstream "http://127.0.0.1:$PORT_A/v1" --upstream "http://127.0.0.1:$PORT_B/v1/" \
  --upstream-key-file "$tmp/key_a" --db "$tmp/g.db" --port 0 --port-file "$tmp/port_g" \
  --embed-model "$tmp/m.gguf" --threads 1 --guard 2> "$tmp/gw.log" &
pids+=($!)
wait_port "$tmp/port_g"
G="http://127.0.0.1:$(cat "$tmp/port_g")"

# the openai client, twice: round robin sends each call to A, then the same call to B
calls=chat,chat_stream,chat_stream_usage,completion,completion_stream,models,echo,echo_stream,error
node tests/node/gateway_client.mjs "$G/v1" "$KEY" teacher "$calls" > "$tmp/out/client1.jsonl"
node tests/node/gateway_client.mjs "$G/v1" "$KEY" teacher "$calls" > "$tmp/out/client2.jsonl"
$PY - "$tmp/out/client1.jsonl" "$tmp/out/client2.jsonl" <<'PY'
import json, sys
echo = {"echo": [], "echo_stream": []}
for f in sys.argv[1:]:
    r = {j["call"]: j for j in map(json.loads, open(f))}
    for k in echo: echo[k].append(r[k]["text"])
    assert all(j["ok"] for j in r.values()), r
    assert r["chat"]["finish"] in ("stop", "length") and isinstance(r["chat"]["text"], str), r["chat"]
    # usage on every answer: the upstream's, or counted by the gateway for the one that sends none
    for k in ("chat", "completion"):
        u = r[k]["usage"]
        assert u and u["completion_tokens"] > 0 and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], r[k]
    assert r["chat_stream"]["chunks"] >= 2 and r["chat_stream"]["usage"] is None, r["chat_stream"]
    u = r["chat_stream_usage"]["usage"]
    assert u and u["prompt_tokens"] > 0 and u["completion_tokens"] > 0, r["chat_stream_usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], u
    assert r["completion_stream"]["chunks"] >= 2, r["completion_stream"]
    assert r["models"]["models"] == ["teacher"], r["models"]
    e = r["error"]["error"]
    assert e and e["status"] == 404 and e["type"] == "NotFoundError" and "no-such-model" in e["message"], e
# (9 calls a run: the second run sends each call to the other upstream, so B echoed once each)
assert all(any(t == "you sent: Bearer ***" for t in v) for v in echo.values()), echo
print("ref_gateway: openai client ok through both upstreams")
PY

# round robin: 8 sequential requests alternate (the upstreams' own counts)
served_a() { $PY -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from usage where endpoint like \"/v1/%\"").fetchone()[0])' "$tmp/up.db"; }
served_b() { curl -s "http://127.0.0.1:$PORT_B/stats" | $PY -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }
a0=$(served_a); b0=$(served_b)
for i in $(seq 1 8); do
  code=$(curl -s -o "$tmp/out/rr$i.json" -w '%{http_code}' "$G/v1/completions" -H "Authorization: Bearer $KEY_RR" \
    -H 'Content-Type: application/json' -d '{"model":"teacher","prompt":"And it came to pass","max_tokens":3}')
  [ "$code" = 200 ] || { echo "rr $i: HTTP $code"; cat "$tmp/out/rr$i.json"; exit 1; }
done
a1=$(served_a); b1=$(served_b)
[ $((a1 - a0)) = 4 ] && [ $((b1 - b0)) = 4 ] || { echo "round robin: A got $((a1 - a0)), B got $((b1 - b0)) of 8"; exit 1; }

# a suspended account is refused, and no upstream sees the request
$R keys suspend --db "$tmp/g.db" --name mallory --reason "test" 2>/dev/null
code=$(curl -s -o "$tmp/out/susp.json" -w '%{http_code}' "$G/v1/chat/completions" -H "Authorization: Bearer $KEY_S" \
  -H 'Content-Type: application/json' -d '{"model":"teacher","messages":[{"role":"user","content":"hi"}],"max_tokens":3}')
[ "$code" = 403 ] || { echo "suspended: HTTP $code"; exit 1; }
grep -q '"code":"account_suspended"' "$tmp/out/susp.json"
[ "$(served_a)" = "$a1" ] && [ "$(served_b)" = "$b1" ] || { echo "a suspended account's request reached an upstream"; exit 1; }

# a client that leaves mid-stream cancels the upstream request (a gateway in front of B only)
KEY_D=$($R keys create --db "$tmp/g.db" --name dave 2>/dev/null)
aborted0=$(curl -s "http://127.0.0.1:$PORT_B/stats" | $PY -c 'import json,sys; print(json.load(sys.stdin)["aborted"])')
DEAD=$(free_port)
$R gateway --upstream "http://127.0.0.1:$DEAD/v1" --upstream "http://127.0.0.1:$PORT_B/v1" \
  --upstream-key-file "$tmp/key_a" --db "$tmp/g.db" --port 0 --port-file "$tmp/port_g2" 2> "$tmp/gw2.log" &
pids+=($!)
wait_port "$tmp/port_g2"
G2="http://127.0.0.1:$(cat "$tmp/port_g2")"
# (the dead upstream first: its connect failure is retried on B, and it is marked down)
for i in 1 2; do
  code=$(curl -s -o "$tmp/out/retry$i.json" -w '%{http_code}' "$G2/v1/completions" -H "Authorization: Bearer $KEY_D" \
    -H 'Content-Type: application/json' -d '{"model":"teacher","prompt":"And","max_tokens":2}')
  [ "$code" = 200 ] || { echo "retry on the next upstream: HTTP $code"; cat "$tmp/out/retry$i.json"; exit 1; }
done
curl -s "$G2/metrics" > "$tmp/out/metrics2.txt"
grep -q "retort_upstream_up{upstream=\"http://127.0.0.1:$DEAD/v1\"} 0" "$tmp/out/metrics2.txt"
# (the health probe brings it back once something answers there: any HTTP status below 500)
$PY -m http.server "$DEAD" --bind 127.0.0.1 > /dev/null 2>&1 &
web_pid=$!
for i in $(seq 1 100); do
  curl -s "$G2/metrics" | grep -q "retort_upstream_up{upstream=\"http://127.0.0.1:$DEAD/v1\"} 1" && break; sleep 0.1
done
curl -s "$G2/metrics" | grep -q "retort_upstream_up{upstream=\"http://127.0.0.1:$DEAD/v1\"} 1" ||
  { echo "the revived upstream was not probed back up"; exit 1; }
kill "$web_pid"; wait "$web_pid" 2>/dev/null || true
curl -s -N --max-time 0.4 "$G2/v1/chat/completions" -H "Authorization: Bearer $KEY_D" -H 'Content-Type: application/json' \
  -d '{"model":"teacher","messages":[{"role":"user","content":"And God"}],"max_tokens":60,"stream":true}' \
  > "$tmp/out/cut.txt" || true
grep -q '^data: {' "$tmp/out/cut.txt" || { echo "no event before the cut"; cat "$tmp/out/cut.txt"; exit 1; }
! grep -q 'DONE' "$tmp/out/cut.txt" || { echo "the stream ended before the cut: cannot test a disconnect"; exit 1; }
for i in $(seq 1 60); do
  ab=$(curl -s "http://127.0.0.1:$PORT_B/stats" | $PY -c 'import json,sys; print(json.load(sys.stdin)["aborted"])')
  [ "$ab" -gt "$aborted0" ] && break; sleep 0.05
done
[ "$ab" -gt "$aborted0" ] || { echo "the upstream generation was not cancelled"; exit 1; }

# every upstream down: 502 in OpenAI's shape
$R gateway --upstream "http://127.0.0.1:$DEAD/v1" --db "$tmp/g.db" --port 0 --port-file "$tmp/port_g3" 2> "$tmp/gw3.log" &
pids+=($!)
wait_port "$tmp/port_g3"
code=$(curl -s -o "$tmp/out/down.json" -w '%{http_code}' "http://127.0.0.1:$(cat "$tmp/port_g3")/v1/chat/completions" \
  -H "Authorization: Bearer $KEY_D" -H 'Content-Type: application/json' \
  -d '{"model":"teacher","messages":[{"role":"user","content":"x"}],"max_tokens":2,"stream":true}')
[ "$code" = 502 ] || { echo "all upstreams down: HTTP $code"; cat "$tmp/out/down.json"; exit 1; }
$PY -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert e["code"]=="upstream_unavailable" and e["type"]=="server_error" and e["message"], e' "$tmp/out/down.json"

# an upstream that refuses the gateway's key (and quotes it): 502, the key not repeated
KEY_W=$($R keys create --db "$tmp/g.db" --name erin 2>/dev/null)
$R gateway --upstream "http://127.0.0.1:$PORT_B/v1" --upstream-key-file "$tmp/key_b" --db "$tmp/g.db" --port 0 \
  --port-file "$tmp/port_g4" 2> "$tmp/gw4.log" &
pids+=($!)
wait_port "$tmp/port_g4"
code=$(curl -s -o "$tmp/out/refused.json" -w '%{http_code}' "http://127.0.0.1:$(cat "$tmp/port_g4")/v1/completions" \
  -H "Authorization: Bearer $KEY_W" -H 'Content-Type: application/json' -d '{"model":"teacher","prompt":"x","max_tokens":2}')
[ "$code" = 502 ] || { echo "upstream refusing the key: HTTP $code"; cat "$tmp/out/refused.json"; exit 1; }
grep -q '"code":"upstream_error"' "$tmp/out/refused.json"

# the ledger: one row per request made (openai client: 2 x 9; carol 8; mallory 1; dave 2 + 1 + 1), with usage
sleep 0.3
$PY - "$tmp/g.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = dict(db.execute("select a.name, count(*) from usage u join accounts a on a.id = u.account_id group by a.name"))
want = {"alice": 18, "carol": 8, "mallory": 1, "dave": 4, "erin": 1}
assert rows == want, (rows, want)
st = dict(db.execute("select a.name || ':' || u.status, count(*) from usage u join accounts a on a.id = u.account_id group by 1"))
assert st.get("alice:200") == 16 and st.get("alice:404") == 2, st
assert st.get("carol:200") == 8 and st.get("mallory:403") == 1, st
assert st.get("dave:499") == 1 and st.get("dave:502") == 1 and st.get("dave:200") == 2, st
# every served generation has its usage; a completion may be empty when the tiny model ends its
# turn at once (finish_reason stop, 0 completion tokens), but not all of them
q = ("from usage u join accounts a on a.id = u.account_id where a.name in ('alice','carol') "
     "and u.status = 200 and u.endpoint != '/v1/models'")
bad = db.execute("select count(*) " + q + " and (u.prompt_tokens is null or u.prompt_tokens <= 0 "
                 "or u.completion_tokens is null or u.completion_tokens < 0 "
                 "or (u.completion_tokens = 0 and coalesce(u.finish_reason, '') != 'stop'))").fetchone()[0]
assert bad == 0, ("rows without usage: %d" % bad, db.execute("select u.endpoint, u.prompt_tokens, u.completion_tokens, "
                  "u.finish_reason " + q).fetchall())
some = db.execute("select count(*) " + q + " and u.completion_tokens > 0").fetchone()[0]
assert some >= 20, "only %d rows with completion tokens" % some
# the guard saw every request that passed its hook, with an embedding of the model's width
n, n_emb = db.execute("select count(*), sum(length(emb) = 32) from guard_events").fetchone()
assert n == 16 + 8 and n_emb == n, (n, n_emb)
print("ref_gateway: ledger %s, guard events %d (all with embeddings)" % (rows, n))
PY

# the embedding is the same as serve's for the same prompt on the same model
KEY_E=$($R keys create --db "$tmp/e.db" --name eve 2>/dev/null)
$R serve --model "$tmp/m.gguf" --model-name teacher --db "$tmp/e.db" --port 0 --port-file "$tmp/port_e" --threads 1 --guard \
  2> "$tmp/e.log" &
pids+=($!)
wait_port "$tmp/port_e"
body='{"model":"teacher","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Who made the firmament?"}],"max_tokens":2}'
curl -s -o /dev/null "http://127.0.0.1:$(cat "$tmp/port_e")/v1/chat/completions" -H "Authorization: Bearer $KEY_E" \
  -H 'Content-Type: application/json' -d "$body"
curl -s -o /dev/null "$G/v1/chat/completions" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "$body"
sleep 0.5
$PY - "$tmp/e.db" "$tmp/g.db" <<'PY'
import sqlite3, sys
a = sqlite3.connect(sys.argv[1]).execute("select emb, emb_scale, prompt_hash, minhash from guard_events order by id desc limit 1").fetchone()
b = sqlite3.connect(sys.argv[2]).execute("select emb, emb_scale, prompt_hash, minhash from guard_events order by id desc limit 1").fetchone()
assert a is not None and b is not None, (a, b)
assert a[2] == b[2] and a[3] == b[3], "prompt features differ"
assert a[0] and b[0] and len(a[0]) == len(b[0]), (a[0], b[0])
# int8 codes of the same hidden state (one quantisation step of slack for float summation order)
d = max(min(abs(x - y), 256 - abs(x - y)) for x, y in zip(a[0], b[0]))
assert d <= 1 and abs(a[1] - b[1]) <= 1e-3 * abs(a[1]), (d, a[1], b[1])
print("ref_gateway: guard embedding equals serve's (max code difference %d)" % d)
PY

# the upstream keys: in no response, no log line
if grep -rlF -e "$UPKEY_A" -e "$UPKEY_B" "$tmp/out" "$tmp/gw.log" "$tmp/gw2.log" "$tmp/gw3.log" "$tmp/gw4.log"; then
  echo "an upstream key leaked (files above)"; exit 1
fi
echo "ref_gateway: ok"
