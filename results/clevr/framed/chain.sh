#!/bin/bash
# One model of Table 1 on the framed 48 px data (issue 11): train (resumes; keeps the model at 25 %
# and 50 % of the budget), mark the validate slice finished, Kmax (resumes per K), copy the records
# into results/clevr/framed/ROW/EXP-sSEED. Usage: [KS=K1,K2,...] chain.sh EXPERIMENT SEED [ROW]
# KS samples only those K through kmax.sh (the same samples the validate kmax slice draws there),
# for the patch models, whose full 0..12 evaluation takes ~80 min of one core.
# Data: `localcomp clevr validate --preset framed --rows 1-3 --seeds 0,1 --out $V --stage render`.
set -euo pipefail
e=$1; seed=$2; row=${3:-1-3}
cd "$(dirname "$0")/../../.."
V=${V:-/work/runs/vframed}
LC=.venv/bin/localcomp
export OMP_NUM_THREADS=1
run=$V/runs/$row/$e-s$seed
out=results/clevr/framed/$row/$e-s$seed
mkdir -p "$out" /work/logs
log=$e-s$seed; [ "$row" = 1-3 ] || log=$log-row$row   # the 1-3 row kept the older log names
$LC clevr train --experiment "$e" --preset mini48 --data "$V/data/$row" --out "$run" --seed "$seed" \
    --keep-steps 750,1500 > "/work/logs/train-$log.log" 2>&1
# the same slices through validate: train resumes at its last step (nothing to do) and is recorded
$LC clevr validate --preset framed --rows "$row" --experiments "$e" --seeds "$seed" --out "$V" --stage train \
    > "/work/logs/validate-train-$log.log" 2>&1
cp "$run/run.json" "$run/train.json" "$out/"
if [ -n "${KS:-}" ]; then
  results/clevr/framed/kmax.sh "$run" "$run" "$row" "$seed" "/work/logs/kmax-$log.log"
else
  $LC clevr validate --preset framed --rows "$row" --experiments "$e" --seeds "$seed" --out "$V" --stage kmax \
      > "/work/logs/kmax-$log.log" 2>&1
fi
cp "$run"/kmax.json "$run"/kmax.run.json "$run"/kmax_samples.npz "$run"/kmax_grid_k*.png "$out/"
echo "$e s$seed $row done $(date -u +%FT%T)" >> /work/logs/chain.log
