#!/usr/bin/env bash
# ref_report_figure.sh — a figure in the evidence report, seen by a real browser: a chart drawn
# by `retort eval-plot` and a hostile SVG (a script, an onload handler, an external image) are
# recorded with `retort report add-figure` (a caption made of HTML too, and a text file that is
# refused), the report is written, and tests/node/report_figure.mjs opens it from disk in
# Debian's headless Chromium: both images decode at the SVGs' own sizes, no script ran, no
# request left the file, the caption is text. Prints SKIP when chromium, node or
# tests/node/node_modules (npm ci) is missing.
set -euo pipefail
BUILD=${BUILD:-build}
R=$BUILD/retort
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export CHROMIUM
[ -x "$CHROMIUM" ] || { echo "SKIP ref_report_figure: $CHROMIUM not found (apt-get install chromium)"; exit 0; }
command -v node >/dev/null || { echo "SKIP ref_report_figure: node not installed"; exit 0; }
[ -d tests/node/node_modules/playwright-core ] ||
  { echo "SKIP ref_report_figure: tests/node/node_modules/playwright-core missing (cd tests/node && npm ci)"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

$R keys create --db "$tmp/g.db" --name alice > /dev/null 2> "$tmp/keys.log"
printf '{"lambda": 0, "accuracy": 0.77}\n{"lambda": 1, "accuracy": 0.39}\n' > "$tmp/student.jsonl"
printf '{"lambda": 0, "accuracy": 1.0}\n{"lambda": 1, "accuracy": 0.998}\n' > "$tmp/teacher.jsonl"
$R eval-plot --curves --x lambda --key accuracy --labels teacher,student --out "$tmp/chart.svg" \
  "$tmp/teacher.jsonl" "$tmp/student.jsonl" > /dev/null
cat > "$tmp/hostile.svg" <<'SVG'
<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="120" height="30"
     onload="window.__xss = 1"><script>window.__xss = 2; fetch("http://127.0.0.1:9/leak")</script>
<image xlink:href="http://127.0.0.1:9/pixel.png" width="10" height="10"/><rect x="20" width="100" height="30" fill="#2ca02c"/></svg>
SVG
CAPTION='<img src=x onerror="window.__xss=3"> users vs harvester'
$R report add-figure --db "$tmp/g.db" --name trade-off --file "$tmp/chart.svg" --caption "$CAPTION" \
  --command "retort eval-plot --curves ..."
$R report add-figure --db "$tmp/g.db" --name hostile --file "$tmp/hostile.svg"
echo "not an image" > "$tmp/notes.txt"
if $R report add-figure --db "$tmp/g.db" --name notes --file "$tmp/notes.txt" 2> "$tmp/err.txt"; then
  echo "ref_report_figure: a text file was accepted as a figure"; exit 1
fi
grep -q "notes.txt: expected an SVG image" "$tmp/err.txt" ||
  { echo "ref_report_figure: the refusal does not name the file:"; cat "$tmp/err.txt"; exit 1; }
$R report --db "$tmp/g.db" --out "$tmp/report.html" > /dev/null
REPORT="$tmp/report.html" CAPTION="$CAPTION" timeout 120 node tests/node/report_figure.mjs
