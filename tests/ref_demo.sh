#!/usr/bin/env bash
# tests/ref_demo.sh — runs `retort demo --quick` end to end (teacher, served API with the guard
# and the watermark, a simulated day with harvesters, students, eval, radioactivity, report)
# and checks its five-line summary against what must hold: every harvesting operation
# suspended, no benign account suspended, less harvested with the guard than without, the
# students' quality numbers present and finite, the student trained on the unprotected
# (watermarked) harvest detected (closed mode, p < 1e-3) and the clean control not. Then checks the report: one
# self-contained HTML file whose summary is the one printed, that fetches nothing, and whose
# evidence tables agree with the files they name; and `guard eval`'s intervals (Wilson, recomputed
# here) and per-operation counts (against the ledger).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
R=$BUILD/retort
CORPUS=$BUILD/data/kjv.txt
[ -f "$CORPUS" ] || { echo "SKIP: no corpus at $CORPUS (make corpus)"; exit 0; }
PY=/usr/bin/python3
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT

"$R" demo --quick --dir "$D/demo" --corpus "$CORPUS" > "$D/out.txt"
cat "$D/out.txt"
"$R" report summary --db "$D/demo/gateway.db" > "$D/summary.txt"

"$PY" - "$D" <<'EOF'
import html, json, math, re, sqlite3, sys, hashlib, os
d = sys.argv[1]
out = open(f"{d}/out.txt").read()
lines = out.strip().splitlines()
assert len(lines) == 6 and lines[0].startswith("report: "), "stdout is the report's path and five lines: " + out
report = lines[0][len("report: "):]
summary = lines[1:]
assert len(summary) == 5, summary
assert "\n".join(summary) + "\n" == open(f"{d}/summary.txt").read(), "report summary differs from the demo's"

m = re.match(r"attackers suspended: (\d+) of (\d+) harvesting operations \((\d+) accounts", summary[0])
caught, ops, accts = map(int, m.groups())
# an operation the population budget stopped first is asked to verify (refused until an
# operator verifies it), not suspended: both stop it
v = re.search(r"; (\d+) more asked to verify", summary[0])
verify_ops = int(v.group(1)) if v else 0
assert ops >= 4 and caught + verify_ops == ops, summary[0]
assert accts >= 20, "the sybil group's keys are suspended with it: " + summary[0]
m = re.match(r"benign accounts suspended: (\d+) of (\d+)", summary[1])
fp, benign = map(int, m.groups())
assert benign >= 20 and fp == 0, summary[1]
v = re.search(r"; (\d+) asked to verify", summary[1])
print(f"ref_demo: benign suspended {fp} of {benign}, asked to verify {int(v.group(1)) if v else 0}; "
      f"operations suspended {caught}, asked to verify {verify_ops}, of {ops}")
m = re.match(r"tokens harvested: ([\d.]+)(k?) with the guard, ([\d.]+)(k?) without", summary[2])
on = float(m.group(1)) * (1000 if m.group(2) else 1)
off = float(m.group(3)) * (1000 if m.group(4) else 1)
assert 0 < on < off, summary[2]
losses = [float(x) for x in re.findall(r"loss (\d+\.\d+)", summary[3])]
assert len(losses) == 5 and all(math.isfinite(x) and 0 < x < 10 for x in losses), summary[3]
# the unguarded harvest served again with antidistillation: its student's loss and the gap vs
# the student of the same prompts regenerated plainly (printed to 3 places: their difference)
m = re.search(r"without \(teacher loss [0-9.]+\); antidistilled outputs: student loss (\d+\.\d+) "
              r"\(([+-]\d+\.\d+) vs plain, loss (\d+\.\d+)\)$", summary[3])
assert m, summary[3]
ad, gap, regen = map(float, m.groups())
assert math.isfinite(gap) and abs(ad - regen - gap) <= 0.0015, (ad, regen, gap)
m = re.match(r"radioactivity \(closed mode\): student without guard p = ([0-9.e+-]+) \(detected\); .*"
             r"clean control p = ([0-9.e+-]+)$", summary[4])
assert m, "the unprotected student must be detected and the control not: " + summary[4]
# detected means p < 1e-3 (the default alpha); under the null the control fails this 0.1% of runs
assert float(m.group(1)) < 1e-3 and float(m.group(2)) >= 1e-3, summary[4]

# the report: self-contained, summary included, evidence agrees with the files
text = open(report).read()
assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
assert "<script" not in text and "<link" not in text and "<img" not in text
assert not re.search(r'(src|href)\s*=\s*["\']?https?:', text), "the report must not fetch anything"
assert text.count("<svg") >= 5, "plots are inline SVG"
plain = html.unescape(text)
for s in summary:
    assert s in plain, s

