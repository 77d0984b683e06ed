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

# section 7 (issue 17 item 21): every file the demo made is named by a step, the writes the demo
# makes in its own process included (pooled harvests, the corpus-derived files, evidence rows),
# each eval has its own log, and the recorded `cat` and `report add-*` lines redo what was done
"$PY" - "$D" "$R" <<'EOF'
import html, os, re, shutil, sqlite3, subprocess, sys
d, retort = sys.argv[1], sys.argv[2]
dd = f"{d}/demo"
db = sqlite3.connect(f"{dd}/gateway.db")
steps = [v for k, v in db.execute("SELECT key, value FROM report_meta WHERE key LIKE 'step.%' ORDER BY key")]
text = html.unescape(open(f"{dd}/report.html").read())
sec7 = text[text.index("7. How to reproduce this"):]
items = re.findall(r"<li><code>(.*?)</code></li>", sec7, re.S)
assert items == steps, "section 7 lists the recorded steps in order"
words = {w.strip("'") for s in steps for w in s.split()}
def named(path):
    for side in ("", ".ckpt", ".log.jsonl", "-wal", "-shm", "-journal"):
        if side and not path.endswith(side): continue
        if path[:len(path) - len(side)] in words: return True
    return os.path.dirname(path) in words  # files under a --harvest-dir
made = [os.path.join(r, f) for r, _, fs in os.walk(dd) for f in fs]
missing = [p for p in made if not named(p)]
assert not missing, f"files no step of section 7 names: {missing}"
inproc = [s for s in steps if "# in the demo's process" in s]
for f in ("students/harvest-guard-on.jsonl", "students/harvest-guard-off.jsonl", "students/clean-corpus.jsonl",
          "radioactivity-prompts.jsonl", "radioactivity-human.txt", "students/antidistill-task.txt"):
    assert any(f"wrote {dd}/{f} (" in s for s in inproc), f"no in-process step for {f}"
for table, cmd in (("report_harvests", "add-harvest"), ("report_models", "add-model"), ("report_tests", "add-test")):
    n = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    got = sum(s.startswith(f"retort report {cmd} ") for s in inproc)
    assert n and got == n, (table, n, got)
evals = [s for s in steps if s.startswith("retort eval ")]
logs = [s.split(" > ")[1] for s in evals]
assert len(evals) == 8 and len(set(logs)) == len(logs) and all(os.path.isfile(l) for l in logs), logs
# the recorded equivalents redo the in-process writes: `cat` gives the pooled file byte for byte,
# `report add-*` into a copy of the database gives the same rows
for s in inproc:
    if s.startswith("cat "):
        cmd, out = s.split("  # ")[0].rsplit(" > ", 1)
        assert subprocess.run(cmd, shell=True, capture_output=True, check=True).stdout == open(out, "rb").read(), s
shutil.copy(f"{dd}/gateway.db", f"{d}/copy.db")
cp = sqlite3.connect(f"{d}/copy.db")
for t in ("report_harvests", "report_models", "report_tests"):
    cp.execute(f"DELETE FROM {t}")
cp.commit()
for s in inproc:
    if s.startswith("retort report add-"):
        cmd = s.split("  # ")[0].replace(f"--db {dd}/gateway.db", f"--db {d}/copy.db").replace("retort ", retort + " ", 1)
        subprocess.run(cmd, shell=True, capture_output=True, check=True)
q = {"report_harvests": "SELECT name, guard, strategy, path, sha256, lines, completion_tokens, matched, accounts, "
                        "ledger_db FROM report_harvests ORDER BY name",
     "report_models": "SELECT name, role, guard, path, sha256, params, trained_on, tokens, loss, kl, top1 "
                      "FROM report_models ORDER BY name",
     "report_tests": "SELECT model, mode, tokens_scored, green, p_value, detected, control_min_p FROM report_tests "
                     "ORDER BY model, mode"}
for t, sql in q.items():
    assert list(db.execute(sql)) == list(cp.execute(sql)), f"{t}: the recorded commands give other rows"
print(f"section 7: {len(steps)} steps ({len(inproc)} in-process writes) name all {len(made)} files; commands redo them")
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

