#!/bin/bash
# issue 11 item 2: the detector at 48 px working resolution, fine-tuned from the 32 px run 3 on framed 48 px renders
set -e
cd /work/main
OMP_NUM_THREADS=1 /usr/bin/time -v -o /work/runs/det48/time.log .venv/bin/localcomp clevr detector train \
  --data /work/data/framed/TRAIN48 /work/data/framed/TRAIN48-crowded --val /work/data/framed/VAL48 \
  --out /work/runs/det48/run1 --steps 6000 --width 32 --working-resolution 48 --lr 1e-3 \
  --init results/detector/detector.pt --threads 1 --seed 0
OMP_NUM_THREADS=1 .venv/bin/localcomp clevr detector eval --detector /work/runs/det48/run1/detector.pt \
  --data /work/data/framed/HELDOUT48 --json /work/runs/det48/run1/eval-48px.json
echo done $(date -u)
