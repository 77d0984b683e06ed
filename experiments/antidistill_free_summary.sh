#!/usr/bin/env bash
# antidistill_free_summary.sh — one table and one chart from several runs of
# antidistill_tradeoff.sh in ONE folder (each run adds LAMBDA:GATE settings; plain, watermark
# and answers-only are computed once and reused): it merges results_round*.tsv and
# results.tsv (the last row of a setting wins), prints the goal check for every setting, and
# draws teacher and student accuracy against lambda, one pair of curves per gate (and task
# scope, for runs that name one), the students with +-1 sd error bars over their seeds
# (docs/antidistill.md); and, for every setting, the student's fall against plain sampling
# paired by seed (mean, sd, 95% t interval).
# Usage: experiments/antidistill_free_summary.sh DIR OUT.svg   (TITLE=... sets the chart's title;
# REPORT_DB=gateway.db records the chart in that database's evidence report)
set -euo pipefail
cd "$(dirname "$0")/.."
R=${R:-build/retort}
DIR=$1; SVG=$2
python3 - "$DIR" <<'PY'
import glob, json, sys
d = sys.argv[1]
rows = {}
for f in sorted(glob.glob(d + "/results_round*.tsv")) + [d + "/results.tsv"]:
    for l in list(open(f))[1:]:
        r = l.rstrip("\n").split("\t")
        rows[r[0]] = r
plain, ao = rows["plain"], rows["answers_only"]
gain0 = float(plain[3]) - float(ao[3])
with open(d + "/summary.tsv", "w") as o:
    o.write("setting\tlambda\tgate\tscope\tteacher_acc\tteacher_lost_points\tstudent_acc\tstudent_sd\tstudent_accs\tgain_kept\n")
    for name, r in rows.items():
        lost = "" if r[2] == "-" else "%.1f" % (100 * (float(plain[2]) - float(r[2])))
        kept = "" if name == "answers_only" else "%.0f%%" % (100 * (float(r[3]) - float(ao[3])) / gain0)
        o.write("\t".join([name, r[1], r[7], r[8] if len(r) > 8 else "all", r[2], lost, r[3], r[4], r[5], kept]) + "\n")
# one pair of curves per gate and task scope (results without a scope column: all)
scope = lambda r: r[8] if len(r) > 8 else "all"
# paired by seed against plain (same STUDENT_SEEDS, same order): the student's fall, mean and a
# 95% t interval over the seeds, and the teacher's points lost, for every setting
t95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228, 11: 2.201}
pa = [float(x) for x in plain[5].split(",")]
for name, r in rows.items():
    if not name.startswith("lambda"):
        continue
    xs = [float(x) for x in r[5].split(",")]
    if len(xs) != len(pa) or len(xs) < 2:
        print("%s: %d seeds against plain's %d, not paired" % (name, len(xs), len(pa)), file=sys.stderr)
        continue
    diff = [100 * (p - x) for p, x in zip(pa, xs)]
    m = sum(diff) / len(diff)
    sd = (sum((x - m) ** 2 for x in diff) / (len(diff) - 1)) ** 0.5
    h = t95.get(len(diff) - 1, 1.96) * sd / len(diff) ** 0.5
    print("%s: teacher %+.1f points; student falls %.1f +- %.1f points (paired over %d seeds, 95%% CI %.1f to %.1f) = %.0f%% of plain's gain over answers-only (%.1f points)"
          % (name, 100 * (float(r[2]) - float(plain[2])), m, sd, len(diff), m - h, m + h, 100 * m / (100 * gain0), 100 * gain0), file=sys.stderr)
gates = sorted({(r[7], scope(r)) for n, r in rows.items() if n.startswith("lambda")}, key=lambda k: (float(k[0]), k[1]))
files, labels = [], []
for g, sc in gates:
    sub = sorted([r for n, r in rows.items() if n == "plain" or (n.startswith("lambda") and (r[7], scope(r)) == (g, sc))], key=lambda r: float(r[1]))
    tag = "gate %s" % g + ("" if sc == "all" else " scope %s" % sc)
    for who, col, lab in (("teacher", 2, "teacher, " + tag), ("student", 3, "student, %s (+-1 sd)" % tag)):
        f = "%s/summary_%s_gate%s%s.jsonl" % (d, who, g, "" if sc == "all" else "_" + sc)
        with open(f, "w") as o:
            for r in sub:
                row = {"lambda": float(r[1]), "accuracy": float(r[col])}
                if who == "student":
                    row["sd"] = float(r[4])
                o.write(json.dumps(row) + "\n")
        files.append(f)
        labels.append(lab.replace(",", ""))
open(d + "/summary_files.txt", "w").write(" ".join(files))
open(d + "/summary_labels.txt", "w").write(",".join(labels))
open(d + "/summary_hlines.txt", "w").write("student on watermarked text=%s,student on answers only=%s" % (rows["watermark"][3], ao[3]))
PY
column -t -s $'\t' "$DIR/summary.tsv"
$R eval-plot --curves --x lambda --key accuracy --err-key sd \
  --title "${TITLE:-antidistillation with free choices in the trace: users vs harvester}" \
  --labels "$(cat "$DIR/summary_labels.txt")" --hlines "$(cat "$DIR/summary_hlines.txt")" \
  --out "$SVG" $(cat "$DIR/summary_files.txt")
# REPORT_DB=gateway.db also records the chart in that database's evidence report (retort report
# add-figure; `retort report --db ... --out report.html` then shows it under Figures)
if [ -n "${REPORT_DB:-}" ]; then
  $R report add-figure --db "$REPORT_DB" --name "antidistillation trade-off ($(basename "$DIR"))" --file "$SVG" \
    --caption "teacher accuracy (what users get) and student accuracy (what a harvester gets, +-1 sd over seeds) against lambda, per gate; dashed: students on watermarked text and on answers only" \
    --command "experiments/antidistill_free_summary.sh $DIR $SVG"
fi
