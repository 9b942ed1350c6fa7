#!/bin/bash
# Learned dose-response (issue 11 item 5) on the framed 48 px 1-3 row: the Exp.2L patch model at
# half-width K cells (exp2l is k = 2), same data, preset (mini48, 3000 steps) and seed, then Kmax at
# the K that the dose-response figure reads (TESTED, default 1,2,3,6,8: in the training range and
# twice beyond it; 16 sets x 2 samples each, the same samples a full 0..12 evaluation draws), and
# the locality diagnostic (conditional leakage). A patch model's cost grows with its patch area
# (k = 3: 21 px patches, ~1.9x k = 2), so the sweep samples 5 of the 13 K.
# Usage: sweep.sh K [SEED] [TESTED]     stages: SKIP="train kmax locality" to skip some
set -euo pipefail
k=$1; seed=${2:-0}; tested=${3:-1,2,3,6,8}
cd "$(dirname "$0")/../../.."
V=${V:-/work/runs/vframed}
LC=.venv/bin/localcomp
export OMP_NUM_THREADS=1
run=$V/runs/1-3/exp2l-k$k-s$seed
out=results/clevr/framed/sweep/exp2l-k$k-s$seed
mkdir -p "$out" /work/logs
skip=${SKIP:-}
if [[ " $skip " != *" train "* ]]; then
  $LC clevr train --experiment exp2l --k "$k" --preset mini48 --data "$V/data/1-3" --out "$run" --seed "$seed" \
      > "/work/logs/train-exp2l-k$k-s$seed.log" 2>&1
  cp "$run/run.json" "$run/train.json" "$out/"
fi
if [[ " $skip " != *" kmax "* ]]; then
  KS=$tested results/clevr/framed/kmax.sh "$run" "$out" 1-3 "$seed" "/work/logs/kmax-exp2l-k$k-s$seed.log"
fi
if [[ " $skip " != *" locality "* ]]; then
  # as the validate locality slice: the row's training scenes, 8 images, the run's seed
  $LC clevr locality --run "$run" --data "$V/data/1-3" --num-images 8 --seed "$seed" --out "$out/locality" \
      > "/work/logs/locality-exp2l-k$k-s$seed.log" 2>&1
fi
echo "sweep k=$k s$seed done $(date -u +%FT%T)" >> /work/logs/chain.log
