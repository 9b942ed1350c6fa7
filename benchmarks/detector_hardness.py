"""Why exact counting is hard at large K, and (with ``--detector``) where a detector's errors come from.

    python benchmarks/detector_hardness.py --data HELDOUT_32 HELDOUT_64 --out results/detector/hardness.json \
        [--detector results/detector/detector.pt]

Scene statistics per resolution and K (from the renders' metadata and object-id masks, no
detector involved): the fraction of images holding an object with at most 4 (and at most 6)
visible pixels, in pixels of a 32 px image (visible pixels x (32/R)^2; the sampler keeps scenes
whose every object shows >= ceil(200 R^2 / 76800) pixels: 3 at 32 px, 11 at 64 px); the fraction
whose closest pair of projected centres is under 1.5 px and under 2 px (pixels of the image's
own resolution); and the fraction holding an object whose centre pixel shows another object
(its centre is hidden behind an occluder, so the detector must infer it from the visible sliver).

Error sources (``--detector``), per resolution, key ``errors``:

- ``per_k``: exact-count accuracy on all scenes and restricted to scenes whose *every* object
  shows >= v visible pixels (32 px units, v = 1, 3, 5, 8; i.e. >= 4v pixels at 64 px), with the
  subset sizes; among the miscounted scenes, the fractions of under- and over-counts; the
  accuracy on scenes with / without a hidden centre.
- ``miss_rate_by_visible_pixels``: per object (scenes with K >= 6), the fraction of true objects
  left unmatched by the Hungarian matching (tolerance 0.125) with the detections, binned by the
  object's visible pixels (32 px units), and split by whether the object's own centre pixel
  shows another object (``miss_rate_hidden_centre`` / ``miss_rate_visible_centre``), and by
  the object's colour (``miss_rate_by_colour``); and the per-K accuracy on the scenes without a
  grey object (``exact_count_accuracy_scenes_without_grey``). If the errors are information-limited, the misses
  concentrate on objects showing a few pixels and accuracy on the restricted subsets is near 1;
  if they are network-limited, well-visible objects are missed too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

VISIBILITY_THRESHOLDS = (1, 3, 5, 8)          # visible pixels per object, 32 px units
PIXEL_BINS = (0, 4, 5, 6, 8, 16, 32, np.inf)  # bin edges for the per-object miss rate
MISS_RATE_MIN_K = 6


def visible_pixels(mask: np.ndarray, num_objects: int) -> np.ndarray:
    """float [n]: each object's visible pixels in 32 px units (mask uint8 [R, R], 0 = floor,
    j+1 = object j): pixel count x (32/R)^2."""
    size = mask.shape[0]
    counts = np.bincount(mask.ravel(), minlength=num_objects + 1)[1:num_objects + 1]
    return counts * (32 / size) ** 2


def centre_hidden(mask: np.ndarray, locations: np.ndarray) -> np.ndarray:
    """bool [n]: whether object j's projected centre (locations float [n, 2] in [-1, 1]) falls
    on a pixel of mask uint8 [R, R] that shows something other than object j."""
    size = mask.shape[0]
    cols = np.clip(((locations[:, 0] + 1) * size / 2).astype(int), 0, size - 1)
    rows = np.clip(((locations[:, 1] + 1) * size / 2).astype(int), 0, size - 1)
    return mask[rows, cols] != np.arange(1, len(locations) + 1)


def image_hardness(mask: np.ndarray, objects: list[dict]) -> dict:
    """For one image (mask uint8 [R, R], 0 = floor, j+1 = object j; objects' metadata):
    smallest visible pixel count, smallest centre distance in pixels, hidden-centre flag."""
    size = mask.shape[0]
    locations = np.array([o["location"] for o in objects], dtype=np.float64).reshape(-1, 2)
    pixels = visible_pixels(mask, len(objects))
    hidden = bool(np.any(centre_hidden(mask, locations)))
    if len(objects) > 1:
        d = np.linalg.norm(locations[:, None] - locations[None], axis=-1) * size / 2
        d[np.diag_indices(len(objects))] = np.inf
        closest = float(d.min())
    else:
        closest = float("inf")
    return {"min_pixels": float(pixels.min()) if len(objects) else None, "closest_px": closest,
            "hidden_centre": hidden}


def hardness_table(rows_by_k: dict[int, list[dict]]) -> dict:
    """Per K >= 1: n and the fractions of hard scenes (see the module docstring)."""
    table = {}
    for k, rows in sorted(rows_by_k.items()):
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
    return table


def _accuracy(correct: np.ndarray) -> dict:
    return {"n": int(correct.size), "exact_count_accuracy": float(correct.mean()) if correct.size else None}


def error_breakdown(true_counts: np.ndarray, found_counts: np.ndarray, min_pixels: np.ndarray,
                    hidden_centre: np.ndarray,
                    thresholds: tuple[int, ...] = VISIBILITY_THRESHOLDS) -> dict:
    """Per K, from per-image arrays [N] (true count, detected count, smallest visible pixels in
    32 px units (inf when K = 0), hidden-centre flag): exact-count accuracy overall and on the
    scenes with min_pixels >= v for each v, the under/over-count split of the errors, and the
    accuracy with / without a hidden centre."""
    table = {}
    for k in np.unique(true_counts):
        at_k = true_counts == k
        correct = found_counts[at_k] == k
        wrong = found_counts[at_k][~correct]
        table[int(k)] = {
            **_accuracy(correct),
            "min_visible_ge": {int(v): _accuracy(correct[min_pixels[at_k] >= v]) for v in thresholds},
            "errors": int(wrong.size),
            "frac_errors_undercount": float(np.mean(wrong < k)) if wrong.size else None,
            "frac_errors_overcount": float(np.mean(wrong > k)) if wrong.size else None,
            "hidden_centre": _accuracy(correct[hidden_centre[at_k]]),
            "no_hidden_centre": _accuracy(correct[~hidden_centre[at_k]]),
        }
    return table


def miss_rate_by_pixels(object_pixels: np.ndarray, object_missed: np.ndarray,
                        edges: tuple[float, ...] = PIXEL_BINS) -> list[dict]:
    """Per bin [lo, hi) of visible pixels (object_pixels, object_missed: [M]): objects, misses,
    miss rate."""
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (object_pixels >= lo) & (object_pixels < hi)
        out.append({"visible_px_from": float(lo), "visible_px_below": float(hi),
                    "objects": int(inside.sum()), "missed": int(object_missed[inside].sum()),
                    "miss_rate": float(object_missed[inside].mean()) if inside.any() else None})
    return out


def detector_errors(data, detections: list[np.ndarray], tolerance: float) -> dict:
    """The ``errors`` entry for one dataset (see the module docstring)."""
    from empirical.evaluation.kmax import match_locations

    true_counts, found_counts, min_pixels, hidden, has_grey = [], [], [], [], []
    object_pixels, object_missed, object_hidden, object_colours = [], [], [], []
    for mask, meta, found in zip(data.masks, data.metadata, detections):
        objects = meta["objects"]
        row = image_hardness(mask, objects)
        true_counts.append(len(objects))
        found_counts.append(len(found))
        min_pixels.append(np.inf if row["min_pixels"] is None else row["min_pixels"])
        hidden.append(row["hidden_centre"])
        has_grey.append(any(o.get("color") == "gray" for o in objects))
        if len(objects) >= MISS_RATE_MIN_K:
            truth = np.array([o["location"] for o in objects], dtype=np.float64)
            matched, _ = match_locations(found, truth, tolerance)
            object_pixels.append(visible_pixels(mask, len(objects)))
            object_missed.append(~matched)
            object_hidden.append(centre_hidden(mask, truth))
            object_colours += [o.get("color") for o in objects]
    pixels = np.concatenate(object_pixels) if object_pixels else np.zeros(0)
    missed = np.concatenate(object_missed) if object_missed else np.zeros(0, bool)
    hidden_objects = np.concatenate(object_hidden) if object_hidden else np.zeros(0, bool)
    return {"per_k": error_breakdown(np.array(true_counts), np.array(found_counts),
                                     np.array(min_pixels), np.array(hidden)),
            f"miss_rate_by_visible_pixels_k_ge_{MISS_RATE_MIN_K}": miss_rate_by_pixels(pixels, missed),
            "exact_count_accuracy_scenes_without_grey": accuracy_per_k(
                np.array(true_counts), np.array(found_counts), ~np.array(has_grey, dtype=bool)),
            f"miss_rate_by_colour_k_ge_{MISS_RATE_MIN_K}": miss_rate_by_colour(
                np.array(object_colours, dtype=object), missed),
            f"miss_rate_hidden_centre_k_ge_{MISS_RATE_MIN_K}": _rate(missed[hidden_objects]),
            f"miss_rate_visible_centre_k_ge_{MISS_RATE_MIN_K}": _rate(missed[~hidden_objects])}


def accuracy_per_k(true_counts: np.ndarray, found_counts: np.ndarray, keep: np.ndarray) -> dict:
    """{K: {n, exact_count_accuracy}} over the scenes where ``keep`` (all [N]) is True."""
    return {int(k): _accuracy(found_counts[keep & (true_counts == k)] == k)
            for k in np.unique(true_counts[keep])}


def miss_rate_by_colour(colours: np.ndarray, missed: np.ndarray) -> dict:
    """{colour: {objects, missed, miss_rate}} over objects (colours, missed: [M]); CLEVR's grey
    (linear reflectance 0.34) on the 0.40 grey floor is the low-contrast colour."""
    return {str(c): _rate(missed[colours == c]) for c in sorted(set(colours.tolist()), key=str)}


def _rate(missed: np.ndarray) -> dict:
    return {"objects": int(missed.size), "missed": int(missed.sum()),
            "miss_rate": float(missed.mean()) if missed.size else None}


def main() -> None:
    from empirical.clevr.dataset import load_dataset
    from localcomp.errors import UserError
    from localcomp.provenance import write_json_atomic, write_run_record

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--out", required=True, help="output JSON path")
    p.add_argument("--detector", default=None,
                   help="detector.pt: add the error breakdown of this detector (key 'errors')")
    p.add_argument("--seed", type=int, default=0, help="recorded only (nothing is random)")
    args = p.parse_args()
    network = None
    if args.detector is not None:
        import torch

        from empirical.detection.detector import load_detector
        if not Path(args.detector).is_file():
            raise UserError(f"--detector: {args.detector} does not exist")
        torch.set_num_threads(1)
        network = load_detector(args.detector)
    result = {}
    for path in args.data:
        data = load_dataset(path)
        rows_by_k: dict[int, list[dict]] = {}
        for mask, meta in zip(data.masks, data.metadata):
            rows_by_k.setdefault(len(meta["objects"]), []).append(image_hardness(mask, meta["objects"]))
        table = hardness_table(rows_by_k)
        resolution = str(data.images.shape[1])
        result[resolution] = {"data": path, "per_k": table}
        for k, row in table.items():
            print(resolution, k, {name: round(v, 2) for name, v in row.items()})
        if network is not None:
            from empirical.detection.detector import detect_objects
            from empirical.detection.matching import DEFAULT_TOLERANCE
            errors = detector_errors(data, detect_objects(network, data.images), DEFAULT_TOLERANCE)
            result[resolution]["errors"] = {"detector": args.detector, "tolerance": DEFAULT_TOLERANCE,
                                            **errors}
            for k, row in errors["per_k"].items():
                print(resolution, k, "acc", round(row["exact_count_accuracy"], 3),
                      {v: (e["n"], None if e["exact_count_accuracy"] is None else round(e["exact_count_accuracy"], 3))
                       for v, e in row["min_visible_ge"].items()},
                      "under", row["frac_errors_undercount"])
            for name, value in errors.items():
                if name != "per_k":
                    print(resolution, name, value)
    out = Path(args.out)
    write_json_atomic(out, result)
    write_run_record(out.parent, config=vars(args), seed=args.seed, name=out.stem + ".run.json")


if __name__ == "__main__":
    main()
