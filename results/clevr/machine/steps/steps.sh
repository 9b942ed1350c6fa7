#!/bin/bash
# issue 11 item 3: Kmax at 12 / 24 / 48 Heun steps, a local (k = 1) and the non-local machine
set -e
export OMP_NUM_THREADS=1
cd /work/main
for RUN in machine-nonlocal machine-k1; do for S in 12 24 48; do
  OUT=/work/runs/steps/$RUN-s$S
  mkdir -p $OUT
  /usr/bin/time -v -o $OUT/time.log .venv/bin/localcomp clevr kmax --run /work/runs/$RUN --data /work/data/EVAL \
    --detector results/detector/detector.pt --max-k 10 --num-sets 16 --n 1 --training-objects 1-3 --seed 0 \
    --sampler-steps $S --out $OUT > $OUT/kmax.log 2>&1
  grep -E "Elapsed|Maximum resident" $OUT/time.log | sed 's/^\t//' > $OUT/time.txt
  echo $RUN $S done $(date -u)
done; done
