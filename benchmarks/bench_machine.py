"""The local conditional machine: fast path against the plain loop over training patches.

    python benchmarks/bench_machine.py --train 64 --queries 2 --out benchmarks/results/machine.json

Both compute the same estimator (:func:`empirical.models.machine.reference_denoise` is its
definition, a Python loop over cells and training images) on the same training set, noisy
queries and sigma, in the same run (the matmul path as ``fast``, and the box-sum path); the JSON holds the times, their ratio, the largest output
difference, and the load average (the machine may be shared). A second part times one
denoiser call of the fast path at the CLEVR size (``--clevr-train`` images at 32 px, batch 16)
for k = 1, 2, 4 and the non-local machine (the matmul path), which is what a Kmax evaluation costs
per sampler evaluation. A third part (``paths``) times one call of both distance paths side by
side at the same size, float32, for k = 1, 2, 4, 6, 8 and the non-local machine, on noisy queries
with sigma from 0.05 to 2: their times, ratio, largest output difference, and which path "auto"
takes (``method_costs``); the "auto" rule's constant comes from it (docs/local-machine.md).

    python benchmarks/bench_machine.py --paths-only --out benchmarks/results/machine_paths.json
"""

from __future__ import annotations

import argparse
import json
import math
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
    from empirical.models.machine import (BOXSUM_FACTOR, LocalConditionalMachine, MachineConfig, method_costs,
                                          reference_denoise)
    from localcomp.provenance import write_json_atomic, write_run_record

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=64, help="training images of the side-by-side part")
    parser.add_argument("--queries", type=int, default=2)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--clevr-train", type=int, default=5000, help="training images of the CLEVR-size part")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--paths-ks", default="1,2,4,6,8", help="k of the paths part (and the non-local machine)")
    parser.add_argument("--paths-only", action="store_true",
                        help="run only the paths part (the other parts are kept from an existing --out)")
    parser.add_argument("--out", default="benchmarks/results/machine.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"threads": args.threads, "load_average": os.getloadavg()[0], "side_by_side": [], "clevr_size": [],
              "paths": [], "boxsum_factor": BOXSUM_FACTOR}
    if args.paths_only and Path(args.out).exists():
        kept = json.loads(Path(args.out).read_text())
        result.update({key: kept[key] for key in ("threads", "load_average", "side_by_side", "clevr_size") if key in kept})
    if not args.paths_only:
        train = batch(BlobDataset(size=args.train, resolution=args.resolution, min_objects=1, max_objects=3, seed=0),
                      args.train)
        clean, qcond, qmask = batch(BlobDataset(size=args.queries, resolution=args.resolution, min_objects=1,
                                                max_objects=4, seed=1), args.queries)
        x = clean + 0.3 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
        sigma = torch.full((args.queries,), 0.3)
        for k in (1, 2):
            config = MachineConfig(args.resolution, 16, k, method="matmul")
            machine = LocalConditionalMachine(config, *train)
            start = time.perf_counter()
            fast = machine(x, sigma, qcond, qmask)
            fast_s = time.perf_counter() - start
            box_machine = LocalConditionalMachine(MachineConfig(args.resolution, 16, k, method="boxsum"), *train)
            start = time.perf_counter()
            box = box_machine(x, sigma, qcond, qmask)
            box_s = time.perf_counter() - start
            start = time.perf_counter()
            slow = reference_denoise(config, *train, x, sigma, qcond, qmask)
            slow_s = time.perf_counter() - start
            row = {"k": k, "train": args.train, "queries": args.queries, "resolution": args.resolution,
                   "fast_seconds": fast_s, "loop_seconds": slow_s, "speedup": slow_s / fast_s,
                   "max_abs_difference": float((fast - slow).abs().max()),
                   "boxsum_seconds": box_s, "boxsum_max_abs_difference": float((box - slow).abs().max())}
            result["side_by_side"].append(row)
            print(row)
        data = batch(BlobDataset(size=args.clevr_train, resolution=32, min_objects=1, max_objects=3, seed=0),
                     args.clevr_train)
        q = batch(BlobDataset(size=16, resolution=32, min_objects=4, max_objects=8, seed=2), 16)
        for grid, k in ((16, 1), (16, 2), (16, 4), (1, 0)):
            for dtype in ("float64", "float32"):
                machine = LocalConditionalMachine(MachineConfig(32, grid, k, dtype=dtype, method="matmul"), *data)
                start = time.perf_counter()
                machine.conditioner_logits(q[1], q[2])
                cond_s = time.perf_counter() - start
                start = time.perf_counter()
                machine(q[0], torch.ones(16), q[1], q[2])
                call_s = time.perf_counter() - start
                row = {"label": machine.config.label, "dtype": dtype, "method": "matmul", "train": args.clevr_train,
                       "batch": 16, "conditioner_term_seconds": cond_s, "call_seconds": call_s}
                result["clevr_size"].append(row)
                print(row)
    data = batch(BlobDataset(size=args.clevr_train, resolution=32, min_objects=1, max_objects=3, seed=0),
                 args.clevr_train)
    clean, qcond, qmask = batch(BlobDataset(size=16, resolution=32, min_objects=4, max_objects=8, seed=2), 16)
    sigma = torch.logspace(math.log10(0.05), math.log10(2.0), 16)
    x = clean + sigma[:, None, None, None] * torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))
    for grid, k in [(16, int(k)) for k in args.paths_ks.split(",")] + [(1, 0)]:
        row = {"label": MachineConfig(32, grid, k).label, "k": k, "grid": grid, "dtype": "float32",
               "train": args.clevr_train, "batch": 16, "load_average": os.getloadavg()[0]}
        outs = {}
        for method in ("matmul", "boxsum"):
            config = MachineConfig(32, grid, k, dtype="float32", method=method)
            start = time.perf_counter()
            machine = LocalConditionalMachine(config, *data)
            row[f"{method}_build_seconds"] = time.perf_counter() - start
            machine.conditioner_logits(qcond, qmask)                     # cached, as in a sampler
            start = time.perf_counter()
            outs[method] = machine(x, sigma, qcond, qmask)
            row[f"{method}_seconds"] = time.perf_counter() - start
            del machine
        row["matmul_over_boxsum"] = row["matmul_seconds"] / row["boxsum_seconds"]
        row["max_abs_difference"] = float((outs["matmul"] - outs["boxsum"]).abs().max())
        row["costs"] = method_costs(MachineConfig(32, grid, k))
        row["auto"] = MachineConfig(32, grid, k).resolved_method
        result["paths"].append(row)
        print(row, flush=True)
    write_json_atomic(Path(args.out), result)
    write_run_record(Path(args.out).parent, vars(args), None, name=Path(args.out).stem + ".run.json")


if __name__ == "__main__":
    main()
