#!/bin/sh
# The only place grpo.c installs anything. Idempotent: apt-get skips what is present.
# Called by `make setup`; `make test` and `make demo` call it once (stamp file .setup-done).
set -eu
PKGS="build-essential pkg-config libopenblas-dev libcjson-dev libpcre2-dev libsqlite3-dev \
libseccomp-dev python3 python3-torch python3-numpy"
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
