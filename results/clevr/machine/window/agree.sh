#!/bin/bash
# the position-window agreement experiment (results/clevr/machine/window/)
set -e
export OMP_NUM_THREADS=1
cd /work/main
W=/work/runs/window
/usr/bin/time -v -o $W/agreement.time.log .venv/bin/localcomp clevr agreement \
    --runs /work/runs/learned/exp2l /work/runs/learned/exp3l /work/data/runs-colour/exp1 \
    --references /work/runs/machine-k1 $W/machine-k1-w1 $W/machine-k1-w2 /work/runs/machine-k2 $W/machine-k2-w1 $W/machine-k2-w2 \
        $W/n1000-k2-w0 $W/n1000-k2-w1 $W/n100-k1-w0 $W/n100-k1-w15 $W/n100-k2-w0 $W/n100-k2-w15 \
    --data /work/data/EVAL --num-images 16 --min-objects 1 --max-objects 3 --seed 0 --out $W/agreement \
    > $W/agreement.log 2>&1
echo agreement done $(date -u)
