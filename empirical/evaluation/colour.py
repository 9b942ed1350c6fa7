"""Colour length generalization: Kmax for requested colour multisets (issue 13 item 1).

A sample generated for a multiset of K requested colours *succeeds* when the detector's objects,
each named by the colour read-out (``empirical.detection.colour_readout``), carry exactly the
requested colours: the multiset of read colours equals the requested multiset (so exactly K
objects). Relaxed (``requested_found``): every requested colour is present with at least its
multiplicity, extra objects allowed. ``colour_found_rate``: the share of the K requested colours
present (multiset intersection / K). Its chance baseline re-scores each sample against another
set's colours of the same K, as :func:`empirical.evaluation.kmax.found_share_chance` does for
locations (same derangement, same seeding).

Kmax, its Wilson intervals per K and the bootstrap interval over colour sets are those of
:mod:`empirical.evaluation.kmax` (``kmax``, ``wilson_interval``, ``bootstrap_kmax``,
``set_groups``, ``derangement``); only the per-sample rule differs.
"""

from __future__ import annotations

import numpy as np

from empirical.clevr.colour import NUM_COLOURS
from empirical.clevr.scene import COLOR_NAMES
from empirical.evaluation.kmax import (BOOTSTRAP_RESAMPLES, DEFAULT_THRESHOLD, bootstrap_kmax, derangement,
                                       kmax, per_k_table, set_groups, wilson_interval)


def colour_histogram(indices) -> np.ndarray:
    """Colour indices ``[n]`` -> counts ``int [8]``."""
    return np.bincount(np.asarray(indices, np.int64).reshape(-1), minlength=NUM_COLOURS)


def multiset_found(read, requested) -> int:
    """How many of the ``requested`` colours (with multiplicity) appear among ``read``."""
    return int(np.minimum(colour_histogram(read), colour_histogram(requested)).sum())


def colours_match(read, requested) -> bool:
    """The multiset of ``read`` colours equals that of ``requested``."""
    return bool(np.array_equal(colour_histogram(read), colour_histogram(requested)))


def confusion_summary(true: np.ndarray, read: np.ndarray) -> dict:
    """Per-colour accuracy (with Wilson 95% intervals), overall accuracy and the 8 x 8 confusion
    ``[true][read]`` of colour indices."""
    true, read = np.asarray(true, np.int64).reshape(-1), np.asarray(read, np.int64).reshape(-1)
    confusion = np.zeros((NUM_COLOURS, NUM_COLOURS), np.int64)
    np.add.at(confusion, (true, read), 1)
    per = {}
    for c, name in enumerate(COLOR_NAMES):
        n = int(confusion[c].sum())
        per[name] = {"n": n, "accuracy": float(confusion[c, c] / n) if n else None,
                     "wilson95": wilson_interval(int(confusion[c, c]), n)}
    accuracies = [p["accuracy"] for p in per.values() if p["accuracy"] is not None]
    return {"n": int(len(true)), "accuracy": float((true == read).mean()) if len(true) else None,
            "per_colour": per, "min_per_colour": min(accuracies) if accuracies else None,
            "confusion": confusion.tolist(), "colours": list(COLOR_NAMES)}


def evaluate_colour_kmax(samples_by_k: dict, requested_by_k: dict, detector, readout,
                         threshold: float = DEFAULT_THRESHOLD, samples_per_set: int = 1,
                         resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Per-K success rates and Kmax for colour requests, with intervals.

    ``samples_by_k[K]``: uint8 ``[S, H, W, 3]``; ``requested_by_k[K]``: colour indices ``[S, K]``
    (set-major, ``samples_per_set`` consecutive samples per set). ``detector`` as in
    :func:`empirical.detection.detector.detect_objects`; ``readout(images, centres)`` -> colour
    indices per image. Returns the fields of :func:`empirical.evaluation.kmax.evaluate_kmax`
    (``per_k``, ``kmax``, ``kmax_requested_found``, ``counts`` with ``colour_found_rate`` and
    ``colour_found_chance`` in place of the location fields, Wilson and bootstrap intervals,
    ``per_sample`` with each sample's read colours)."""
    from empirical.detection.detector import detect_objects

    per_k, counts, per_k_interval, ok_by_set, found_by_set, per_sample = {}, {}, {}, {}, {}, {}
    for k in sorted(samples_by_k):
        images = np.asarray(samples_by_k[k])
        requested = np.asarray(requested_by_k[k], np.int64).reshape(len(images), k)
        detections = detect_objects(detector, images)
        read = readout(images, detections)
        ok = [colours_match(r, q) for r, q in zip(read, requested)]
        found_n = [multiset_found(r, q) for r, q in zip(read, requested)]
        found = [n == k for n in found_n]
        groups = set_groups(np.zeros((len(images), 0)), samples_per_set)
        perm = derangement(len(groups), np.random.default_rng([seed, int(k)]))
        chance = None
        if k and perm is not None:
            chance = float(np.mean([multiset_found(read[i], requested[groups[perm[g]][0]]) / k
                                    for g, members in enumerate(groups) for i in members]))
        per_k[int(k)] = float(np.mean(ok)) if ok else 0.0
        per_k_interval[int(k)] = wilson_interval(int(np.sum(ok)), len(ok))
        counts[int(k)] = {
            "n": len(images), "sets": len(groups),
            "exact_count": float(np.mean([len(d) == k for d in detections])) if len(images) else 0.0,
            "requested_found": float(np.mean(found)) if found else 0.0,
            "colour_found_rate": float(np.mean(found_n) / k) if k and found_n else None,
            "colour_found_chance": chance,
            "mean_detections": float(np.mean([len(d) for d in detections])) if len(images) else 0.0,
            "success_wilson95": per_k_interval[int(k)],
            "requested_found_wilson95": wilson_interval(int(np.sum(found)), len(found))}
        ok_by_set[int(k)] = [[ok[i] for i in g] for g in groups]
        found_by_set[int(k)] = [[found[i] for i in g] for g in groups]
        per_sample[int(k)] = {"detections": [int(len(d)) for d in detections],
                              "read_colours": [[COLOR_NAMES[c] for c in r] for r in read],
                              "requested": [[COLOR_NAMES[c] for c in q] for q in requested],
                              "success": [bool(o) for o in ok]}
    found_by_k = {k: c["requested_found"] for k, c in counts.items()}
    return {"per_k": per_k, "kmax": kmax(per_k, threshold), "counts": counts,
            "kmax_requested_found": kmax(found_by_k, threshold), "threshold": threshold,
            "per_k_wilson95": per_k_interval,
            "kmax_bootstrap95": bootstrap_kmax(ok_by_set, threshold, resamples, seed),
            "kmax_requested_found_bootstrap95": bootstrap_kmax(found_by_set, threshold, resamples, seed),
            "bootstrap": {"unit": "colour set", "resamples": resamples, "seed": seed, "level": 0.95,
                          "samples_per_set": samples_per_set},
            "chance": {"field": "colour_found_chance",
                       "method": "each sample re-scored against another colour set of the same K "
                                 "(a derangement of the sets, numpy default_rng([seed, K]))"},
            "per_sample": per_sample}


def colour_table(result: dict) -> str:
    """Per-K lines of an :func:`evaluate_colour_kmax` result (``kmax.per_k_table`` on the colour fields)."""
    return per_k_table(result, found="colour_found_rate", chance="colour_found_chance")
