#!/bin/bash
# One patch model's Kmax (kmax.sh: 16 sets x 2 per K) spread over several cores: start this script
# once per free core. Each worker claims the next unclaimed K of KS (mkdir is the lock), samples it
# alone into QUEUE/kK (sample j of set i at K is seeded by (seed + K, i, j) and the sets at K do not
# depend on the other K, so these are the samples one kmax.sh run over KS draws), and the worker that
# finds every K sampled merges them into RUN/kmax_samples.partial.npz and runs kmax.sh over KS once
# more: it resumes every K from that file and only evaluates. The result lands in RUN as with kmax.sh.
# Usage: KS=K1,K2,... kmax_queue.sh RUN ROW SEED QUEUE   (run from the repository root)
# A worker killed mid-K leaves QUEUE/claim-K without its `done`: remove that claim and start a
# worker again; that K is sampled again from its start.
set -euo pipefail
: "${KS:?set KS=K1,K2,... (the K to sample)}"
run=$1; row=$2; seed=$3; queue=$4
ks=(${KS//,/ })
mkdir -p "$queue"
for k in "${ks[@]}"; do
  mkdir "$queue/claim-$k" 2>/dev/null || continue
  KS=$k results/clevr/framed/kmax.sh "$run" "$queue/k$k" "$row" "$seed" "$queue/k$k.log" --force
  touch "$queue/claim-$k/done"
done
for k in "${ks[@]}"; do [[ -f "$queue/claim-$k/done" ]] || exit 0; done   # another worker is still sampling
mkdir "$queue/merge" 2>/dev/null || exit 0                                   # another worker merges
.venv/bin/python - "$run/kmax_samples.partial.npz" "$queue" "${ks[@]}" <<'EOF'
import sys
import numpy as np
from empirical.cli.model import write_npz_atomic
target, queue, ks = sys.argv[1], sys.argv[2], sys.argv[3:]
arrays = {}
for k in ks:
    with np.load(f"{queue}/k{k}/kmax_samples.npz") as part:
        for name in part.files:
            if name.startswith(("images_k", "locations_k")):
                arrays[name] = part[name]
            elif name in arrays and arrays[name].item() != part[name].item():
                sys.exit(f"{queue}/k{k}: {name} {part[name].item()} differs from the other K's {arrays[name].item()}")
            else:
                arrays[name] = part[name]
write_npz_atomic(target, arrays)
EOF
results/clevr/framed/kmax.sh "$run" "$run" "$row" "$seed" "$queue/merged.log" --force
