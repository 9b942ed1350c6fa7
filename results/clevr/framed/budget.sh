#!/bin/bash
# Kmax of a framed Table 1 model at 25 % and 50 % of its training budget (issue 11 item 4: the
# verdict is not an artefact of under-training), from the run directories that
# `clevr train --keep-steps 750,1500` (chain.sh) left in RUN/steps/. Same evaluation as the
# validate kmax slice (16 sets x 2 samples per K, K = 0..12, the 48 px detector).
# Usage: budget.sh EXPERIMENT SEED [ROW] [STEPS...]; KS=1,2,3,6,8 samples only those K (clevr kmax --ks:
# the same samples the full evaluation draws at them), for the patch models' ~85 min per full Kmax
set -euo pipefail
e=$1; seed=$2; row=${3:-1-3}; shift $(( $# < 3 ? $# : 3 ))
steps=${*:-750 1500}
cd "$(dirname "$0")/../../.."
V=${V:-/work/runs/vframed}
LC=.venv/bin/localcomp
export OMP_NUM_THREADS=1
run=$V/runs/$row/$e-s$seed
for step in $steps; do
  out=results/clevr/framed/$row/$e-s$seed/step$step
  mkdir -p "$out"
  $LC clevr kmax --run "$run/steps/$step" --data "$V/data/eval" --detector results/detector/framed48/detector.pt \
      --max-k 12 ${KS:+--ks "$KS"} --num-sets 16 --n 2 --training-objects "$row" --seed "$seed" --out "$out" --force \
      > "/work/logs/kmax-$e-s$seed-step$step.log" 2>&1
  cp "$run/steps/$step/train.json" "$out/"
  echo "$e s$seed $row step $step done $(date -u +%FT%T)" >> /work/logs/chain.log
done
