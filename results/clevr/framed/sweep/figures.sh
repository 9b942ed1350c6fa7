#!/bin/bash
# The learned dose-response and the locality-Kmax correlation of issue 11 items 5 and 6 (and the
# per-object reliability against Kmax, ../reliability.py), from the
# committed run folders (no model is run here; cheap). Usage: results/clevr/framed/sweep/figures.sh
set -euo pipefail
cd "$(dirname "$0")/../../../.."
LC=.venv/bin/localcomp
F=results/clevr/framed
# dose-response: learned patch models at k = 1, 2 (two seeds), 3 and the non-local Exp.2 (two
# seeds) beside the training-free machines on the same framed data; found share at K = 6 and 8
points=(learned:1:$F/sweep/exp2l-k1-s0 learned:2:$F/1-3/exp2l-s0 learned:3:$F/sweep/exp2l-k3-s0
        learned:nonlocal:$F/1-3/exp2-s0
        "learned seed 1:1:$F/sweep/exp2l-k1-s1" "learned seed 1:2:$F/1-3/exp2l-s1" "learned seed 1:nonlocal:$F/1-3/exp2-s1"
        machine:1:results/clevr/machine/framed48/k1 machine:2:results/clevr/machine/framed48/k2
        machine:nonlocal:results/clevr/machine/framed48/nonlocal)
present=()
for p in "${points[@]}"; do [[ -f "${p##*:}/kmax.json" ]] && present+=("$p"); done
$LC clevr dose-response --point "${present[@]}" --found-k 6 8 --out $F/sweep/dose-response --force
# correlation over every trained model with a locality measurement and a found share at K = 6, 8:
# every framed 48 px model folder (Table 1 rows 1, 1-3, 1-5, both seeds, the k sweep, and the models
# kept on the way at 25 / 50 % or 6,000 steps, `*/step*`), picked up by the glob in C-locale order,
# and the 32 px mini models of results/clevr/ (Table 1 rows 1, 1-3, 1-5); the 32 px exp2l-k8 was
# only evaluated to K = 4 and is left out
framed=($(printf '%s\n' $F/{1,1-3,1-5,sweep}/* $F/{1,1-3,1-5,sweep}/*/step* | LC_ALL=C sort))
entries=()
for d in "${framed[@]}" \
         results/clevr/mini-1/exp2 results/clevr/mini-1/exp2l \
         results/clevr/mini-1to3/{exp1,exp2,exp2l-clean,exp2l,exp3,exp3l} \
         results/clevr/mini-1to5/{exp2,exp2l-clean,exp2l,exp3l}; do
  [[ -f $d/locality/locality.json && -f $d/kmax.json ]] && entries+=("$d")
done
loc=(); km=(); labels=()
for d in "${entries[@]}"; do
  loc+=("$d/locality"); km+=("$d/kmax.json")
  case $d in  # 48: framed 48 px data (row 1-3 unless bracketed); 32: the CLEVR camera at 32 px, row in brackets
    $F/1-3/*|$F/sweep/*) l=${d#$F/1-3/}; l=${l#$F/sweep/}; labels+=("48 ${l/\/step/ @}") ;;
    $F/*) r=${d#$F/}; l=${r#*/}; labels+=("48 ${l/\/step/ @} (${r%%/*})") ;;
    *) r=${d%/*}; r=${r##*mini-}; labels+=("32 ${d##*/} (${r/to/-})") ;;
  esac
done
$LC clevr correlate --entries "${loc[@]}" --kmax "${km[@]}" --labels "${labels[@]}" --kmax-field found_share --found-k 6 8 \
    --metrics conditional_leakage pixel_effective_radius --out $F/sweep/correlation --force
# the per-group numbers of README.md (same statistic over subsets of the entries)
.venv/bin/python results/clevr/framed/sweep/groups.py
# per-object reliability against Kmax (reliability.py): every framed model with a Kmax, the models
# kept on the way (the correlation's framed folders, same order) and the training-free machines; a Kmax
# that untested K leave open (models tested at K = 1, 6, 8 only) is drawn hollow and starred
rel=()
for d in "${framed[@]}" results/clevr/machine/framed48/{k1,k2,nonlocal}; do
  [[ -f $d/kmax.json ]] && rel+=("$d")
done
.venv/bin/python $F/reliability.py "${rel[@]}" --out $F/reliability > /dev/null
