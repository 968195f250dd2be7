#!/bin/sh
# Runs every benchmark: C programs built into build/bench/ and bench/bench_*.py / bench_*.sh scripts.
# Each prints its own table (ours, the baseline, the ratio, the limit).
BUILD=${1:-build}
for b in "$BUILD"/bench/bench_* bench/bench_*.py bench/bench_*.sh; do
  [ -e "$b" ] || continue
  case "$b" in *.o|*.d|*.c) continue;; esac
  [ -n "${FILTER:-}" ] && case "$b" in *"$FILTER"*) ;; *) continue;; esac
  echo "== $(basename "$b")"
  case "$b" in
    *.py) /usr/bin/python3 "$b" "$BUILD" ;;
    *.sh) sh "$b" "$BUILD" ;;
    *) "$b" ;;
  esac || echo "   $(basename "$b") failed (exit $?)"
done
