#!/bin/bash
# session 2026-12-04: re-render the 1-3 row and EVAL (lost with the last machine), rebuild the k = 1 machine, Kmax at 48 steps
set -e
export OMP_NUM_THREADS=1
cd /work/main
L=.venv/bin/localcomp
$L clevr render --preset clevr0-12 --out /work/data/EVAL --num-images 1300 --resolution 32 --seed 21 --workers 1
$L clevr render --preset clevr1-3 --out /work/data/DATA13 --num-images 5000 --resolution 32 --seed 100 --workers 1
echo renders done $(date -u)
$L clevr machine --data /work/data/DATA13 --k 1 --dtype float32 --out /work/runs/machine-k1
OUT=/work/runs/steps/machine-k1-s48; mkdir -p $OUT
/usr/bin/time -v -o $OUT/time.log $L clevr kmax --run /work/runs/machine-k1 --data /work/data/EVAL \
    --detector results/detector/detector.pt --max-k 10 --num-sets 16 --n 1 --training-objects 1-3 --seed 0 \
    --sampler-steps 48 --out $OUT > $OUT/kmax.log 2>&1
grep -E "Elapsed|Maximum resident" $OUT/time.log | sed 's/^\t//' > $OUT/time.txt
echo k1 s48 done $(date -u)
