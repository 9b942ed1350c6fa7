"""Is the detector limited by path-tracing noise? The same scenes rendered at two spp, one detector.

    python benchmarks/detector_render_noise.py --detector results/detector/detector.pt \
        --data HELDOUT_32 HELDOUT_32_SPP256 --out results/detector/render-noise.json

The two datasets must hold the same scenes (same seed, resolution and preset; only ``--spp``
differs: the scene sampler never draws from the spp, so object positions and id masks are
identical; checked here). For each dataset: per-K exact-count accuracy, under- and over-counts,
and the per-object miss rate by visible pixels (:func:`detector_hardness.detector_errors`).
Then, over the scene pairs: how many scenes are miscounted in both renders, only in the noisier
one, only in the cleaner one. If noise were the limit, the errors of the noisy render would
mostly vanish in the clean one; errors that persist are set by the geometry (small, occluded,
low-contrast objects) or by the network.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from detector_hardness import detector_errors


def same_scenes(first, second) -> bool:
    """Whether two datasets hold the same scenes: equal object locations and id masks."""
    if len(first.metadata) != len(second.metadata):
        return False
    locations_equal = all(
        np.array_equal(np.array([o["location"] for o in a["objects"]]),
                       np.array([o["location"] for o in b["objects"]]))
        for a, b in zip(first.metadata, second.metadata))
    return locations_equal and np.array_equal(first.masks, second.masks)


def main() -> None:
    import torch

    from empirical.clevr.dataset import load_dataset
    from empirical.detection.detector import detect_objects, load_detector, object_locations
    from empirical.detection.matching import DEFAULT_TOLERANCE
    from localcomp.errors import UserError
    from localcomp.provenance import write_json_atomic, write_run_record

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detector", required=True)
    p.add_argument("--data", nargs=2, required=True, metavar=("NOISIER", "CLEANER"))
    p.add_argument("--out", required=True, help="output JSON path")
    p.add_argument("--seed", type=int, default=0, help="recorded only (nothing is random)")
    args = p.parse_args()
    if not Path(args.detector).is_file():
        raise UserError(f"--detector: {args.detector} does not exist")
    torch.set_num_threads(1)
    network = load_detector(args.detector)
    datasets = [load_dataset(path) for path in args.data]
    if not same_scenes(*datasets):
        raise UserError(f"--data: {args.data[0]} and {args.data[1]} do not hold the same scenes "
                        "(render both with the same preset, seed and resolution)")
    truth = np.array([len(loc) for loc in object_locations(datasets[0])])
    result = {"detector": args.detector, "threshold": float(network.threshold),
              "tolerance": DEFAULT_TOLERANCE, "renders": {}}
    wrong = []
    for path, data in zip(args.data, datasets):
        detections = detect_objects(network, data.images)
        found = np.array([len(d) for d in detections])
        wrong.append(found != truth)
        errors = detector_errors(data, detections, DEFAULT_TOLERANCE)
        result["renders"][path] = {
            "spp": int(data.manifest["spp"]), "miscounted": int(wrong[-1].sum()),
            "undercounts": int((found < truth).sum()), "overcounts": int((found > truth).sum()),
            "exact_count_accuracy_per_k": {int(k): row["exact_count_accuracy"]
                                           for k, row in errors["per_k"].items()},
            **{name: value for name, value in errors.items() if name != "per_k"}}
        print(path, "spp", data.manifest["spp"], "miscounted", int(wrong[-1].sum()),
              np.round(list(result["renders"][path]["exact_count_accuracy_per_k"].values()), 3))
    result["scene_pairs"] = {"miscounted_in_both": int((wrong[0] & wrong[1]).sum()),
                             "only_in_noisier": int((wrong[0] & ~wrong[1]).sum()),
                             "only_in_cleaner": int((~wrong[0] & wrong[1]).sum())}
    print(result["scene_pairs"])
    out = Path(args.out)
    write_json_atomic(out, result)
    write_run_record(out.parent, config=vars(args), seed=args.seed, name=out.stem + ".run.json")


if __name__ == "__main__":
    main()
