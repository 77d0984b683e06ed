#!/usr/bin/env bash
# tests/pg_cluster.sh — a throw-away PostgreSQL cluster for tests, on a unix socket only.
#   tests/pg_cluster.sh start DIR   creates DIR (must not exist), initdb + pg_ctl start there,
#                                   creates database "retort", prints its postgresql:// URL
#   tests/pg_cluster.sh stop DIR    stops the cluster and removes DIR
# PostgreSQL refuses to run as root: as root the cluster runs as user "nobody" (DIR is chowned
# to it); as any other user, as that user. No TCP port is opened (listen_addresses='').
# Trust authentication on the socket: the socket directory is DIR (mode 0700 under root's
# ownership rules), so only root and the cluster's user reach it.
set -euo pipefail
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "pg_cluster: no initdb under /usr/lib/postgresql/*/bin (apt-get install postgresql)" >&2; exit 1; }
as_user() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
case "$cmd" in
start)
    [ -e "$dir" ] && { echo "pg_cluster: $dir exists; pick a fresh directory" >&2; exit 1; }
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown nobody: "$dir"
    chmod 700 "$dir"
    as_user "$bin/initdb" -D "$dir/data" -U retort --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    as_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-k $dir -c listen_addresses='' -c fsync=off -c synchronous_commit=on -c max_connections=200" start \
        >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    as_user "$bin/createdb" -h "$dir" -U retort retort
    echo "postgresql://retort@/retort?host=$dir"
    ;;
stop)
    [ -d "$dir/data" ] && as_user "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
