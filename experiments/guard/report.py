#!/usr/bin/env python3
"""experiments/guard/report.py — turn a run directory of experiments/guard/run.sh (and
distill.sh) into the markdown tables of docs/guard.md. Reads eval-guarded.json (the guard
enforcing), eval-control.json (the same day in shadow mode: the guard's would-be decisions
and the baselines on all the traffic) and distill/*.json. Prints markdown on stdout.
Usage: experiments/guard/report.py RUNDIR"""
import json
import os
import sys

run = sys.argv[1]
g = json.load(open(os.path.join(run, "eval-guarded.json")))
c = json.load(open(os.path.join(run, "eval-control.json")))


def q(d, key="queries_before_caught"):
    x = d.get(key)
    if not x:
        return "–"
    return "%d" % x["median"] if x["min"] == x["max"] else "%d (%d–%d)" % (x["median"], x["min"], x["max"])


def rate(d, attack):
    u = d["units"]
    k = d["caught"]
    return "%d/%d" % (k, u)


print("**The protected day** (guard enforcing; `eval-guarded`):\n")
print("| strategy | accounts | suspended | queries served before suspension (median, range) | tokens served before suspension | queries served in all (incl. in flight) |")
print("|---|---|---|---|---|---|")
for name, s in g["strategies"].items():
    gd = s["guard"]
    attack = s["label"] == "attack"
    acc = s["accounts"]
    if attack:
        keys = gd.get("keys", acc)
        if keys > gd["units"]:  # several keys per attacker (sybil)
            susp = "%d/%d (all %d/%d keys, %d linked in one group)" % (gd["caught"], gd["units"], gd.get("keys_suspended", 0),
                                                                     keys, gd.get("max_keys_in_one_group", 0))
        else:
            susp = "%d/%d" % (gd["caught"], gd["units"])
        # everything the attacker actually got that day: the rate-limit column counts every served
        # request (the guard's own total stops at the request that triggered the suspension;
        # requests already in flight then are still answered)
        print("| %s | %d | %s | %s | %s | %d |" % (name, acc, susp, q(gd), q(gd, "tokens_before_caught"),
                                                  s["rate_limit"]["queries_served_total"]))
    else:
        print("| %s | %d | %d (flagged: %d) | – | – | – |" % (name if name.startswith("benign") else name + " (benign)", acc,
                                                             gd["caught"], gd.get("flagged", 0)))
b = g["benign"]
a = g["attack"]
print("\nBenign accounts: %d, suspended %d (**FPR %.2f%%**), flagged %d. Attackers: %d, caught %d (**TPR %.0f%%**), "
      "all keys stopped within 1,000 served queries: %d of %d.\n" % (b["accounts"], b["suspended"], 100 * b["fpr"], b["flagged"],
                                                                     a["attackers"], a["caught"], 100 * a["tpr"],
                                                                     a["stopped_within_1000_queries"], a["attackers"]))

print("**The same day unprotected** (guard in shadow mode; every detector sees all of every attacker's traffic; "
      "`eval-control`). Caught = would have been suspended (guard), flagged (PRADA, MMD window), or refused with 429 "
      "at least once (rate limits); queries = served before that point:\n")
print("| strategy | guard (shadow) | PRADA | MMD, 1,500-query windows | rate limits only | served in all |")
print("|---|---|---|---|---|---|")
for name, s in c["strategies"].items():
    attack = s["label"] == "attack"
    cells = []
    for det in ("guard", "prada", "mmd_window", "rate_limit"):
        d = s.get(det)
        if not d:
            cells.append("–")
            continue
        cell = rate(d, attack)
        if attack and d["caught"] and det != "rate_limit":
            cell += " after %s" % q(d)
        cells.append(cell)
    # everything the attacker got without a defence (rate limits never stop anyone)
    total = "%d" % s["rate_limit"]["queries_served_total"] if attack else "–"
    label = name if (attack or name.startswith("benign")) else name + " (benign)"
    print("| %s | %s | %s |" % (label, " | ".join(cells), total))
cb = c["benign"]
ca = c["attack"]
print("\nBenign FPR: guard %.2f%%, PRADA %.2f%%, MMD window %s, rate limits (429 seen) %.1f%%. Attackers caught: guard %.0f%%, "
      "PRADA %.0f%%, MMD window %s, rate limits %.0f%%.\n" % (
          100 * cb["fpr"], 100 * cb["prada_fpr"],
          "%.2f%%" % (100 * cb["mmd_window_fpr"]) if cb.get("mmd_window_fpr") is not None else "–",
          100 * cb["rate_limit_429_rate"], 100 * ca["tpr"], 100 * ca["prada_tpr"],
          "%.0f%%" % (100 * ca["mmd_window_tpr"]) if ca.get("mmd_window_tpr") is not None else "–",
          100 * ca["rate_limit_429_rate"]))

dd = os.path.join(run, "distill")
if os.path.isdir(dd):
    def load(name):
        f = os.path.join(dd, name + ".json")
        return json.load(open(f)) if os.path.exists(f) else None

    print("**What the harvests are worth** (students trained by `retort sft` with the same recipe on each "
          "attacker's harvest, scored on held-out teacher answers in the format they were trained on: loss of the "
          "teacher's completions, KL(teacher‖student) per token and top-1 agreement with the teacher):\n")
    print("| attacker | harvest | examples | eval text | loss (nats/token) | KL to teacher | top-1 agreement |")
    print("|---|---|---|---|---|---|---|")
    for fmt in ("raw", "chat"):
        un = load("untrained-" + fmt)
        if un:
            print("| – | none (untrained student) | 0 | %s | %.3f | %.3f | %.1f%% |" % (fmt, un["loss"], un["kl"],
                                                                             100 * un["top1_agreement"]))
    for f in sorted(os.listdir(dd)):
        if not f.endswith(".json") or f.startswith("untrained"):
            continue
        r = load(f[:-5])
        att, _, which = f[:-5].rpartition("-")
        n = r.get("examples", "")
        if "loss" not in r:
            print("| %s | %s | %s | – | – | – | – |" % (att, which, n))
            continue
        print("| %s | %s | %s | %s | %.3f | %.3f | %.1f%% |" % (att, "with the guard" if which == "guarded" else "without",
                                                                n, r.get("format", "?"), r["loss"], r["kl"],
                                                                100 * r["top1_agreement"]))
