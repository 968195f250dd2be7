#!/bin/sh
# Runs every test program whose name starts with PREFIX (test_ for `make test`, data_ for
# `make check-data`): C binaries built into build/tests/, and tests/PREFIX*.py / tests/PREFIX*.sh scripts.
# Each prints `N passed, N failed` as its last line; a program that dies without that line counts as one
# failure. The last line of this script is the sum.
# usage: tests/run.sh PREFIX [BUILD_DIR]   (env FILTER=substring runs only matching programs)
PREFIX=${1:-test_}
BUILD=${2:-build}
PY=/usr/bin/python3
pass=0; fail=0; failed_names=""
for t in "$BUILD"/tests/"$PREFIX"* tests/"$PREFIX"*.py tests/"$PREFIX"*.sh; do
  [ -e "$t" ] || continue
  case "$t" in *.c|*.o|*.d) continue;; esac
  name=$(basename "$t")
  [ -n "${FILTER:-}" ] && case "$name" in *"$FILTER"*) ;; *) continue;; esac
  echo "== $name"
  log=$(mktemp)
  start=$(date +%s)
  case "$t" in
    *.py) $PY "$t" >"$log" 2>&1 ;;
    *.sh) sh "$t" >"$log" 2>&1 ;;
    *) "$t" >"$log" 2>&1 ;;
  esac
  rc=$?
  grep -E '^  FAIL|^FAIL|error|Error|ERROR' "$log" | head -40
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "   $name ended (exit $rc) without a summary line; last output:"; tail -n 20 "$log"
    fail=$((fail + 1)); failed_names="$failed_names $name"
  else
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed}
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    pass=$((pass + p)); fail=$((fail + f))
    [ "$f" -gt 0 ] && failed_names="$failed_names $name"
    echo "   $line ($(( $(date +%s) - start ))s)"
  fi
  rm -f "$log"
done
[ -n "$failed_names" ] && echo "failing:$failed_names"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
