#!/usr/bin/env bash
# The unit and integration tests at moments when the clock changes under them (make
# clock-check). libfaketime shifts the clock of the test process and of every process it starts
# by one offset, so they agree with each other and time still runs. ClickHouse (chdb) does not
# see libfaketime: it keeps the real clock (a query's now(), TTLs), so a test that fails only
# where the two clocks disagree fails because of the tool; run it again with CLOCK_MOMENTS=+0
# (faketime without a shift) or at a nearer moment to tell.
#
# Two passes over the same tests (pytest arguments; tests/unit tests/integration if none):
# 1. CLOCK_MOMENTS: the whole run starts at each moment (an ISO instant, or +/-seconds from
#    now): by default seconds before the latest boundary of each kind (tests/clock_boundary.py
#    MOMENT_KINDS): midnight UTC from a Sunday to a Monday (a new day and ISO week while
#    running, then Monday 09:xx in Tokyo for an hour), midnight in Tokyo, a month's and a year's
#    end, and the last two clock changes in New York and in Berlin.
# 2. CLOCK_BOUNDARIES (default "day:UTC day:Asia/Tokyo week:UTC"): before each test the clock
#    jumps forward to CLOCK_LEAD seconds (default 1) before the next boundary of that kind, so
#    every test, not only a run's first ones, sees the date change under it. Each test file
#    runs in a process of its own (the jumps add up over a file).
# Either list may be "-" (skip that pass).
#
#   scripts/clock_check.sh
#   CLOCK_BOUNDARIES=- CLOCK_MOMENTS="2026-12-31T23:59:40Z" scripts/clock_check.sh tests/unit
#
# Needs Debian's libfaketime (apt-get install libfaketime), or FAKETIME_LIB=/path/libfaketime.so.1.
set -uo pipefail
cd "$(dirname "$0")/.."

LIB="${FAKETIME_LIB:-/usr/lib/$(uname -m)-linux-gnu/faketime/libfaketime.so.1}"
if [[ ! -f "$LIB" ]]; then
  echo "libfaketime not found at $LIB: apt-get install libfaketime, or set FAKETIME_LIB" >&2
  exit 2
fi

if [[ -z "${CLOCK_MOMENTS:-}" ]]; then
  CLOCK_MOMENTS="$(.venv/bin/python -m tests.clock_boundary)" || exit 2
fi
read -r -a MOMENTS <<<"$CLOCK_MOMENTS"
read -r -a BOUNDARIES <<<"${CLOCK_BOUNDARIES:-day:UTC day:Asia/Tokyo week:UTC}"
OPTIONS=()
TESTS=()
for arg in "$@"; do
  if [[ "$arg" == -* ]]; then OPTIONS+=("$arg"); else TESTS+=("$arg"); fi
done
[[ ${#TESTS[@]} -gt 0 ]] || TESTS=(tests/unit tests/integration)
FILES=()
for path in "${TESTS[@]}"; do
  if [[ -d "$path" ]]; then
    while IFS= read -r file; do FILES+=("$file"); done < <(find "$path" -name 'test_*.py' | sort)
  else
    FILES+=("$path")
  fi
done

failed=()
for moment in "${MOMENTS[@]}"; do
  [[ "$moment" != "-" ]] || continue
  if [[ "$moment" == [+-]* ]]; then
    offset=$((moment))
  else
    offset=$(($(date -d "$moment" +%s) - $(date +%s)))
  fi
  echo "== the run starts at $moment (clock offset ${offset}s): ${TESTS[*]}"
  # A relative offset (not "@start"): every process the tests start sees the same clock.
  if ! LD_PRELOAD="$LIB" FAKETIME="$(printf '%+d' "$offset")" \
    .venv/bin/python -m pytest -q -p no:cacheprovider "${OPTIONS[@]}" "${TESTS[@]}"; then
    failed+=("the run from $moment")
  fi
done
for boundary in "${BOUNDARIES[@]}"; do
  [[ "$boundary" != "-" ]] || continue
  echo "== each test starts ${CLOCK_LEAD:-1}s before the next $boundary: ${#FILES[@]} files"
  for file in "${FILES[@]}"; do
    LD_PRELOAD="$LIB" FAKETIME=+0 FAKETIME_NO_CACHE=1 CLOCK_BOUNDARY="$boundary" \
      CLOCK_LEAD="${CLOCK_LEAD:-1}" .venv/bin/python -m pytest -q -p no:cacheprovider \
      -p tests.clock_boundary "${OPTIONS[@]}" "$file"
    code=$?
    # 5: nothing collected (the options deselected every test of the file)
    [[ $code -eq 0 || $code -eq 5 ]] || failed+=("$file, each test before $boundary")
  done
done

if [[ ${#failed[@]} -gt 0 ]]; then
  printf 'failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "every moment passed"
