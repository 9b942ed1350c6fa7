"""Kmax: the largest object count K that a model draws correctly at the requested locations.

A generated sample for K requested locations *succeeds* when the detector finds exactly K
objects and a one-to-one (Hungarian) matching pairs every requested location with a detection
closer than ``tolerance`` (Euclidean distance in the [-1, 1] image coordinates; the default
0.125 is 1/16 of the image width: 2 px at 32 px, 4 px at 64 px, about a small object's
radius in the CLEVR view).
``kmax`` is the largest K whose success rate is >= ``threshold`` (default 0.5) with every
smaller tested K also passing.
"""

from __future__ import annotations

import numpy as np

from empirical.detection.matching import DEFAULT_TOLERANCE, match_locations, sample_succeeds

DEFAULT_THRESHOLD = 0.5


def kmax(success_by_k: dict[int, float], threshold: float = DEFAULT_THRESHOLD) -> int:
    """Largest K such that every tested K' <= K (K' >= 1) has success rate >= threshold;
    0 if K = 1 (or the smallest tested K) already fails."""
    best = 0
    for k in sorted(k for k in success_by_k if k >= 1):
        if success_by_k[k] < threshold:
            break
        best = k
    return best


def evaluate_kmax(samples_by_k: dict[int, np.ndarray], requested_by_k: dict[int, np.ndarray],
                  detector, tolerance: float = DEFAULT_TOLERANCE,
                  threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Per-K success rates and Kmax.

    samples_by_k[K]: uint8 images [S, H, W, 3] generated for K requested locations;
    requested_by_k[K]: float [S, K, 2] those locations. ``detector`` is passed to
    :func:`empirical.detection.detector.detect_objects`. Returns {"per_k": {K: rate}, "kmax": int,
    "counts": {K: {"n": S, "exact_count": rate, "requested_found": rate, "mean_detections": m}},
    "kmax_requested_found": Kmax of the relaxed rate, "tolerance", "threshold"}. ``requested_found`` relaxes success to "every requested location
    matched", extra objects allowed: it separates drawing too many objects from missing some.
    ``location_found_rate`` (None at K = 0): the mean share of the K requested locations that are
    matched. It separates a model whose every object is placed with the same reliability p at
    any K (flat in K; "every object found" then falls like p^K) from one that stops drawing
    requested objects beyond some K (falls with K).
    """
    from empirical.detection.detector import detect_objects

    per_k, counts = {}, {}
    for k in sorted(samples_by_k):
        images = np.asarray(samples_by_k[k])
        requested = np.asarray(requested_by_k[k], dtype=np.float64).reshape(len(images), k, 2)
        detections = detect_objects(detector, images)
        ok = [sample_succeeds(d, r, tolerance) for d, r in zip(detections, requested)]
        matched = [match_locations(d, r, tolerance)[0] for d, r in zip(detections, requested)]
        found = [bool(m.all()) for m in matched]
        per_k[int(k)] = float(np.mean(ok)) if ok else 0.0
        counts[int(k)] = {"n": len(images),
                          "exact_count": float(np.mean([len(d) == k for d in detections]))
                          if len(detections) else 0.0,
                          "requested_found": float(np.mean(found)) if found else 0.0,
                          "location_found_rate": float(np.mean([m.mean() for m in matched]))
                          if k and matched else None,
                          "mean_detections": float(np.mean([len(d) for d in detections]))
                          if len(detections) else 0.0}
    found_by_k = {k: c["requested_found"] for k, c in counts.items()}
    return {"per_k": per_k, "kmax": kmax(per_k, threshold), "counts": counts,
            "kmax_requested_found": kmax(found_by_k, threshold),
            "tolerance": tolerance, "threshold": threshold}
