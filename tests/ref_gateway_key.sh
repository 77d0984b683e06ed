#!/usr/bin/env bash
# ref_gateway_key.sh — rotating the upstream key of a running `retort gateway`
# (--upstream-key-file), with requests flowing all the while. The upstream is a small Node
# server written here (not retort) that accepts only the keys listed in a file the test edits
# (401 for any other, as a real upstream with a revoked key would) and records the key of
# every request it gets. Checked:
#   - rotation by renaming a new file over the key file (no signal): the gateway notices the
#     change and the upstream sees the new key without a restart; the old key is then revoked
#     upstream and requests keep working;
#   - rotation by rewriting the file in place + SIGHUP: the same;
#   - a key file made unreadable (empty) + SIGHUP: a warning, the current key stays;
#   - an upstream that echoes every key it was ever sent: the answer shows none of the three
#     (the replaced keys stay scrubbed, not only the current one);
#   - no request failed (every one of them 200, sequential, before, during and after), the
#     same gateway process throughout, and no key in the gateway's log or in any answer.
# Prints SKIP when curl or node (>= 18) is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
R=$BUILD/retort
command -v curl >/dev/null || { echo "SKIP ref_gateway_key: curl not installed"; exit 0; }
if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 18 ]; then
  echo "SKIP ref_gateway_key: node >= 18 not found"; exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/retort-gwkey-XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "ref_gateway_key: FAIL: $*"; echo "--- gateway log"; cat "$tmp/gw.log"; exit 1; }
wait_port() { for i in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "no port file $1"; exit 1; }

# the upstream rereads its list on every request: replace it whole (rename), never rewrite it
# in place, or a request landing between the truncation and the write sees no key at all
valid() { printf '%s\n' "$@" > "$tmp/valid.new" && mv "$tmp/valid.new" "$tmp/valid"; }
K1=sk-upstream-one-7f3a9c01
K2=sk-upstream-two-b84e2d02
K3=sk-upstream-three-c5d1e703
cat > "$tmp/upstream.mjs" <<'EOF'
// accepts the keys listed in VALID (one a line, reread per request); logs each request's key
import http from "node:http";
import fs from "node:fs";
const [valid, seen, portFile] = process.argv.slice(2);
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const key = (req.headers.authorization || "").replace(/^Bearer /, "");
    const ok = fs.readFileSync(valid, "utf8").split("\n").filter(Boolean).includes(key);
    if (req.method === "POST") fs.appendFileSync(seen, key + "\n");
    if (!ok) {
      res.writeHead(401, { "Content-Type": "application/json" });
      return res.end('{"error":{"message":"invalid key","type":"invalid_request_error","code":"invalid_api_key"}}');
    }
    res.writeHead(200, { "Content-Type": "application/json" });
    let text = " ok";
    try { if (JSON.parse(Buffer.concat(chunks).toString("utf8")).prompt === "echo") // every key it was ever sent
      text = [...new Set(fs.readFileSync(seen, "utf8").split("\n").filter(Boolean))].join(" "); } catch { /* plain */ }
    if (req.method === "GET")
      return res.end('{"object":"list","data":[{"id":"up","object":"model","created":0,"owned_by":"test"}]}');
    res.end(JSON.stringify({ id: "cmpl-1", object: "text_completion", created: 0, model: "up",
      choices: [{ index: 0, text, logprobs: null, finish_reason: "length" }],
      usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } }));
  });
});
server.listen(0, "127.0.0.1", () => fs.writeFileSync(portFile, String(server.address().port)));
EOF
valid "$K1"
: > "$tmp/seen"
node "$tmp/upstream.mjs" "$tmp/valid" "$tmp/seen" "$tmp/up.port" 2> "$tmp/up.log" &
pids+=($!)
wait_port "$tmp/up.port"

KEY=$($R keys create --db "$tmp/g.db" --name rot 2>/dev/null)
printf '%s\n' "$K1" > "$tmp/key"
$R gateway --upstream "http://127.0.0.1:$(cat "$tmp/up.port")/v1" --upstream-key-file "$tmp/key" --db "$tmp/g.db" \
  --port 0 --port-file "$tmp/gw.port" --keyless-rpm 0 2> "$tmp/gw.log" &
