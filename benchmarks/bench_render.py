"""Rendering throughput: images/s for a CLEVR preset at a given resolution, spp and workers.

    python benchmarks/bench_render.py --num-images 2000 --resolution 64 --workers 2 --out results/bench_render

Writes ``bench_render.json`` (images/s, seconds, settings) and ``run.json`` into ``--out``;
the rendered dataset goes to ``--out/data`` (deleted afterwards unless ``--keep``).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path


def main() -> None:
    from empirical.dataset import BuildConfig, build_dataset
    from empirical.presets import get_preset
    from localcomp.provenance import write_json_atomic, write_run_record

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="clevr0-12")
    p.add_argument("--num-images", type=int, default=2000)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--spp", type=int, default=None)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    config = BuildConfig.from_preset(get_preset(args.preset), num_images=args.num_images,
                                     resolution=args.resolution, spp=args.spp, seed=args.seed)
    out = Path(args.out)
    data = out / "data"
    shutil.rmtree(data, ignore_errors=True)
    start = time.time()
    build_dataset(config, data, workers=args.workers)
    seconds = time.time() - start
    result = {"preset": config.preset, "num_images": config.num_images,
              "resolution": config.resolution, "spp": config.spp, "workers": args.workers,
              "seconds": seconds, "images_per_second": config.num_images / seconds}
    write_json_atomic(out / "bench_render.json", result)
    write_run_record(out, config=vars(args), seed=args.seed)
    if not args.keep:
        shutil.rmtree(data)
    print(result)


if __name__ == "__main__":
    main()
