#!/usr/bin/env python3
"""experiments/guard/heldout_table.py EVAL.json... — issue 16's table from `retort guard eval
--json --calibration-db` outputs (demo calibration, production-style, production-style with
the operator's tiers): per row of the issue, what the guard did under each (benign: accounts suspended, asked to verify,
otherwise held (throttled), flagged, with a Wilson 95% interval; harvesters: outcome, queries and tokens served before the first enforcing action,
and in all), then what was held out of each calibration."""
import json, os, sys

ROWS = [("evaljob", "nightly evaluation jobs (benign)"),
        ("benign", "ordinary users (benign)"), ("power", "power users (benign)"),
        ("app", "app relaying many users (benign)"),
        ("prober", "log-prob prober"), ("swarm", "careful sybil swarm (40 keys)"),
        ("sybil", "naive sybil (25 keys)"), ("warmup", "warm-up mimic"),
        ("careful", "careful bulk harvester"), ("paraphrase", "paraphrasing bulk harvester")]

def pct(ci):
    return f"[{100 * ci[0]:.0f}–{100 * ci[1]:.0f}%]" if ci else ""

def cell(s):
    if s is None:
        return "—"
    g = s["guard"]
    if s["label"] == "benign":
        held = sum(1 for u in g["units_detail"] if u["outcome"] == "held")
        verify = sum(1 for u in g["units_detail"] if u["outcome"] in ("verify", "partly verify"))
        return (f"{g['caught']} of {g['units']} suspended {pct(g.get('fpr_ci95'))}"
                + (f", **{verify} asked to verify**" if verify else "")
                + (f", {held} held" if held else "") + (f", {g['flagged']} flagged" if g["flagged"] else ""))
    out = []
    many = len(g["units_detail"]) > 1
    for u in g["units_detail"]:
        keys = f" ({u['keys_suspended']}/{u['keys']} keys)" if u["keys"] > 1 else ""
        if u["keys"] > 1 and "verify" in u["outcome"]:
            keys = f" ({u.get('keys_verify', 0)}/{u['keys']} keys)"
        if many:
            keys = f" [{u['unit']}]" + keys
        if u["outcome"] in ("none", "flagged"):
            out.append(f"**{u['outcome']}**{keys}: {u['served']:,} served ({u['tokens']:,} tokens)")
        else:
            out.append(f"{u['outcome']}{keys} after {u['served_before_action']:,} queries "
                       f"({u['tokens_before_action']:,} tokens); {u['served']:,} in all")
    return "; ".join(out)

ev = [json.load(open(p)) for p in sys.argv[1:]]
# the calibration each file is of, from its name (eval-CAL.json; CALS may leave some out)
COLS = {"demo": ("demo calibration", "demo"),
        "production": ("production-style calibration", "production"),
        "tiers": ("production-style + tiers (eval jobs: eval, app: trusted)", "production + tiers")}
cals = [os.path.basename(p)[len("eval-"):-len(".json")] if os.path.basename(p).startswith("eval-") else p
        for p in sys.argv[1:]]
TAGS = [COLS.get(c, (c, c))[0] for c in cals]
print("| traffic | " + " | ".join(TAGS) + " |")
print("|---" * (len(ev) + 1) + "|")
for k, name in ROWS:
    print(f"| {name} | " + " | ".join(cell(e["strategies"].get(k)) for e in ev) + " |")
for tag, e in zip([COLS.get(c, (c, c))[1] for c in cals], ev):
    b, a = e["benign"], e["attack"]
    h = e.get("held_out", {})
    print(f"\n{tag}: benign {b['suspended']} of {b['accounts']} suspended (Wilson 95% {pct(b.get('fpr_ci95'))}), "
          f"{b.get('verify', 0)} asked to verify; "
          f"attackers suspended {a['caught']} of {a['attackers']}, held {a.get('held', 0)} (asked to verify {a.get('verify', 0)}) "
          f"(suspended or held: Wilson 95% {pct(a.get('suspended_or_held_ci95'))}); "
          f"calibration {json.dumps(h.get('calibration'))}; shared with the day {json.dumps(h.get('shared'))}")
