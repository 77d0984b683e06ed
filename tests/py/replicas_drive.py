#!/usr/bin/env python3
"""replicas_drive.py — drives two `retort serve` replicas on one PostgreSQL database (used by
tests/ref_pg_replicas.sh): concurrent load across both, a shared rate limit, a suspension made
through one replica and refused by the other, and kill -9 of one replica mid-stream. Prints
one line per phase; exits non-zero with the reason on the first failed check. The ledger is
read with psql (the database's own client), never through retort.

usage: replicas_drive.py DIR URL PID_A
  DIR holds portA, portB and the keys load.key, lim.key, victim.key, ops.key
"""
import json, os, signal, subprocess, sys, threading, time, urllib.request, urllib.error
from concurrent.futures import ThreadPoolExecutor

d, db_url, pid_a = sys.argv[1], sys.argv[2], int(sys.argv[3])
rd = lambda n: open(os.path.join(d, n)).read().strip()
A = "http://127.0.0.1:%s" % rd("portA")
B = "http://127.0.0.1:%s" % rd("portB")
KEY = {k: rd(k + ".key") for k in ("load", "lim", "victim", "ops")}

def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)

def psql(sql):
    out = subprocess.run(["psql", db_url, "-At", "-c", sql], capture_output=True, text=True)
    if out.returncode != 0:
        fail("psql: " + out.stderr)
    return out.stdout.strip()

def post(base, path, key, body, headers=None, timeout=60):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST")
    req.add_header("Authorization", "Bearer " + key)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

def completion(base, key, headers=None, max_tokens=4):
    return post(base, "/v1/completions", key,
                {"model": "teacher", "prompt": "And God said", "max_tokens": max_tokens, "temperature": 1}, headers)

def ledger_has(ids):
    if not ids:
        return 0
    q = ",".join("'%s'" % i for i in ids)
    return int(psql("SELECT count(DISTINCT request_id) FROM usage WHERE status = 200 AND request_id IN (%s)" % q))

# 1. load across both replicas: every 200 is on the ledger, once
N = 120
def one(i):
    s, b = completion(A if i % 2 else B, KEY["load"])
    return s, (json.loads(b)["id"] if s == 200 else None)
with ThreadPoolExecutor(8) as ex:
    res = list(ex.map(one, range(N)))
ok = [i for s, i in res if s == 200]
if len(ok) != N:
    fail("load: %d of %d answered 200: %s" % (len(ok), N, sorted(set(s for s, _ in res))))
rows = int(psql("SELECT count(*) FROM usage u JOIN accounts a ON a.id = u.account_id WHERE a.name = 'load'"))
if rows != N or ledger_has(ok) != N:
    fail("load: %d responses served, %d ledger rows, %d of their ids on the ledger" % (N, rows, ledger_has(ok)))
print("load: %d requests over 2 replicas (8 concurrent): %d ledger rows, every response id on it once" % (N, rows))

# 2. one rate limit across both replicas: rpm 30 at one instant of the simulated clock
T = {"X-Retort-Sim-Time": "2000000000"}
with ThreadPoolExecutor(12) as ex:
    st = list(ex.map(lambda i: completion(A if i % 2 else B, KEY["lim"], T)[0], range(90)))
n200, n429 = st.count(200), st.count(429)
if n200 != 30 or n429 != 60:
    fail("limits: rpm 30 across replicas admitted %d, refused %d (others: %s)" % (n200, n429, st))
print("limits: rpm 30 shared by 2 replicas: %d admitted, %d refused with 429 (of 90 at one instant)" % (n200, n429))

# 3. a suspension made through replica A is refused by replica B on the next request
s, _ = completion(B, KEY["victim"])
if s != 200:
    fail("victim before suspension: HTTP %d" % s)
s, b = post(A, "/admin/api/accounts/victim/suspend", KEY["ops"], {"reason": "replica test"})
if s != 200:
    fail("suspend through A: HTTP %d %s" % (s, b[:200]))
s, b = completion(B, KEY["victim"])
if s != 403 or b"account_suspended" not in b:
    fail("B after A suspended: HTTP %d %s" % (s, b[:200]))
print("suspension: made through replica A, refused by replica B on its next request (403)")

# 4. kill -9 of replica A mid-stream: B keeps serving, no completed response missing
first_a = threading.Event()
def stream(base, key, out):
    req = urllib.request.Request(base + "/v1/completions", method="POST", data=json.dumps(
        {"model": "teacher", "prompt": "In the beginning", "max_tokens": 48, "stream": True}).encode())
    req.add_header("Authorization", "Bearer " + key)
    req.add_header("Content-Type", "application/json")
    rid, done = None, False
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            for line in r:
                line = line.decode().strip()
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: ") and rid is None:
                    rid = json.loads(line[6:]).get("id")
                    if base == A:
                        first_a.set()
    except Exception:
        pass
    out.append((base, rid, done))
streams, th = [], []
for i in range(12):
    t = threading.Thread(target=stream, args=(A if i % 2 else B, KEY["load"], streams))
    t.start()
    th.append(t)
first_a.wait(30)  # A is streaming: kill it now
os.kill(pid_a, signal.SIGKILL)
for t in th:
    t.join()
after = [completion(B, KEY["load"]) for _ in range(20)]
if any(s != 200 for s, _ in after):
    fail("B after A was killed: %s" % [s for s, _ in after])
full = [rid for _, rid, done in streams if done and rid]
b_full = [1 for base, rid, done in streams if base == B and done]
if len(b_full) != 6:
    fail("B's streams: %d of 6 completed while A was killed" % len(b_full))
after_ids = [json.loads(b)["id"] for _, b in after]
if ledger_has(full) != len(full) or ledger_has(after_ids) != 20:
    fail("kill -9: %d streams completed, %d on the ledger" % (len(full), ledger_has(full)))
cut = sum(1 for base, _, done in streams if base == A and not done)
print("kill -9: replica A killed mid-stream (%d of its 6 streams cut); B finished its 6 and served 20 more; "
      "all %d completed responses on the ledger" % (cut, len(full) + 20))
