#!/usr/bin/env bash
# tests/ref_sim_personas.sh — the traffic of the simulator's personas for issue 16 has the
# shape each is meant to have. `retort simulate --dry-run` runs a whole day without a server
# (every request answered 200) and writes each request as it would leave; Python checks the
# stream against crafted expectations, and re-derives independently what it can:
#   - the careful swarm's 40 keys are distinct accounts with their own addresses and clients,
#     signed up spread over weeks (no burst), each a few dozen natural requests;
#   - the nightly evaluation job reruns exactly the same prompt list each period, at a regular
#     pace, temperature 0, max_tokens at the cap;
#   - the naive sybil's keys share one client, one /24 and one template, signed up in a burst;
#   - the prober asks max_tokens 1 with top_logprobs 20, and each prompt is a prefix of a Debian
#     fortune of the other half than the walker's, halves recomputed here (FNV-1a + splitmix
#     finaliser, a second implementation of guard_source_half_of);
#   - the warm-up mimic uses the API like a person, then harvests exactly its target from
#     another source;
#   - the careful harvester stays under the rate limit with irregular gaps, and the
#     paraphrasing harvester's instructions vary;
#   - everyday halves a and b use disjoint templates; man-page prompts name installed pages.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
R=$BUILD/retort
CORPUS=$BUILD/data/kjv.txt
[ -f "$CORPUS" ] || { echo "SKIP: no corpus at $CORPUS (make corpus)"; exit 0; }
[ -f /usr/share/games/fortunes/fortunes ] || { echo "SKIP: Debian's fortunes not installed (scripts/deps.sh)"; exit 0; }
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
MAN=man
[ "$(ls /usr/share/man/man1 2>/dev/null | wc -l)" -ge 40 ] || MAN=""

