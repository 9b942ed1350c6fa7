"""Visible object footprints of rendered datasets (issue 11 item 2's targets), as JSON.

    python results/clevr/framing/footprints.py --data HELDOUT48 [EVAL32 ...] --out footprints.json

Per dataset: the visible pixels of every object (the renderer's exact id mask, stored per object
as ``pixels``), overall and per K (objects in the scene): median, minimum, 5th percentile and the
share of objects under 6 and under 20 px. Targets: median >= 20 px and every object >= 6 px.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from empirical.clevr.dataset import load_dataset
from localcomp.provenance import write_json_atomic, write_run_record


def summary(pixels: np.ndarray) -> dict:
    pixels = np.asarray(pixels, dtype=np.float64)
    if len(pixels) == 0:
        return {"objects": 0}
    return {"objects": int(len(pixels)), "median_px": float(np.median(pixels)),
            "min_px": int(pixels.min()), "p5_px": float(np.percentile(pixels, 5)),
            "share_below_6_px": float(np.mean(pixels < 6)),
            "share_below_20_px": float(np.mean(pixels < 20))}


def footprints(path: str) -> dict:
    data = load_dataset(path)
    per_scene = [np.array([o["pixels"] for o in m["objects"]]) for m in data.metadata]
    counts = np.array([len(p) for p in per_scene])
    everything = np.concatenate(per_scene) if per_scene else np.zeros(0)
    manifest = data.manifest
    return {"data": path, "resolution": manifest["resolution"],
            "camera": manifest.get("camera", "clevr"), "seed": manifest["seed"],
            "scenes": len(per_scene), **summary(everything),
            "targets_met": bool(len(everything) and np.median(everything) >= 20
                                and everything.min() >= 6),
            "per_k": {int(k): {"scenes": int(np.sum(counts == k)),
                               **summary(np.concatenate([p for p, c in zip(per_scene, counts)
                                                         if c == k]))}
                      for k in np.unique(counts) if k > 0}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    report = {"datasets": [footprints(path) for path in args.data]}
    write_json_atomic(args.out, report)
    write_run_record(Path(args.out).parent, config=vars(args), seed=None,
                     name=Path(args.out).stem + ".run.json")
    for d in report["datasets"]:
        print(f"{d['data']}: {d['resolution']} px, camera {d['camera']}: median {d['median_px']}, "
              f"min {d['min_px']}, below 6 px {d['share_below_6_px']:.3f}, targets met {d['targets_met']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
