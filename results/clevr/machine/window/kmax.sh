#!/bin/bash
# Kmax of the k = 2 machine on 1,000 training images, same cell vs window 1
set -e
export OMP_NUM_THREADS=1
cd /work/main
for RUN in n1000-k2-w0 n1000-k2-w1; do
  R=/work/runs/window/$RUN
  /usr/bin/time -v -o $R/time.log .venv/bin/localcomp clevr kmax --run $R --data /work/data/EVAL \
    --detector results/detector/detector.pt --max-k 10 --num-sets 16 --n 1 --training-objects 1-3 --seed 0 \
    > $R/kmax.log 2>&1
  grep -E "Elapsed|Maximum resident" $R/time.log | sed 's/^\t//' > $R/time.txt
  echo $RUN done $(date -u)
done
