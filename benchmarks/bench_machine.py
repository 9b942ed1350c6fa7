"""The local conditional machine: fast path against the plain loop over training patches.

    python benchmarks/bench_machine.py --train 64 --queries 2 --out benchmarks/results/machine.json

Both compute the same estimator (:func:`empirical.models.machine.reference_denoise` is its
definition, a Python loop over cells and training images) on the same training set, noisy
queries and sigma, in the same run; the JSON holds both times, their ratio, the largest output
difference, and the load average (the machine may be shared). A second part times one
denoiser call of the fast path at the CLEVR size (``--clevr-train`` images at 32 px, batch 16)
for k = 1, 2, 4 and the non-local machine, which is what a Kmax evaluation costs per sampler
evaluation.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch


def batch(dataset, n):
    items = [dataset[i] for i in range(n)]
    most = max(max(len(c) for _, c in items), 1)
    cond, mask = torch.zeros(n, most, 2), torch.zeros(n, most, dtype=torch.bool)
    for i, (_, c) in enumerate(items):
        cond[i, :len(c)], mask[i, :len(c)] = c, True
    return torch.stack([im for im, _ in items]), cond, mask


def main() -> None:
    from empirical.clevr.synthetic import BlobDataset
    from empirical.models.machine import LocalConditionalMachine, MachineConfig, reference_denoise
    from localcomp.provenance import write_json_atomic, write_run_record

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=64, help="training images of the side-by-side part")
    parser.add_argument("--queries", type=int, default=2)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--clevr-train", type=int, default=5000, help="training images of the CLEVR-size part")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/machine.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"threads": args.threads, "load_average": os.getloadavg()[0], "side_by_side": [], "clevr_size": []}
    train = batch(BlobDataset(size=args.train, resolution=args.resolution, min_objects=1, max_objects=3, seed=0),
                  args.train)
    clean, qcond, qmask = batch(BlobDataset(size=args.queries, resolution=args.resolution, min_objects=1,
                                            max_objects=4, seed=1), args.queries)
    x = clean + 0.3 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    sigma = torch.full((args.queries,), 0.3)
    for k in (1, 2):
        config = MachineConfig(args.resolution, 16, k)
        machine = LocalConditionalMachine(config, *train)
        start = time.perf_counter()
        fast = machine(x, sigma, qcond, qmask)
        fast_s = time.perf_counter() - start
        start = time.perf_counter()
        slow = reference_denoise(config, *train, x, sigma, qcond, qmask)
        slow_s = time.perf_counter() - start
        row = {"k": k, "train": args.train, "queries": args.queries, "resolution": args.resolution,
               "fast_seconds": fast_s, "loop_seconds": slow_s, "speedup": slow_s / fast_s,
               "max_abs_difference": float((fast - slow).abs().max())}
        result["side_by_side"].append(row)
        print(row)
    data = batch(BlobDataset(size=args.clevr_train, resolution=32, min_objects=1, max_objects=3, seed=0),
                 args.clevr_train)
    q = batch(BlobDataset(size=16, resolution=32, min_objects=4, max_objects=8, seed=2), 16)
    for grid, k in ((16, 1), (16, 2), (16, 4), (1, 0)):
        for dtype in ("float64", "float32"):
            machine = LocalConditionalMachine(MachineConfig(32, grid, k, dtype=dtype), *data)
            start = time.perf_counter()
            machine.conditioner_logits(q[1], q[2])
            cond_s = time.perf_counter() - start
            start = time.perf_counter()
            machine(q[0], torch.ones(16), q[1], q[2])
            call_s = time.perf_counter() - start
            row = {"label": machine.config.label, "dtype": dtype, "train": args.clevr_train, "batch": 16,
                   "conditioner_term_seconds": cond_s, "call_seconds": call_s}
            result["clevr_size"].append(row)
            print(row)
    write_json_atomic(Path(args.out), result)
    write_run_record(Path(args.out).parent, vars(args), None, name=Path(args.out).stem + ".run.json")


if __name__ == "__main__":
    main()
