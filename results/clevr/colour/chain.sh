#!/bin/bash
# train run $1 to $STEPS steps (resumes), then evaluate into results/clevr/colour/step$STEPS
e=$1; STEPS=${STEPS:-1000}
cd /work/main
RD=/work/data/runs-colour; run=$RD/$e; R=results/clevr/colour; O=$R/step$STEPS
export OMP_NUM_THREADS=1
LC=.venv/bin/localcomp
$LC clevr train --experiment $e --preset mini --data /work/data/DATA13 --out $run --seed 0 --steps $STEPS > $RD/$e.train$STEPS.log 2>&1
if [ "$e" = exp1 ]; then out=$O/exp1-location; else out=$O/$e; fi
mkdir -p $out; cp $run/train.json $run/run.json $out/
if [ "$e" != exp1 ]; then
  $LC clevr colour kmax --run $run --detector results/detector/detector.pt --readout $R/readout/readout.pt \
    --max-k 8 --num-sets 16 --n 1 --sampler-steps 12 --seed 0 --out $out > $RD/$e.kmax$STEPS.log 2>&1
  $LC clevr colour locality --run $run --readout $R/readout/readout.pt --samples $out/colour_kmax_samples.npz \
    --ks 2,3 --num-images 32 --seed 0 --out $out/locality > $RD/$e.locality$STEPS.log 2>&1
else
  $LC clevr colour locality --run $run --data /work/data/DATA13 --start 4500 --num-images 32 --seed 0 \
    --out $out/locality > $RD/$e.locality$STEPS.log 2>&1
fi
$LC clevr colour features --run $run --data /work/data/DATA13 --start 4500 --num-images 16 --seed 0 \
  --out $out/features > $RD/$e.features$STEPS.log 2>&1
echo "$e step $STEPS done $(date -u)" >> $RD/chain.log
