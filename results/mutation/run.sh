#!/usr/bin/env bash
# Mutation testing of the checks with mutmut (issue 14 item 4).
#
#   results/mutation/run.sh STAGE [REV]     STAGE: theory | numerics | numerics-spec
#
# Runs in a snapshot of the committed tree at REV (default HEAD) under $MUT_WORK (default
# /tmp/localcomp-mutation/STAGE-REV), so the shared working tree is untouched and the score
# belongs to one git revision. Needs mutmut in the venv: .venv/bin/pip install -e ".[mutation]".
# Writes to the snapshot: mutants/ (mutmut's state) and results.txt (`mutmut results --all true`).
#
# MUT_CHILDREN   worker processes (default 1: the machine's cores are shared)
# MUT_SAMPLE     optional: "PER_MODULE CHUNK SEED", run only that chunk of a seeded stratified
#                random sample of the mutants (sample.py); chunks add up to a larger random sample
# MUT_SEED       optional: the work folder of an earlier run of the same STAGE. Its mutants/ is
#                copied in; mutmut keeps a verdict only where the mutated function's source hash is
#                unchanged and re-tests every other mutant. The seed's non-killed mutants are then
#                re-tested by name with this revision's killing suite (a kill by the earlier suite
#                stands: tests were only added to the killing suite since).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
stage="${1:?usage: run.sh theory|numerics [REV]}"
rev="$(git -C "$root" rev-parse --short "${2:-HEAD}")"
work="${MUT_WORK:-/tmp/localcomp-mutation/$stage-$rev}"
venv="${VENV:-$root/.venv}"
children="${MUT_CHILDREN:-1}"

if [ ! -d "$work" ]; then
  mkdir -p "$work"
  git -C "$root" archive "$rev" | tar -x -C "$work"
  # the killers added for this run, if REV predates them (an empty file collects no tests)
  [ -f "$work/tests/test_mutation_killers.py" ] || touch "$work/tests/test_mutation_killers.py"
  # mutmut reads [mutmut] from setup.cfg when pyproject.toml has no [tool.mutmut]
  cp "$here/mutmut-$stage.cfg" "$work/setup.cfg"
  cp "$here/mutation_plugin.py" "$work/"
  if [ -n "${MUT_SEED:-}" ]; then
    cp -a "$MUT_SEED/mutants" "$work/mutants"
    # a sampled seed (sample-*.txt): its sample stays the sample; only its tested, not-killed
    # mutants are re-tested (the unsampled ones stay "not checked")
    cp "$MUT_SEED"/sample-*.txt "$work/" 2>/dev/null || true
    grep -v -e ': killed$' -e ': not checked$' "$MUT_SEED/results.txt" | sed 's/^ *//; s/:.*//' \
      > "$work/seed-rerun.txt" || true
  fi
fi
cd "$work"
export PATH="$venv/bin:$PATH" HYPOTHESIS_PROFILE=ci PYTHONPATH="$work"
if [ -n "${MUT_SAMPLE:-}" ]; then
  # MUT_SAMPLE="PER_MODULE CHUNK SEED": only a seeded random chunk of every module's mutants
  # (sample.py). A filter that matches no mutant stops mutmut right after it has generated the
  # mutants and collected the per-test coverage, so the names exist to be sampled.
  mutmut run 'no-such-mutant' > /dev/null 2>&1 || true
  read -r per_module chunk_index sample_seed <<< "$MUT_SAMPLE"
  python "$here/sample.py" --per-module "$per_module" --chunk "$chunk_index" --seed "$sample_seed" \
    > "sample-$chunk_index.txt"
  xargs mutmut run --max-children "$children" < "sample-$chunk_index.txt"
elif ! ls sample-*.txt > /dev/null 2>&1; then
  mutmut run --max-children "$children"
fi
if [ -s seed-rerun.txt ] && [ ! -f seed-rerun.done ]; then
  # names of the seed's survivors that still exist in this revision's mutants
  mutmut results --all true | sed 's/^ *//; s/:.*//' | grep -Fxf seed-rerun.txt > seed-rerun-now.txt || true
  if [ -s seed-rerun-now.txt ]; then
    xargs mutmut run --max-children "$children" < seed-rerun-now.txt
  fi
  touch seed-rerun.done
fi
mutmut results --all true > results.txt
echo "revision $rev; results in $work/results.txt"
