#!/bin/bash
# Kmax of one framed model as the validate kmax slice evaluates it (`--preset framed`): the held-out
# 0-12 object scenes, the 48 px detector, 16 location sets x 2 samples per K, K = 0..12; KS=K1,K2,...
# samples only those K (the same samples the full evaluation draws there), for the patch models'
# ~85 min per full Kmax. Shared by budget.sh, extend.sh and sweep.sh; chain.sh goes through validate.
# Usage: kmax.sh RUN OUT ROW SEED LOG [extra clevr kmax flags...]   (run from the repository root)
set -euo pipefail
run=$1; out=$2; row=$3; seed=$4; log=$5; shift 5
V=${V:-/work/runs/vframed}
OMP_NUM_THREADS=1 .venv/bin/localcomp clevr kmax --run "$run" --data "$V/data/eval" \
    --detector results/detector/framed48/detector.pt --max-k 12 ${KS:+--ks "$KS"} --num-sets 16 --n 2 \
    --training-objects "$row" --seed "$seed" --out "$out" "$@" > "$log" 2>&1
