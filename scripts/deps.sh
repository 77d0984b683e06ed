#!/usr/bin/env bash
# scripts/deps.sh — the one list of what retort's build, demo and tests need on Debian 12, and
# the one step that installs what is missing (`make deps`; `make demo` and `make test` run it
# first, and so does CI through them).
#
# Usage: scripts/deps.sh [build|demo|test|list] [--check]
#   build   the compiler and libraries `make` needs
#   demo    build + the default corpus (`make demo`)
#   test    demo + every peer the reference checks use (`make test`; the default)
#   list    print the Debian packages of all three, one a line (nothing is checked)
#   --check only report what is missing; exit 1 if anything is
#
# Each package comes with a check (pkg-config, command -v or a file test) that is cheap and
# does not need apt: when everything is present the script prints nothing and never calls apt.
# When something is missing it says which packages it installs and why, runs
# `apt-get update` once and `apt-get install` (through sudo when not root).
#
# Node.js: the llama.cpp and browser checks need node >= $NODE_MIN (node-llama-cpp 3.21 and
# playwright-core declare it). A missing node is installed from Debian; Debian 12's is 18, so
# then those checks print SKIP — unless RETORT_DEPS_STRICT=1 (CI), which fails instead of
# silently testing less. tests/node's packages are installed with `npm ci` when absent.
#
# RETORT_NO_DEPS=1 skips all of this (an offline machine that has what it needs).
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_MIN=20
mode=test
check_only=0
for a in "$@"; do
  case "$a" in
    build|demo|test|list) mode=$a ;;
    --check) check_only=1 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scripts/deps.sh: unknown argument '$a' (expected build, demo, test, list or --check)" >&2; exit 2 ;;
  esac
done
[ "${RETORT_NO_DEPS:-0}" = 1 ] && [ "$mode" != list ] && exit 0

# ---- the list: "debian-package|check (a shell condition)|why"
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
pc() { command -v pkg-config >/dev/null && pkg-config --exists "$@"; }
pymod() { [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('$1') is None)" 2>/dev/null; }
fuzzer_rt() { command -v clang >/dev/null && [ -f "$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a)" ]; }

BUILD_DEPS=(
  "build-essential|command -v gcc && command -v make && command -v ar|C compiler and make"
  "pkg-config|command -v pkg-config|finds the libraries below"
  "ca-certificates|[ -d /etc/ssl/certs ]|TLS for libcurl"
  "libblis-openmp-dev|[ -f /usr/include/$multiarch/blis-openmp/blis.h ]|GEMM (BLIS)"
  "libjansson-dev|pc jansson|JSON"
  "libsodium-dev|pc libsodium|keys and hashes"
  "libzstd-dev|pc libzstd|teacher-cache compression"
  "libcurl4-openssl-dev|pc libcurl|the harvester's HTTP client"
  "libsqlite3-dev|pc sqlite3|the gateway ledger"
  "libmicrohttpd-dev|pc libmicrohttpd|the HTTP server"
)
DEMO_DEPS=(
  "bible-kjv|command -v bible|the default corpus"
)
TEST_DEPS=(
  "python3|[ -x /usr/bin/python3 ]|reference checks"
  "python3-numpy|pymod numpy|reference checks (NumPy)"
  "python3-torch|pymod torch|reference checks (PyTorch)"
  "python3-mpmath|pymod mpmath|exact p-value references (tests/ref_mark.sh)"
  "python3-yaml|pymod yaml|llama.cpp's convert_hf_to_gguf.py (tests/ref_llamacpp_convert.sh)"
  "python3-jinja2|pymod jinja2|the chat templates as transformers renders them (tests/ref_chat_template.sh)"
  "unicode-data|[ -f /usr/share/unicode/UnicodeData.txt ]|the UCD: scripts/gen_unicode_hf.py and NormalizationTest.txt (test_tokenizer_hf)"
  "chromium|command -v chromium|the dashboard's browser test (tests/ref_dashboard.sh)"
  "openmpi-bin|command -v mpirun|data-parallel training over MPI (mpirun ranks in tests)"
  "libopenmpi-dev|command -v mpicc|building the MPI trainer"
  "postgresql|ls /usr/lib/postgresql/*/bin/initdb|the gateway's PostgreSQL backend (throw-away clusters in tests)"
  "libpq-dev|pc libpq|the gateway's PostgreSQL backend"
  "clang|command -v clang|the clang build and fuzz targets"
  "libclang-rt-14-dev|fuzzer_rt|libFuzzer and sanitizer runtimes (make fuzz)"
  "fortunes|[ -f /usr/share/games/fortunes/fortunes ]|held-out prompts for the guard's simulator"
  "nodejs|command -v node|the llama.cpp and browser reference checks"
  "npm|command -v npm|installs tests/node's packages"
)

case $mode in
  build) want=("${BUILD_DEPS[@]}") ;;
  demo) want=("${BUILD_DEPS[@]}" "${DEMO_DEPS[@]}") ;;
  test|list) want=("${BUILD_DEPS[@]}" "${DEMO_DEPS[@]}" "${TEST_DEPS[@]}") ;;
esac
if [ "$mode" = list ]; then
  for e in "${want[@]}"; do echo "${e%%|*}"; done
  exit 0
fi

missing=()
for e in "${want[@]}"; do
  pkg=${e%%|*}; rest=${e#*|}; check=${rest%%|*}; why=${rest#*|}
  if ! (eval "$check") >/dev/null 2>&1; then
    missing+=("$pkg")
    echo "deps: missing $pkg — $why"
  fi
done

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$mode" = test ] && command -v node >/dev/null && [ "$(node_major)" -lt 18 ]; then
  # an old node first on PATH: take Debian's (18) rather than test against something older
  echo "deps: node $(node --version) is older than 18 — installing Debian's nodejs"
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ $check_only = 1 ]; then
    echo "deps: to install them: sudo apt-get install ${missing[*]}  (or: make deps)"
    exit 1
  fi
  SUDO=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || {
      echo "deps: not root and no sudo; as root run: apt-get update && apt-get install ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo)
  fi
  command -v apt-get >/dev/null || {
    echo "deps: no apt-get here (retort targets Debian 12); install the equivalents of: ${missing[*]}" >&2; exit 1; }
  echo "deps: installing with apt-get: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  echo "deps: installed ${missing[*]}"
fi

[ "$mode" = test ] || exit 0

# ---- Node.js version and tests/node's packages
if command -v node >/dev/null && [ "$(node_major)" -lt $NODE_MIN ]; then
  msg="node $(node --version) is older than the $NODE_MIN the llama.cpp and browser reference checks need (node-llama-cpp 3.21, playwright-core); they will print SKIP. Debian 12 ships 18; install nodejs >= $NODE_MIN (e.g. NodeSource's) to run them"
  if [ "${RETORT_DEPS_STRICT:-0}" = 1 ]; then
    echo "deps: error: $msg" >&2; exit 1
  fi
  echo "deps: warning: $msg" >&2
elif [ -f tests/node/package-lock.json ] && [ ! -e tests/node/node_modules/node-llama-cpp ]; then
  if [ $check_only = 1 ]; then
    echo "deps: tests/node/node_modules is missing (cd tests/node && npm ci)"; exit 1
  fi
  echo "deps: installing tests/node's packages (npm ci: node-llama-cpp, playwright-core, tokenizers, openai)"
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi
exit 0
