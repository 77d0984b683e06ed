#!/usr/bin/env bash
# ref_deps.sh — `make deps` (scripts/deps.sh) on a machine that lacks something and on one that
# lacks nothing, with apt-get replaced by a recorder on PATH:
#  1. with every tool visible: no apt-get call at all (make demo/test stay cheap);
#  2. with `bible` (bible-kjv) and `pkg-config` hidden: `demo` runs `apt-get update` once and
#     installs exactly bible-kjv and pkg-config (pkg-config's libraries then look missing too,
#     so the -dev packages come along: the check is what decides, not a cached answer);
#  3. an old node (16) first on PATH: `test` installs Debian's nodejs and npm;
#     RETORT_DEPS_STRICT=1 with node 18 fails naming the version the checks need;
#  4. `list` covers every package .ci/run used to install by name.
# Skips a case whose tools are genuinely absent here (then case 1 would install them).
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

mkdir -p "$tmp/apt" "$tmp/all" "$tmp/some" "$tmp/old"
cat > "$tmp/apt/apt-get" <<EOS
#!/bin/sh
echo "\$*" >> "$tmp/apt.log"
EOS
chmod +x "$tmp/apt/apt-get"
# as a non-root user deps.sh runs `sudo apt-get`: a pass-through sudo keeps the recorder in play
printf '#!/bin/sh\nexec "$@"\n' > "$tmp/apt/sudo"
chmod +x "$tmp/apt/sudo"
# a PATH that has every real tool except the hidden ones
mirror() { # dir hidden...
  local d=$1; shift
  local IFS=:
  for p in $PATH; do [ -d "$p" ] && ln -s "$p"/* "$d"/ 2>/dev/null; done
  unset IFS
  for h in "$@"; do rm -f "$d/$h"; done
}

# 1. nothing missing
if scripts/deps.sh test --check >/dev/null 2>&1; then
  : > "$tmp/apt.log"
  PATH="$tmp/apt:$PATH" scripts/deps.sh test > "$tmp/out1" 2>&1 || bad "deps.sh test failed with nothing missing: $(cat "$tmp/out1")"
  [ -s "$tmp/apt.log" ] && bad "apt-get was called with nothing missing: $(cat "$tmp/apt.log")"
  [ -s "$tmp/out1" ] && bad "deps.sh printed something with nothing missing: $(cat "$tmp/out1")"
else
  echo "SKIP case 1: this machine lacks packages ($(scripts/deps.sh test --check 2>&1 | grep -c missing) missing)"
fi

# 2. bible and pkg-config hidden
if command -v bible >/dev/null && command -v pkg-config >/dev/null; then
  mirror "$tmp/some" bible pkg-config
  : > "$tmp/apt.log"
  PATH="$tmp/apt:$tmp/some" scripts/deps.sh demo > "$tmp/out2" 2>&1 || bad "deps.sh demo failed: $(cat "$tmp/out2")"
  [ "$(grep -c '^update' "$tmp/apt.log")" = 1 ] || bad "expected one apt-get update: $(cat "$tmp/apt.log")"
  inst=$(grep '^install' "$tmp/apt.log" | tr ' ' '\n' | grep -v '^-' | grep -v '^install$' | sort | tr '\n' ' ')
  want=$(printf '%s\n' bible-kjv pkg-config libjansson-dev libsodium-dev libzstd-dev libcurl4-openssl-dev \
         libsqlite3-dev libmicrohttpd-dev | sort | tr '\n' ' ')
  [ "$inst" = "$want" ] || bad "installed [$inst], expected [$want]"
  grep -q "missing bible-kjv" "$tmp/out2" && grep -q "installing with apt-get" "$tmp/out2" ||
    bad "deps.sh did not say what it installs: $(cat "$tmp/out2")"
  # --check reports and fails without installing
  : > "$tmp/apt.log"
  PATH="$tmp/apt:$tmp/some" scripts/deps.sh demo --check > "$tmp/out3" 2>&1 && bad "--check passed with bible missing"
  [ -s "$tmp/apt.log" ] && bad "--check called apt-get"
else
  echo "SKIP case 2: bible or pkg-config absent"
fi

# 3. an old node first on PATH
if scripts/deps.sh test --check >/dev/null 2>&1; then
  for v in 16 18; do
    mkdir -p "$tmp/node$v"
    printf '#!/bin/sh\n[ "$1" = -p ] && echo %s && exit 0\necho v%s.0.0\n' $v $v > "$tmp/node$v/node"
    chmod +x "$tmp/node$v/node"
  done
  : > "$tmp/apt.log"
  PATH="$tmp/apt:$tmp/node16:$PATH" scripts/deps.sh test > "$tmp/out4" 2>&1
  grep '^install' "$tmp/apt.log" | grep -qw nodejs || bad "node 16 did not bring Debian's nodejs: $(cat "$tmp/apt.log") $(cat "$tmp/out4")"
  PATH="$tmp/apt:$tmp/node18:$PATH" RETORT_DEPS_STRICT=1 scripts/deps.sh test > "$tmp/out5" 2>&1 &&
    bad "RETORT_DEPS_STRICT=1 accepted node 18"
  grep -q ">= 20" "$tmp/out5" || bad "the strict failure does not name the version needed: $(cat "$tmp/out5")"
  PATH="$tmp/apt:$tmp/node18:$PATH" RETORT_DEPS_STRICT=0 scripts/deps.sh test > "$tmp/out6" 2>&1 || bad "node 18 without strict should warn, not fail"
fi

# 4. the list is complete
for p in build-essential pkg-config ca-certificates libblis-openmp-dev libjansson-dev libsodium-dev libzstd-dev \
         libcurl4-openssl-dev libsqlite3-dev libmicrohttpd-dev bible-kjv python3 python3-numpy python3-torch \
         chromium python3-mpmath openmpi-bin libopenmpi-dev postgresql libpq-dev clang libclang-rt-14-dev \
         fortunes python3-yaml python3-jinja2 unicode-data nodejs npm; do
  scripts/deps.sh list | grep -qx "$p" || bad "scripts/deps.sh list lacks $p"
done
[ $fail = 0 ] && echo "ok: deps"
exit $fail
