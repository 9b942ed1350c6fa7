#!/bin/bash
# Kmax of a framed Table 1 model at 25 % and 50 % of its training budget (issue 11 item 4: the
# verdict is not an artefact of under-training), from the run directories that
# `clevr train --keep-steps 750,1500` (chain.sh) left in RUN/steps/. Same evaluation as the
# validate kmax slice (kmax.sh: 16 sets x 2 samples per K, K = 0..12, the 48 px detector).
# Usage: budget.sh EXPERIMENT SEED [ROW] [STEPS...]; KS=1,2,3,6,8 samples only those K (kmax.sh)
set -euo pipefail
e=$1; seed=$2; row=${3:-1-3}; shift $(( $# < 3 ? $# : 3 ))
steps=${*:-750 1500}
cd "$(dirname "$0")/../../.."
V=${V:-/work/runs/vframed}
run=$V/runs/$row/$e-s$seed
for step in $steps; do
  out=results/clevr/framed/$row/$e-s$seed/step$step
  mkdir -p "$out"
  results/clevr/framed/kmax.sh "$run/steps/$step" "$out" "$row" "$seed" "/work/logs/kmax-$e-s$seed-step$step.log" --force
  cp "$run/steps/$step/train.json" "$out/"
  echo "$e s$seed $row step $step done $(date -u +%FT%T)" >> /work/logs/chain.log
done