# issue 12: the same quick demo through a gateway. The teacher, watermark key and guard reference
# are reused from the run above (same dir), so what differs is only the path: each day is served
# by `retort gateway` (keys, ledger, guard, the teacher as --embed-model) in front of a plain
# `retort serve`. The guard must reach the same verdict for every simulated account (strongest
# action, as tests/ref_gateway_guard.sh compares them), and the report is the gateway's database.
cp "$D/demo/gateway.db" "$D/plain.db"
"$R" demo --quick --gateway --dir "$D/demo" --corpus "$CORPUS" > "$D/gw.txt"
cat "$D/gw.txt"
"$R" report summary --db "$D/demo/gateway.db" > "$D/gw_summary.txt"
"$PY" - "$D" <<'EOF'
import hashlib, json, sqlite3, sys
d = sys.argv[1]
# The simulated day is not replayed in a fixed order (16 concurrent clients), and the population
# budget is a sum over every new account, so verdicts at a boundary can differ run to run: a CI
# run had bulk-0 asked to verify through serve and suspended through the gateway, another an
# app flagged through one and not the other, a third power users asked to verify through one
# only. What must hold: the same operations stopped (verify or suspend) and no benign account
# suspended in either. (Account-by-account equality of verdicts through serve and gateway, on
# traffic replayed in order, is ref_gateway_guard's check.)
import re
rank = {"flag": 1, "throttle": 2, "verify": 3, "suspend": 4}
def verdicts(path):
    db = sqlite3.connect(path)
    v, who = {}, {}
    for name, grp, attack in db.execute("SELECT name, grp, attack FROM guard_sim_accounts"):
        v[name], who[name] = 0, (grp, attack)
    for name, action in db.execute("SELECT s.name, a.action FROM guard_actions a JOIN guard_sim_accounts s "
                                   "ON s.account_id = a.account_id WHERE a.action != 'release'"):
        v[name] = max(v[name], rank[action])
    return v, who
(plain, who), (gw, _) = verdicts(f"{d}/plain.db"), verdicts(f"{d}/demo/gateway.db")
assert len(plain) >= 70 and set(plain) == set(gw) and max(plain.values()) == 4, plain
def stopped_ops(v):
    return {who[k][0] for k, r in v.items() if who[k][1] and r >= 3}
def benign_suspended(v):
    return [k for k, r in v.items() if not who[k][1] and r == 4]
assert stopped_ops(plain) == stopped_ops(gw), ("operations stopped differ (serve, gateway)", stopped_ops(plain), stopped_ops(gw))
assert not benign_suspended(plain) and not benign_suspended(gw), (benign_suspended(plain), benign_suspended(gw))
diff = {k: (plain[k], gw[k]) for k in plain if plain[k] != gw[k]}
out = open(f"{d}/gw.txt").read().strip().splitlines()
assert "\n".join(out[1:]) + "\n" == open(f"{d}/gw_summary.txt").read(), "the report is the gateway database's"
first = open(f"{d}/out.txt").read().strip().splitlines()
def stopped_line(l):  # "attackers suspended: X of N ...; Y more asked to verify" -> (X + Y, N)
    m = re.match(r"attackers suspended: (\d+) of (\d+) .*?(?:; (\d+) more asked to verify)?$", l)
    assert m, l
    return int(m.group(1)) + int(m.group(3) or 0), int(m.group(2))
assert stopped_line(out[1]) == stopped_line(first[1]), ("operations stopped differ", out[1], first[1])
assert re.match(r"benign accounts suspended: 0 of ", out[2]) and out[2].split(" of ")[1].split()[0] == \
    first[2].split(" of ")[1].split()[0], ("benign lines differ", out[2], first[2])
db = sqlite3.connect(f"{d}/demo/gateway.db")
steps = [v for (v,) in db.execute("SELECT value FROM report_meta WHERE key LIKE 'step.%' ORDER BY key")]
gws = [s for s in steps if s.startswith("retort gateway ")]
assert len(gws) == 2 and all("--embed-model" in s and "--upstream-key-file" in s for s in gws), gws
assert sum("--guard --guard-reference" in s for s in gws) == 1, "only the protected day's gateway guards"
assert not any(s.startswith("retort serve ") and "--guard" in s for s in steps), "the upstreams are unguarded"
# the upstream served the gateway's one key only; the gateway's ledger holds the simulated accounts
up = sqlite3.connect(f"{d}/demo/upstream-day.db")
accts = up.execute("SELECT COUNT(DISTINCT account_id), COUNT(*) FROM usage WHERE status = 200").fetchone()
served = db.execute("SELECT COUNT(*) FROM usage WHERE status = 200").fetchone()[0]
assert accts[0] == 1 and accts[1] >= served > 0, (accts, served)
# every harvested completion of the protected day was relayed to an account the guard suspended
sus = {r[0] for r in db.execute("SELECT u.output_hash FROM usage u JOIN accounts a ON a.id = u.account_id "
                               "WHERE u.status = 200 AND a.status = 'suspended'")}
n = 0
for (path,) in db.execute("SELECT path FROM report_harvests WHERE guard = 'on'"):
    for l in open(path, encoding="utf-8"):
        c = json.loads(l)["completion"]
        assert hashlib.blake2b(c.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest() in sus, path
        n += 1
print(f"demo --gateway: the same {len(stopped_ops(gw))} operations stopped as through serve, no benign account suspended, "
      f"{len(gw) - len(diff)} of {len(gw)} accounts with the same verdict; {n} harvested completions in the "
      f"gateway's ledger; the upstream served {accts[1]} requests for one key")
EOF
