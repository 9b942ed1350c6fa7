#!/bin/bash
# A framed Table 1 model trained past the table's budget, for the compute-matched comparison
# (results/clevr/framed/README.md): copy RUN (trained by chain.sh) to RUN-xF, resume it to STEPS
# (exact resume: constant learning rate after warm-up, EMA counted in images), keep the model at
# STEPS/2, and evaluate Kmax as the validate kmax slice does (kmax.sh: 16 sets x 2 per K, K = 0..12;
# KS=1,2,3,6,8 samples only those K, the same samples a full evaluation draws, for the patch models' cost).
# Usage: [KS=K1,K2,...] extend.sh EXPERIMENT SEED STEPS [ROW]
set -euo pipefail
e=$1; seed=$2; steps=$3; row=${4:-1-3}
cd "$(dirname "$0")/../../.."
V=${V:-/work/runs/vframed}
LC=.venv/bin/localcomp
export OMP_NUM_THREADS=1
src=$V/runs/$row/$e-s$seed
factor=$(( steps / 3000 ))
run=$src-x$factor
out=results/clevr/framed/$row/$e-s$seed-x$factor
mkdir -p "$run" "$out"
if [ ! -e "$run/checkpoint.pt" ]; then
  cp "$src/checkpoint.pt" "$src/run.json" "$src/train.json" "$run/"
fi
$LC clevr train --experiment "$e" --preset mini48 --data "$V/data/$row" --out "$run" --seed "$seed" \
    --steps "$steps" --keep-steps $(( steps / 2 )) > "/work/logs/train-$e-s$seed-x$factor.log" 2>&1
cp "$run/run.json" "$run/train.json" "$out/"
results/clevr/framed/kmax.sh "$run" "$run" "$row" "$seed" "/work/logs/kmax-$e-s$seed-x$factor.log" --force
cp "$run"/kmax.json "$run"/kmax.run.json "$run"/kmax_samples.npz "$run"/kmax_grid_k*.png "$out/"
echo "$e s$seed $row x$factor done $(date -u +%FT%T)" >> /work/logs/chain.log
