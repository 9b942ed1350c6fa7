"""Why exact counting is hard at large K: per K, how occluded and how crowded the objects are.

    python benchmarks/detector_hardness.py --data HELDOUT_32 HELDOUT_64 --out results/detector/hardness.json

Per resolution and K (from the renders' metadata and object-id masks, no detector involved):
the fraction of images holding an object with at most 4 (and at most 6) visible pixels, in
pixels of a 32 px image (visible pixels x (32/R)^2; the
sampler keeps scenes whose every object shows >= ceil(200 R^2 / 76800) pixels: 3 at 32 px,
11 at 64 px); the fraction whose closest pair of projected centres is under 1.5 px and under
2 px (pixels of the image's own resolution); and the fraction holding an object whose centre pixel shows another object (its centre
is hidden behind an occluder, so the detector must infer it from the visible sliver).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def image_hardness(mask: np.ndarray, objects: list[dict]) -> dict:
    """For one image (mask uint8 [R, R], 0 = floor, j+1 = object j; objects' metadata):
    smallest visible pixel count, smallest centre distance in pixels, hidden-centre flag."""
    size = mask.shape[0]
    locations = np.array([o["location"] for o in objects], dtype=np.float64).reshape(-1, 2)
    pixels = np.bincount(mask.ravel(), minlength=len(objects) + 1)[1:len(objects) + 1]
    cols = np.clip(((locations[:, 0] + 1) * size / 2).astype(int), 0, size - 1)
    rows = np.clip(((locations[:, 1] + 1) * size / 2).astype(int), 0, size - 1)
    hidden = bool(np.any(mask[rows, cols] != np.arange(1, len(objects) + 1))) if len(objects) else False
    if len(objects) > 1:
        d = np.linalg.norm(locations[:, None] - locations[None], axis=-1) * size / 2
        d[np.diag_indices(len(objects))] = np.inf
        closest = float(d.min())
    else:
        closest = float("inf")
    scale = (32 / size) ** 2    # visible area in pixels of a 32 px image
    return {"min_pixels": float(pixels.min() * scale) if len(objects) else None, "closest_px": closest,
            "hidden_centre": hidden}


def main() -> None:
    from empirical.dataset import load_dataset
    from localcomp.provenance import write_json_atomic, write_run_record

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--out", required=True, help="output JSON path")
    args = p.parse_args()
    result = {}
    for path in args.data:
        data = load_dataset(path)
        per_k: dict[int, list[dict]] = {}
        for mask, meta in zip(data.masks, data.metadata):
            per_k.setdefault(len(meta["objects"]), []).append(image_hardness(mask, meta["objects"]))
        table = {}
        for k, rows in sorted(per_k.items()):
            if k == 0:
                continue
            pixels = np.array([r["min_pixels"] for r in rows])
            closest = np.array([r["closest_px"] for r in rows])
            table[k] = {"n": len(rows),
                        "frac_object_le_4_px": float(np.mean(pixels <= 4)),
                        "frac_object_le_6_px": float(np.mean(pixels <= 6)),
                        "frac_centres_lt_1.5_px": float(np.mean(closest < 1.5)),
                        "frac_centres_lt_2_px": float(np.mean(closest < 2)),
                        "frac_hidden_centre": float(np.mean([r["hidden_centre"] for r in rows]))}
        result[str(data.images.shape[1])] = {"data": path, "per_k": table}
        for k, row in table.items():
            print(data.images.shape[1], k, {name: round(v, 2) for name, v in row.items()})
    out = Path(args.out)
    write_json_atomic(out, result)
    write_run_record(out.parent, config=vars(args), name=out.stem + ".run.json")


if __name__ == "__main__":
    main()
