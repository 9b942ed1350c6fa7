"""Rendering throughput: images/s for a CLEVR preset at a resolution, per (spp, workers) pair.

    python benchmarks/bench_render.py --num-images 200 --resolution 64 --spp 16 64 \
        --workers 1 2 --out results/bench/render.json

Renders ``--num-images`` images for every combination of ``--spp`` and ``--workers`` into a
temporary directory (deleted afterwards) and writes one JSON with images/s, seconds, CPU
seconds of this process tree, the machine's core count and load average before each run (the
machine may be shared: the load says how contended the measurement was), plus ``run.json``
beside it (``<out stem>.run.json``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(config, workers: int) -> dict:
    """Render ``config`` once with ``workers`` processes into a scratch directory."""
    from empirical.clevr.dataset import build_dataset

    scratch = Path(tempfile.mkdtemp(prefix="bench_render_"))
    try:
        load = os.getloadavg()[0]
        cpu0, start = cpu_seconds(), time.time()
        build_dataset(config, scratch / "data", workers=workers, progress=False)
        seconds, cpu = time.time() - start, cpu_seconds() - cpu0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"spp": config.spp, "workers": workers, "num_images": config.num_images,
            "seconds": seconds, "images_per_second": config.num_images / seconds,
            "cpu_seconds": cpu, "cpu_ms_per_image": 1000 * cpu / config.num_images,
            "load_average_before": load}


def main() -> None:
    from empirical.clevr.dataset import BuildConfig
    from empirical.clevr.presets import get_preset
    from localcomp.provenance import write_json_atomic, write_run_record

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="clevr0-12")
    p.add_argument("--num-images", type=int, default=200)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--spp", type=int, nargs="+", default=[16, 64])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output JSON path")
    args = p.parse_args()
    rows = []
    for spp in args.spp:
        config = BuildConfig.from_preset(get_preset(args.preset), num_images=args.num_images,
                                         resolution=args.resolution, spp=spp, seed=args.seed,
                                         shard_size=max(1, args.num_images // max(args.workers)))
        for workers in args.workers:
            rows.append(measure(config, workers))
            print(rows[-1])
    out = Path(args.out)
    result = {"preset": args.preset, "resolution": args.resolution, "cpu_count": os.cpu_count(),
              "runs": rows}
    write_json_atomic(out, result)
    write_run_record(out.parent, config=vars(args), seed=args.seed, name=out.stem + ".run.json")


if __name__ == "__main__":
    main()