db = sqlite3.connect(f"{d}/demo/gateway.db")
for name, path, sha, n in db.execute("SELECT name, path, sha256, lines FROM report_harvests"):
    data = open(path, "rb").read()
    assert hashlib.sha256(data).hexdigest() == sha, name
    assert data.count(b"\n") == n, name
for name, path, sha in db.execute("SELECT name, path, sha256 FROM report_models"):
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == sha, name
row = db.execute("SELECT loss, trained_on FROM report_models WHERE guard = 'off-antidistill'").fetchone()
assert row and abs(row[0] - ad) < 5e-4 and "antidistillation" in row[1], row
note = db.execute("SELECT value FROM report_meta WHERE key = 'antidistillation'").fetchone()[0]
m = re.search(r"served: (\d+\.\d+) nats/token antidistilled, (\d+\.\d+) plain", note)
assert m and all(math.isfinite(float(x)) and 0 < float(x) < 10 for x in m.groups()), note
assert note in plain, "the report shows the antidistillation settings and the teacher's loss on its text"
row = db.execute("SELECT loss FROM report_models WHERE guard = 'off-regenerated'").fetchone()
assert row and abs(row[0] - regen) < 5e-4, row
assert "student (guard off, antidistilled)" in plain, "the report's model table lists the antidistilled student"
# the antidistilled data answers exactly the unguarded harvest's prompts, with other text somewhere
pl = [json.loads(l) for l in open(f"{d}/demo/students/harvest-guard-off.jsonl")]
an = [json.loads(l) for l in open(f"{d}/demo/students/harvest-guard-off-antidistill.jsonl")]
rg = [json.loads(l) for l in open(f"{d}/demo/students/harvest-guard-off-regenerated.jsonl")]
assert [x["prompt"] for x in pl] == [x["prompt"] for x in an] == [x["prompt"] for x in rg]
# same sampler and seed: the shift (lambda > 0) is what changes tokens
assert sum(x["completion"] != y["completion"] for x, y in zip(rg, an)) > len(an) // 10
# every harvested completion of the protected run was served to an account the guard later suspended
served = {r[0] for r in db.execute(
    "SELECT u.output_hash FROM usage u JOIN accounts a ON a.id = u.account_id WHERE u.status = 200 AND a.status = 'suspended'")}
for (path,) in db.execute("SELECT path FROM report_harvests WHERE guard = 'on'"):
    for l in open(path, encoding="utf-8"):
        c = json.loads(l)["completion"]
        h = hashlib.blake2b(c.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        assert h in served, f"{path}: a completion not in the ledger of a suspended account"
print("demo summary and report OK")
EOF

# guard eval on the protected day: its intervals against Wilson's formula computed here, and
# each operation's served counts against the ledger read here
"$R" guard eval --db "$D/demo/gateway.db" --reference "$D/demo/guard-reference.json" \
  --calibration-db "$D/demo/calib.db" --json > "$D/eval.json"
"$PY" - "$D" <<'EOF'
import json, math, sqlite3, sys
d = sys.argv[1]
e = json.load(open(f"{d}/eval.json"))
def wilson(k, n, z=1.959963984540054):
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0, c - h), min(1, c + h)
b, a = e["benign"], e["attack"]
for got, want in ((b["fpr_ci95"], wilson(b["suspended"], b["accounts"])), (a["tpr_ci95"], wilson(a["caught"], a["attackers"]))):
    assert all(abs(x - y) < 1e-9 for x, y in zip(got, want)), (got, want)
# every operation suspended or asked to verify (refused until an operator verifies it)
assert b["suspended"] == 0 and a["caught"] + a.get("verify", 0) == a["attackers"], (b, a)
db = sqlite3.connect(f"{d}/demo/gateway.db")
served = dict(db.execute("SELECT l.grp, COUNT(*) FROM usage u JOIN guard_sim_accounts l ON l.account_id = u.account_id "
                         "WHERE u.status = 200 AND l.attack = 1 GROUP BY l.grp"))
units = [u for s in e["strategies"].values() if s["label"] == "attack" for u in s["guard"]["units_detail"]]
assert units and len(units) == a["attackers"]
for u in units:
    assert u["served"] == served.get(u["unit"], 0), (u, served.get(u["unit"]))
    assert (u["outcome"] == "suspended" and u["keys_suspended"] == u["keys"]) or \
        (u["outcome"] == "verify" and u["keys_verify"] == u["keys"]), u
    assert 0 < u["served_before_action"] <= u["served"], u
h = e["held_out"]
assert h["calibration"]["seeds"] != h["evaluation"]["seeds"] and h["shared"]["accounts"] == 0, h
assert "evaljob" in e["strategies"] and not e["strategies"]["evaljob"]["held_out"]["strategy_in_calibration"]
print("guard eval intervals and per-operation counts OK")
EOF
