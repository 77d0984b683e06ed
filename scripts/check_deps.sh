#!/usr/bin/env bash
# scripts/check_deps.sh — `make check-deps`: every #include "..." in src/ must follow an edge
# this file allows (docs/architecture.md draws the same table). An include of a header in the
# same room is always allowed; system headers (<...>) are not checked. A new room, or a new
# edge, is added here and in docs/architecture.md in the same commit, with the reason.
# Exit status 1 and one line per forbidden include (file:line: room -> room) when any.
set -u
cd "$(dirname "$0")/.."

# room -> the rooms it may include directly (space-separated). cli may include every room.
declare -A ALLOW=(
  [base]=""
  [kernels]="base"
  [formats]="base kernels"
  [tokenizer]="base formats"
  [model]="base kernels formats tokenizer"
  [train]="base kernels model tokenizer formats"
  [record]="base"
  [plot]="base"
  [distill]="base kernels model tokenizer train formats record plot"
  [mark]="base model tokenizer formats record"
  [gateway]="base"
  [serve]="base gateway model kernels tokenizer formats record client"
  [guard]="base"
  [defend]="base guard gateway serve"
  [client]="base record"
  [sim]="base gateway defend client record"
  [report]="base gateway defend guard model mark plot"
  [cli]="*"
)
# Single files allowed one more edge until they move (file -> room), each with its reason.
declare -A EXCEPT=(
  # the guard's timeline SVG reads the guard tables; it moves to the one plot module (issue 13)
  [src/guard/plot.c]="defend plot"
)

bad=0
for f in src/*/*.c src/*/*.h; do
  room=${f#src/}; room=${room%%/*}
  if [ -z "${ALLOW[$room]+x}" ]; then
    echo "$f: room '$room' is not in scripts/check_deps.sh (add it with its allowed includes)"
    bad=1
    continue
  fi
  allowed=" ${ALLOW[$room]} ${EXCEPT[$f]:-} "
  while IFS=: read -r line inc; do
    inc=${inc#*\"}; inc=${inc%\"*}
    case "$inc" in
      ../*/*) target=${inc#../}; target=${target%%/*} ;;
      */*) target=${inc%%/*} ;;
      *) continue ;; # same room
    esac
    [ "$target" = "$room" ] && continue
    [ "${ALLOW[$room]}" = "*" ] && continue
    case "$allowed" in *" $target "*) continue ;; esac
    echo "$f:$line: $room -> $target is not an allowed dependency (scripts/check_deps.sh, docs/architecture.md)"
    bad=1
  done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f")
done
[ $bad = 0 ] && echo "check-deps: every include follows an allowed edge"
exit $bad
