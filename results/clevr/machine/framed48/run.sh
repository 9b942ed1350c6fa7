#!/bin/bash
# issue 11 on the framed 48 px data: the 1-3 training row and the evaluation location sets, the machines' Kmax samples
# (sampled now with the 32 px detector, re-detected with --reuse-samples once the 48 px detector exists)
set -e
export OMP_NUM_THREADS=1
cd /work/main
L=.venv/bin/localcomp
D=/work/data/framed
$L clevr render --preset clevr0-12 --camera framed --resolution 48 --out $D/EVAL48 --num-images 1300 --seed 21 --workers 1
$L clevr render --preset clevr1-3 --camera framed --resolution 48 --out $D/DATA13-48 --num-images 5000 --seed 100 --workers 1
echo data done $(date -u)
for M in nonlocal k1 k2; do
  if [ $M = nonlocal ]; then A="--non-local"; else A="--k ${M#k}"; fi
  [ -f /work/runs/f48/machine-$M/machine.json ] || $L clevr machine --data $D/DATA13-48 $A --dtype float32 --out /work/runs/f48/machine-$M
  OUT=/work/runs/f48/machine-$M; 
  /usr/bin/time -v -o $OUT/time.log $L clevr kmax --run $OUT --data $D/EVAL48 --detector results/detector/detector.pt \
     --max-k 10 --num-sets 16 --n 1 --training-objects 1-3 --seed 0 > $OUT/kmax.log 2>&1
  grep -E "Elapsed|Maximum resident" $OUT/time.log | sed 's/^\t//' > $OUT/time.txt
  echo $M done $(date -u)
done
