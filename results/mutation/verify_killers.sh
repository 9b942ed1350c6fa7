#!/usr/bin/env bash
# Runs one test file against named mutants of a finished mutmut run, the way mutmut runs a
# mutant (the trampolined sources in WORK/mutants, MUTANT_UNDER_TEST=NAME), to verify that a
# killer test added after the run kills the survivors it was written for.
#
#   results/mutation/verify_killers.sh WORK TEST_FILE NAMES_FILE
#
# TEST_FILE (from the working tree) is copied into WORK/mutants/tests/. Prints one line per
# mutant, "NAME killed" (the tests fail) or "NAME survived", after a clean run that must pass.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(cd "${1:?WORK}" && pwd)"; test_file="${2:?TEST_FILE}"; names="${3:?NAMES_FILE}"
root="$(cd "$here/../.." && pwd)"
cp "$test_file" "$work/mutants/tests/test_killers_under_verification.py"
cp "$here/mutation_plugin.py" "$work/mutants/"
cd "$work/mutants"
export PATH="${VENV:-$root/.venv}/bin:$PATH" PYTHONPATH="$PWD" HYPOTHESIS_PROFILE=ci
run() { MUTANT_UNDER_TEST="$1" python -m pytest -x -q -p no:cacheprovider -p mutation_plugin \
          tests/test_killers_under_verification.py > /dev/null 2>&1; }
run "" || { echo "the clean run fails: nothing verified" >&2; exit 1; }
while read -r name; do
  [ -n "$name" ] || continue
  if run "$name"; then echo "$name survived"; else echo "$name killed"; fi
done < "$names"
