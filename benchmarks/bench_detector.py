"""Detector accuracy per K (true object count) on held-out renders.

    python benchmarks/bench_detector.py --detector results/detector/detector.pt \
        --data HELDOUT_32 HELDOUT_64 --out results/bench_detector

Writes ``bench_detector.json`` (per resolution, per K: n, exact-count accuracy, location match
rate at the Kmax tolerance) and ``run.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    from empirical.dataset import load_dataset
    from empirical.detector import count_accuracy, load_detector
    from localcomp.provenance import write_json_atomic, write_run_record

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detector", required=True)
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    network = load_detector(args.detector)
    result = {}
    for path in args.data:
        data = load_dataset(path)
        result[str(data.images.shape[1])] = count_accuracy(network, data)
    write_json_atomic(Path(args.out) / "bench_detector.json", result)
    write_run_record(args.out, config=vars(args))
    for res, per_k in result.items():
        print(res, {k: round(v["exact_count_accuracy"], 3) for k, v in per_k.items()})


if __name__ == "__main__":
    main()
