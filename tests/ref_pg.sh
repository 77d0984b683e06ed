#!/usr/bin/env bash
# ref_pg.sh — the gateway on a real PostgreSQL (Debian's postgresql package): a throw-away
# cluster (tests/pg_cluster.sh: initdb + pg_ctl as an unprivileged user, unix socket only),
# then test_gateway's PostgreSQL pass (keys, auth, suspension, config, daily quota from the
# ledger, group-commit ledger under 8 threads, limits exact across two limiters), test_guard's
# worker check (events stored then judged by `guard worker` = one process's verdicts), and
# `retort keys` through a postgres:// URL. SKIP when PostgreSQL is not installed.
set -euo pipefail
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "SKIP ref_pg: PostgreSQL is not installed (apt-get install postgresql)"; exit 0
fi
if [ "$(id -u)" = 0 ] && ! id nobody >/dev/null 2>&1; then
    echo "SKIP ref_pg: running as root and there is no user 'nobody' to run the cluster as"; exit 0
fi
dir=$(mktemp -u /tmp/retort-pg-XXXXXX)
trap 'tests/pg_cluster.sh stop "$dir"' EXIT
url=$(tests/pg_cluster.sh start "$dir")
echo "cluster: $url"
RETORT_TEST_PG_URL=$url "$BUILD/tests/test_gateway"
# the guard worker on PostgreSQL: the same verdicts as one process on the same traffic
RETORT_TEST_PG_URL=$url "$BUILD/tests/test_guard" > "$dir/guard.log" 2>&1 || { tail -n 30 "$dir/guard.log"; exit 1; }
grep -q "actions by the worker (PostgreSQL)" "$dir/guard.log" || { echo "test_guard ran no PostgreSQL pass"; exit 1; }
grep "actions by the worker" "$dir/guard.log"
# the CLI on the same database: keys created by one command are seen by the next
R=$BUILD/retort
$R keys create --db "$url" --name pg-alice --rpm 7 > "$dir/key.txt"
grep -q '^rt-' "$dir/key.txt" || { echo "keys create printed no key"; cat "$dir/key.txt"; exit 1; }
$R keys suspend --db "$url" --name pg-alice --reason "ref_pg" 2>/dev/null
$R keys list --db "$url" > "$dir/list.txt"
grep -q 'pg-alice.*suspended' "$dir/list.txt" || { echo "keys list on PostgreSQL:"; cat "$dir/list.txt"; exit 1; }
echo "ref_pg: ok"
