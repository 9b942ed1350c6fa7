"""Matching detections to requested locations: the per-sample success rule of Kmax.

A sample for K requested locations *succeeds* when the detector finds exactly K objects and a
one-to-one (Hungarian) matching pairs every requested location with a detection closer than
``tolerance`` (Euclidean distance in [-1, 1] image coordinates; the default 0.125 is 1/16 of
the image width: 2 px at 32 px, 4 px at 64 px, about a small object's radius in the CLEVR view).
It lives here, below both the detector (which scores itself with it) and Kmax (which scores
samples with it), so neither imports the other.
"""

from __future__ import annotations

import numpy as np

DEFAULT_TOLERANCE = 0.125


def matched_pairs(detected: np.ndarray, requested: np.ndarray,
                  tolerance: float = DEFAULT_TOLERANCE) -> list[tuple[int, int]]:
    """Hungarian matching of ``detected`` [n, 2] to ``requested`` [K, 2] on Euclidean distance:
    the ``(requested index, detected index)`` pairs closer than ``tolerance``."""
    from scipy.optimize import linear_sum_assignment

    detected = np.asarray(detected, dtype=np.float64).reshape(-1, 2)
    requested = np.asarray(requested, dtype=np.float64).reshape(-1, 2)
    if not (len(detected) and len(requested)):
        return []
    cost = np.linalg.norm(requested[:, None, :] - detected[None, :, :], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] <= tolerance]


def match_locations(detected: np.ndarray, requested: np.ndarray,
                    tolerance: float = DEFAULT_TOLERANCE) -> tuple[np.ndarray, int]:
    """Hungarian matching of ``detected`` [n, 2] to ``requested`` [K, 2] on Euclidean
    distance. Returns (matched bool [K]: the requested location's partner lies within
    ``tolerance``, extra: number of detections left without a matched partner = n - matched)."""
    detected = np.asarray(detected, dtype=np.float64).reshape(-1, 2)
    matched = np.zeros(len(np.asarray(requested).reshape(-1, 2)), dtype=bool)
    for row, _ in matched_pairs(detected, requested, tolerance):
        matched[row] = True
    return matched, int(len(detected) - matched.sum())


def sample_succeeds(detected: np.ndarray, requested: np.ndarray,
                    tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """Exactly K detections and every requested location matched within tolerance."""
    matched, extra = match_locations(detected, requested, tolerance)
    return bool(len(np.asarray(detected).reshape(-1, 2)) == len(matched) and matched.all()
                and extra == 0)