GW=$!
pids+=($GW)
wait_port "$tmp/gw.port"
URL="http://127.0.0.1:$(cat "$tmp/gw.port")/v1/completions"

# the client: sequential requests until told to stop; every status and body kept
touch "$tmp/go"
(
  i=0
  while [ -e "$tmp/go" ]; do
    i=$((i + 1))
    curl -s -o "$tmp/body.$((i % 4))" -w '%{http_code}\n' -H "Authorization: Bearer $KEY" \
      -H 'Content-Type: application/json' -d '{"model":"up","prompt":"hi","max_tokens":1}' "$URL" >> "$tmp/codes"
    cat "$tmp/body.$((i % 4))" >> "$tmp/bodies"; echo >> "$tmp/bodies"
  done
) &
CLIENT=$!
pids+=($CLIENT)

# wait until the upstream's last n requests all carried key k
sees() { # key n
  for i in $(seq 1 200); do
    [ "$(tail -n "$2" "$tmp/seen" | grep -c -x -- "$1" || true)" = "$2" ] && return 0
    sleep 0.05
  done
  return 1
}
sees "$K1" 5 || fail "the upstream never saw the first key"

# 1. a new file renamed over the key file, no signal; the upstream accepts both meanwhile
valid "$K1" "$K2"
printf '%s\n' "$K2" > "$tmp/key.new" && mv "$tmp/key.new" "$tmp/key"
sees "$K2" 5 || fail "after the rename the upstream did not see the new key"
valid "$K2" # the old key revoked upstream
n_before=$(wc -l < "$tmp/codes")
for i in $(seq 1 200); do [ "$(wc -l < "$tmp/codes")" -ge $((n_before + 5)) ] && break; sleep 0.05; done

# 2. the file rewritten in place, then SIGHUP
valid "$K2" "$K3"
printf '%s\n' "$K3" > "$tmp/key"
kill -HUP "$GW"
sees "$K3" 5 || fail "after SIGHUP the upstream did not see the new key"
valid "$K3"

# 3. an empty key file + SIGHUP: the current key stays
: > "$tmp/key"
kill -HUP "$GW"
for i in $(seq 1 100); do grep -q "the current key stays" "$tmp/gw.log" && break; sleep 0.05; done
grep -q "the current key stays" "$tmp/gw.log" || fail "no warning for an empty key file"
n_before=$(wc -l < "$tmp/codes")
for i in $(seq 1 200); do [ "$(wc -l < "$tmp/codes")" -ge $((n_before + 10)) ] && break; sleep 0.05; done
sees "$K3" 10 || fail "an unreadable key file changed the key in use"

rm -f "$tmp/go"
wait "$CLIENT"
kill -0 "$GW" 2>/dev/null || fail "the gateway is not running any more"
total=$(wc -l < "$tmp/codes")
bad=$(grep -v -c -x 200 "$tmp/codes" || true)
echo "ref_gateway_key: $total requests through two rotations and a bad key file, $bad not 200;" \
  "upstream saw $(grep -c -x "$K1" "$tmp/seen") / $(grep -c -x "$K2" "$tmp/seen") / $(grep -c -x "$K3" "$tmp/seen")" \
  "requests with key 1 / 2 / 3"
[ "$bad" = 0 ] || fail "$bad requests failed: $(sort "$tmp/codes" | uniq -c | tr '\n' ' ')"
[ "$total" -ge 30 ] || fail "only $total requests were made"
grep -q -x 401 "$tmp/codes" && fail "a client got a 401"
for k in "$K1" "$K2" "$K3"; do
  grep -q -- "$k" "$tmp/gw.log" && fail "a key is in the gateway's log"
  grep -q -- "$k" "$tmp/bodies" && fail "a key is in an answer"
done
[ "$(grep -c "presented from the next request on" "$tmp/gw.log")" = 2 ] || fail "expected two reloads in the log"
curl -s -o "$tmp/echo.json" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"model":"up","prompt":"echo","max_tokens":1}' "$URL"
[ "$(grep -o '\*\*\*' "$tmp/echo.json" | wc -l)" = 3 ] || fail "the echoed keys were not scrubbed: $(cat "$tmp/echo.json")"
for k in "$K1" "$K2" "$K3"; do grep -q -- "$k" "$tmp/echo.json" && fail "an old or current key reached the client"; done
echo "ref_gateway_key: ok"
