#!/bin/bash
set -e
export OMP_NUM_THREADS=1
cd /work/main
for RUN in machine-nonlocal-one machine-k2-one; do
  R=/work/runs/one/$RUN
  /usr/bin/time -v -o $R/time.log .venv/bin/localcomp clevr kmax --run $R --data /work/data/EVAL \
    --detector results/detector/detector.pt --max-k 10 --num-sets 16 --n 1 --training-objects 1-3 --seed 0 \
    > $R/kmax.log 2>&1
  grep -E "Elapsed|Maximum resident" $R/time.log | sed 's/^\t//' > $R/time.txt
  .venv/bin/localcomp clevr locality --run $R --data /work/data/DATA13 --num-images 4 --jacobian-images 2 \
    --seed 0 > $R/locality.log 2>&1
  echo $RUN done $(date -u)
done
