#!/usr/bin/env bash
# ref_keys_escape.sh — `retort keys` output cannot be used for terminal or log injection: a
# reason with a newline and an escape sequence is listed escaped (one line per account, no
# ESC byte reaches the terminal); `keys create` on a suspended account warns; a name that
# is only digits (it would shadow the account id) is refused.
set -euo pipefail
BUILD=${BUILD:-build}
R=$BUILD/retort
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$R keys create --db "$tmp/g.db" --name bob > /dev/null 2>&1
$R keys create --db "$tmp/g.db" --name carol > /dev/null 2>&1
$R keys suspend --db "$tmp/g.db" --name bob --reason $'evil\n[INFO] fake line\x1b[2J' 2> /dev/null
$R keys list --db "$tmp/g.db" > "$tmp/list.txt"
[ "$(wc -l < "$tmp/list.txt")" = 3 ] || { echo "keys list: not one line per account"; cat -A "$tmp/list.txt"; exit 1; }
if grep -q $'\x1b' "$tmp/list.txt"; then echo "keys list printed a raw ESC"; exit 1; fi
grep -qF 'evil\n[INFO] fake line\x1B[2J' "$tmp/list.txt" || { echo "reason not shown escaped"; cat -A "$tmp/list.txt"; exit 1; }
$R keys create --db "$tmp/g.db" --name bob 2> "$tmp/create.err" > /dev/null
grep -q "warning: account 'bob' is suspended" "$tmp/create.err" || { echo "no warning for a suspended account"; cat "$tmp/create.err"; exit 1; }
if grep -q $'\x1b' "$tmp/create.err"; then echo "keys create printed a raw ESC"; exit 1; fi
$R keys create --db "$tmp/g.db" --name carol 2> "$tmp/create2.err" > /dev/null
if grep -q warning "$tmp/create2.err"; then echo "warned for an active account"; exit 1; fi
if $R keys create --db "$tmp/g.db" --name 1 > /dev/null 2> "$tmp/num.err"; then echo "an all-digit name was accepted"; exit 1; fi
grep -q "account id" "$tmp/num.err"
echo "ref_keys_escape: ok"
