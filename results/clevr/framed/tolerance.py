"""How far from each requested location is the nearest detected object? Share of requested
locations with a detection within t px, for several t, over K = 1..12, per run; with the chance
level (the same detections measured against the locations of the next location set of the same
K: the locations rolled by one set, i.e. by the samples per set). Kmax's matching uses t = 3 px at 48 px (tolerance 0.125 in [-1, 1] coordinates); this shows
whether a model's misses are near misses (placement a few px off) or absent objects. Nearest
detection, not a one-to-one matching: a share here is an upper bound of the found share.

    python results/clevr/framed/tolerance.py RUN_FOLDER ... --out results/clevr/framed/tolerance.json
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from empirical.detection.detector import detect_objects, load_detector
from localcomp.provenance import write_json_atomic

THRESHOLDS_PX = (1.5, 3, 4, 5, 6, 8)


def nearest_distances(detections, locations, resolution: int) -> np.ndarray:
    """Per requested location, the pixel distance to the nearest detection (inf without one)."""
    out = []
    for found, requested in zip(detections, locations):
        found = np.asarray(found, dtype=np.float64).reshape(-1, 2)
        for r in requested:
            out.append(np.min(np.linalg.norm(found - r, axis=1)) * resolution / 2 if len(found) else np.inf)
    return np.asarray(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="folders with kmax_samples.npz")
    parser.add_argument("--detector", default="results/detector/framed48/detector.pt")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    detector = load_detector(args.detector)
    report = {"thresholds_px": list(THRESHOLDS_PX), "detector": args.detector, "runs": {}}
    for folder in map(Path, args.runs):
        samples = np.load(folder / "kmax_samples.npz")
        per_set = json.loads((folder / "kmax.json").read_text())["samples_per_set"]
        ks = sorted(int(k[len("images_k"):]) for k in samples if k.startswith("images_k"))
        own, chance = [], []
        for k in (k for k in ks if k >= 1):
            images, locations = samples[f"images_k{k}"], samples[f"locations_k{k}"]
            detections = detect_objects(detector, images)
            resolution = images.shape[1]
            own.append(nearest_distances(detections, locations, resolution))
            chance.append(nearest_distances(detections, np.roll(locations, -per_set, axis=0), resolution))
        own, chance = np.concatenate(own), np.concatenate(chance)
        report["runs"][str(folder)] = {
            "requested_locations": int(len(own)),
            "within": {str(t): float(np.mean(own <= t)) for t in THRESHOLDS_PX},
            "within_chance": {str(t): float(np.mean(chance <= t)) for t in THRESHOLDS_PX}}
        print(folder, " ".join(f"<={t}px {np.mean(own <= t):.2f} ({np.mean(chance <= t):.2f})"
                               for t in THRESHOLDS_PX))
    write_json_atomic(args.out, report)


if __name__ == "__main__":
    main()