cat > "$D/day.json" <<EOF
{"name": "t", "seed": 7, "hours": 24, "max_tokens": 24, "forwarded_for": true, "source": "everyday/b",
 "limits": {"rpm": 60},
 "personas": [
  {"name": "user", "kind": "benign", "count": 30, "requests_per_day": [4, 30], "source": "everyday/a"},
  {"name": "walker", "kind": "walk", "count": 1, "requests": 150, "source": "fortunes/a"},
  {"name": "evaljob", "kind": "evaljob", "count": 2, "suite_size": 30, "period_hours": 8, "interval_s": 15},
  {"name": "prober", "kind": "prober", "count": 1, "requests": 300, "source": "fortunes/b"},
  {"name": "swarm", "kind": "swarm", "count": 1, "keys": 40, "requests_per_key": 25},
  {"name": "sybil", "kind": "sybil", "count": 1, "keys": 25, "addresses": 3, "requests": 400},
  {"name": "warmup", "kind": "warmup", "count": 1, "warmup_hours": 14, "requests": 200, "harvest_source": "fortunes/b"},
  {"name": "careful", "kind": "careful", "count": 1, "requests": 600},
  {"name": "para", "kind": "paraphrase", "count": 1, "requests": 300}
  ${MAN:+, {\"name\": \"manuser\", \"kind\": \"power\", \"count\": 2, \"requests_per_day\": [40, 60], \"source\": \"man/a\"\}}
 ]}
EOF
"$R" simulate --scenario "$D/day.json" --corpus "$CORPUS" --dry-run "$D/day.jsonl" --quiet

# a bad source is refused with the field named
printf '{"personas": [{"kind": "benign", "source": "novels"}]}' > "$D/bad.json"
if "$R" simulate --scenario "$D/bad.json" --check 2> "$D/bad.err"; then echo "FAIL: source novels accepted"; exit 1; fi
grep -q 'personas\[0\].source' "$D/bad.err" || { echo "FAIL: error does not name the field: $(cat "$D/bad.err")"; exit 1; }

/usr/bin/python3 - "$D/day.jsonl" "$MAN" <<'EOF'
import collections, glob, json, os, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
have_man = sys.argv[2] == "man"
by = collections.defaultdict(list)
for r in rows:
    by[r["persona"]].append(r)
T0 = 1736121600
def text(r):
    b = r["body"]
    return b["messages"][-1]["content"] if "messages" in b else b["prompt"]
def acc(rs):
    d = collections.defaultdict(list)
    for r in rs:
        d[r["account"]].append(r)
    return d

# --- careful swarm: 40 distinct keys, own addresses and clients, spread sign-ups, human volume
sw = acc(by["swarm"])
assert len(sw) == 40, len(sw)
assert len({r["group"] for r in by["swarm"]}) == 1, "one operation, one label group"
first = {a: rs[0] for a, rs in sw.items()}
xff = {r["xff"] for r in first.values()}
assert len(xff) == 40, f"each key its own address: {len(xff)}"
assert len({".".join(x.split(".")[:2]) for x in xff}) >= 30, "addresses from many networks"
assert len({r["ua"] for r in first.values()}) >= 15, "clients vary"
assert len({tuple(r["headers"]) for r in first.values()}) >= 2, "header orders vary"
created = sorted(r["created_at"] for r in first.values())
assert created[-1] - created[0] > 20 * 86400, "sign-ups spread over weeks"
assert all(c < T0 for c in created)
burst = max(sum(1 for c in created if 0 <= c - x < 900) for x in created)
assert burst < 5, f"no sign-up burst (the guard's burst rule needs 5 in 15 min): {burst}"
counts = sorted(len(v) for v in sw.values())
assert 12 <= statistics.median(counts) <= 45 and counts[-1] < 120, counts
allp = [text(r) for r in by["swarm"]]
assert len(set(allp)) > 0.6 * len(allp), f"natural, mostly distinct requests: {len(set(allp))} of {len(allp)}"
assert not any("Continue" in p for p in allp)

# --- nightly evaluation job: the same list every run, regular pace, deterministic decoding
for a, rs in acc(by["evaljob"]).items():
    runs, cur = [], [rs[0]]
    for x, y in zip(rs, rs[1:]):
        if y["t"] - x["t"] > 3600:
            runs.append(cur); cur = []
        cur.append(y)
    runs.append(cur)
    assert len(runs) == 3, f"{a}: {len(runs)} runs in 24 h at period 8 h"
    ref = [text(r) for r in runs[0]]
    assert len(ref) == 30 and len(set(ref)) >= 28, ref
    for run in runs[1:]:
        assert [text(r) for r in run] == ref, f"{a}: a rerun differs"
    for run in runs:
        gaps = [y["t"] - x["t"] for x, y in zip(run, run[1:])]
        m = statistics.mean(gaps)
        assert 13 < m < 17 and statistics.pstdev(gaps) / m < 0.1, (m, statistics.pstdev(gaps))
    assert all(r["body"]["temperature"] == 0 and r["body"]["max_tokens"] == 24 for r in rs)
    assert not rs[0]["attack"]
assert len({text(acc(by["evaljob"])[a][0]) for a in acc(by["evaljob"])}) == 2, "two jobs, two suites"

# --- naive sybil: one client, one /24, one template, a burst of sign-ups
sy = acc(by["sybil"])
assert len(sy) == 25
assert len({r["ua"] for r in by["sybil"]}) == 1
assert len({r["xff"] for r in by["sybil"]}) == 3 and len({r["xff"].rsplit(".", 1)[0] for r in by["sybil"]}) == 1
cs = [rs[0]["created_at"] for rs in sy.values()]
assert max(cs) - min(cs) <= 900
starts = collections.Counter(" ".join(text(r).split()[:3]) for r in by["sybil"])
assert starts.most_common(1)[0][1] > 0.9 * len(by["sybil"]), starts.most_common(3)

# --- fortunes, halves recomputed: FNV-1a 64 then splitmix64's finaliser of (h ^ 0x5eed), low bit
M = (1 << 64) - 1
def half(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) & M
    x = h ^ 0x5eed
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M
    return 1 + ((x ^ (x >> 31)) & 1)
entries = {}
for f in glob.glob("/usr/share/games/fortunes/*"):
    if "." in os.path.basename(f) or not os.path.isfile(f) or os.path.islink(f):
        continue
    for e in re.split(r"(?m)^%\n", open(f, encoding="utf-8", errors="surrogateescape").read()):
        if 20 <= len(e.encode("utf-8", "surrogateescape")) <= 400:
            n = " ".join(re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", e).split())  # control bytes dropped
            if len(n) >= 12:
                entries[n] = half(n)
wk = [text(r) for r in by["walker"]]
assert 150 <= len(wk) <= 151, len(wk)  # concurrency 2: one more in flight when the target is met
for p in wk:  # an item, or its first 300 bytes cut at a space
    hits = [p] if p in entries else [e for e in entries if len(p) > 80 and e.startswith(p + " ")]
    assert hits, f"walker prompt is not a fortune: {p[:80]!r}"
    assert all(entries[e] == 1 for e in hits), f"walker (fortunes/a) got an item of half b: {p[:60]!r}"
pr = by["prober"]
assert 300 <= len(pr) <= 301
assert all(r["body"]["max_tokens"] == 1 and r["body"]["top_logprobs"] == 20 and r["body"]["logprobs"] is True for r in pr)
pp = [text(r) for r in pr]
assert len(set(pp)) > 0.9 * len(pp), "many distinct prefixes"
b_items = [e for e, h in entries.items() if h == 2]
for p in pp[:120]:
    hits = [e for e in b_items if e.startswith(p + " ") or e == p]
    assert hits, f"prober prompt is not a prefix of a half-b fortune: {p!r}"
    assert len(p.split()) < len(hits[0].split()) or p == hits[0]

# --- warm-up mimic: human use, then exactly its harvest at the cap
wu = by["warmup"]
sw_t = T0 + 14 * 3600
before = [r for r in wu if r["t"] < sw_t]
after = [r for r in wu if r["t"] >= sw_t]
assert len(before) >= 20 and len(after) == 200, (len(before), len(after))
assert all(r["body"].get("max_tokens") == 24 for r in after)
assert sum(1 for r in before if r["body"].get("max_tokens") != 24) > 0.2 * len(before)
assert statistics.mean(y["t"] - x["t"] for x, y in zip(after, after[1:])) < 60, "harvest pace"
for r in after[:60]:  # the harvest is half-b fortunes, the warm-up everyday requests
    p = text(r)
    hits = [p] if p in entries else [e for e in entries if len(p) > 80 and e.startswith(p + " ")]
    assert hits and all(entries[e] == 2 for e in hits), f"warm-up harvest is not a half-b fortune: {p[:60]!r}"
assert not any(text(r) in entries for r in before)

# --- careful harvester: under the rate limit, irregular; paraphraser: varied instructions
ca = by["careful"]
assert len(ca) == 600
ts = [r["t"] for r in ca]
j = 0
for i in range(len(ts)):
    while ts[i] - ts[j] >= 60:
        j += 1
    assert i - j + 1 <= 60, "over the rpm limit"
gaps = [y - x for x, y in zip(ts, ts[1:])]
assert statistics.pstdev(gaps) / statistics.mean(gaps) > 0.8, "randomised timing"
assert len({" ".join(text(r).split()[:3]) for r in ca}) >= 40
pa = [text(r) for r in by["para"]]
assert 300 <= len(pa) <= 301 and len({" ".join(p.split()[:3]) for p in pa}) >= 40 and len(set(pa)) > 280

# --- everyday halves: users (a) and the swarm (b) never send the same request, though each
# half repeats itself often (few slots per template), so a shared template would show
def norm(p):
    p = p.lower()
    for pre in ("hi! ", "hello, ", "quick question: ", "please, ", "hey. ", "good morning. "):
        if p.startswith(pre):
            p = p[len(pre):]
    for post in (" thanks!", " thank you.", " :)", " thanks in advance."):
        if p.endswith(post):
            p = p[: -len(post)]
    return p
na = collections.Counter(norm(text(r)) for r in by["user"])
nb = collections.Counter(norm(p) for p in allp)
assert sum(na.values()) > 100 and sum(c - 1 for c in nb.values()) > 50, "each half repeats itself"
both = set(na) & set(nb)
assert not both, f"everyday a and b share requests: {list(both)[:5]}"

# --- man pages: each names an installed page
if have_man:
    mp = [text(r) for r in by["manuser"]]
    pages = {os.path.basename(f).split(".")[0] for d in ("man1", "man5", "man7", "man8")
             for f in glob.glob(f"/usr/share/man/{d}/*")}
    named = 0
    for p in mp:
        words = set(re.findall(r"[\w.+-]+", p))
        named += bool(words & pages)
    assert named > 0.8 * len(mp), f"{named} of {len(mp)} man prompts name a page"
print(f"ok: personas' traffic ({len(rows)} requests; man pages {'checked' if have_man else 'not installed'})")
EOF
