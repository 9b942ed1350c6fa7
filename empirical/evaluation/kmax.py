"""Kmax: the largest object count K that a model draws correctly at the requested locations.

A generated sample for K requested locations *succeeds* when the detector finds exactly K
objects and a one-to-one (Hungarian) matching pairs every requested location with a detection
closer than ``tolerance`` (Euclidean distance in the [-1, 1] image coordinates; the default
0.125 is 1/16 of the image width: 2 px at 32 px, 4 px at 64 px, about a small object's
radius in the CLEVR view).
``kmax`` is the largest K whose success rate is >= ``threshold`` (default 0.5) with every
smaller tested K also passing. ``kmax_of_denoiser`` runs the whole criterion (location sets,
sampling, detection) for any denoiser ``D(x, sigma, cond, mask)`` (docs/api.md).

Statistics (issue 11 item 3). Every per-K rate (strict success, every requested object found)
carries a Wilson score 95% interval (:func:`wilson_interval`; it stays inside [0, 1] and is not
degenerate at rates 0 or 1, unlike the normal approximation, which matters at 16-32 samples per
K). Kmax carries a percentile bootstrap 95% interval over *location sets* (:func:`bootstrap_kmax`):
the samples of one set share its locations, so a set, not a sample, is the unit drawn; each K's
sets are resampled with replacement (seeded), Kmax is recomputed, and the 2.5% and 97.5%
quantiles of the resampled Kmax are reported.

Chance baseline of the found share (issue 15 item 2). A model that draws objects anywhere
still "finds" some requested locations by accident, more so when it draws many objects. So every
share of requested objects found (``location_found_rate``) carries ``found_share_chance``: the
same samples, with the same detections, re-scored against *another scene's* location set of the
same K. The location sets of one K are permuted by a derangement (no set keeps its own;
:func:`derangement`, seeded by ``(seed, K)``), and every sample of set ``g`` is matched against
the locations of set ``pi(g)``. The gap ``location_found_rate - found_share_chance`` is what the
conditioning placed; near zero, the model ignores where it was asked to draw. None at K = 0 and
where a K has fewer than two location sets.
"""

from __future__ import annotations

import numpy as np

from empirical.detection.matching import DEFAULT_TOLERANCE, match_locations, sample_succeeds

DEFAULT_THRESHOLD = 0.5
WILSON_Z = 1.959963984540054    # the 97.5% normal quantile: two-sided 95% intervals
BOOTSTRAP_RESAMPLES = 1000


def kmax(success_by_k: dict[int, float], threshold: float = DEFAULT_THRESHOLD) -> int:
    """Largest K such that every tested K' <= K (K' >= 1) has success rate >= threshold;
    0 if K = 1 (or the smallest tested K) already fails."""
    best = 0
    for k in sorted(k for k in success_by_k if k >= 1):
        if success_by_k[k] < threshold:
            break
        best = k
    return best


def wilson_interval(successes: int, n: int, z: float = WILSON_Z) -> list[float]:
    """Wilson score interval ``[low, high]`` of a binomial rate ``successes / n`` (95% for the
    default ``z``): ``(p + z^2/2n -+ z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n)``;
    ``[0, 1]`` when ``n = 0``."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return [float(max(0.0, (centre - half) / scale)), float(min(1.0, (centre + half) / scale))]


def set_groups(requested: np.ndarray, samples_per_set: int | None = None) -> list[np.ndarray]:
    """Sample indices of each location set: consecutive blocks of ``samples_per_set`` (set-major
    order, as :func:`empirical.models.sampling.sample_for_sets` writes them); when None, runs of
    consecutive samples with identical requested locations (every sample its own set at K = 0,
    where there are no locations to tell sets apart)."""
    requested = np.asarray(requested, dtype=np.float64)
    n = len(requested)
    if samples_per_set is not None:
        if samples_per_set < 1 or n % samples_per_set:
            raise ValueError(f"samples_per_set {samples_per_set} does not divide the {n} samples")
        return [np.arange(i, i + samples_per_set) for i in range(0, n, samples_per_set)]
    flat = requested.reshape(n, -1)
    if flat.shape[1] == 0:
        return [np.array([i]) for i in range(n)]
    starts = [0] + [i for i in range(1, n) if not np.array_equal(flat[i], flat[i - 1])]
    return [np.arange(a, b) for a, b in zip(starts, starts[1:] + [n])]


def bootstrap_kmax(success_by_k: dict[int, list], threshold: float = DEFAULT_THRESHOLD,
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                   level: float = 0.95) -> list[int]:
    """Percentile bootstrap interval ``[low, high]`` of Kmax over location sets.

    ``success_by_k[K]``: one entry per location set, each the sequence of its samples' 0/1
    outcomes. Every resample draws, for every K independently, as many sets as it has, with
    replacement (``numpy.random.default_rng(seed)``), and takes :func:`kmax` of the pooled rates;
    the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled
    Kmax (values that occur, ``inverted_cdf``)."""
    rng = np.random.default_rng(seed)
    ks = sorted(k for k in success_by_k if k >= 1 and len(success_by_k[k]))
    if not ks:
        return [0, 0]
    best = np.zeros(resamples, dtype=np.int64)
    alive = np.ones(resamples, dtype=bool)
    for k in ks:
        sums = np.array([np.sum(s) for s in success_by_k[k]], dtype=np.float64)
        sizes = np.array([len(s) for s in success_by_k[k]], dtype=np.float64)
        draw = rng.integers(0, len(sums), size=(resamples, len(sums)))
        rates = sums[draw].sum(1) / np.maximum(sizes[draw].sum(1), 1)
        alive &= rates >= threshold
        best = np.where(alive, k, best)
    tail = (1 - level) / 2
    return [int(np.quantile(best, tail, method="inverted_cdf")),
            int(np.quantile(best, 1 - tail, method="inverted_cdf"))]


def derangement(n: int, rng: np.random.Generator) -> np.ndarray | None:
    """A uniformly drawn permutation of ``range(n)`` without fixed points (rejection sampling,
    about e draws); None when ``n < 2`` (no derangement exists)."""
    if n < 2:
        return None
    identity = np.arange(n)
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == identity):
            return perm


def found_share_chance(detections: list, requested: np.ndarray, groups: list[np.ndarray],
                       tolerance: float, rng: np.random.Generator) -> float | None:
    """Mean share of requested objects found when each sample's ``detections`` are matched
    against the locations of another location set (set ``g`` -> set ``derangement[g]``); None
    without K >= 1 locations or with fewer than two sets."""
    k = requested.shape[1] if requested.ndim == 3 else 0
    perm = derangement(len(groups), rng)
    if k == 0 or perm is None:
        return None
    shares = []
    for g, members in enumerate(groups):
        other = requested[groups[perm[g]][0]]
        shares.extend(float(match_locations(detections[i], other, tolerance)[0].mean()) for i in members)
    return float(np.mean(shares))


def evaluate_kmax(samples_by_k: dict[int, np.ndarray], requested_by_k: dict[int, np.ndarray],
                  detector, tolerance: float = DEFAULT_TOLERANCE,
                  threshold: float = DEFAULT_THRESHOLD, samples_per_set: int | None = None,
                  resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Per-K success rates and Kmax, with intervals.

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

    Intervals (module docstring): ``per_k_wilson95`` ``{K: [low, high]}``, and per K in
    ``counts`` ``success_wilson95``, ``requested_found_wilson95`` and ``sets``;
    ``kmax_bootstrap95`` and ``kmax_requested_found_bootstrap95`` ``[low, high]`` over location
    sets (``set_groups(requested, samples_per_set)``: by default runs of identical requested
    locations), ``resamples`` resamples seeded by ``seed``, recorded in ``bootstrap``.

    Chance baseline (module docstring): ``found_share_chance`` per K in ``counts`` beside
    ``location_found_rate`` (seeded by ``(seed, K)``), the method in ``chance``; ``per_sample``
    ``{K: {"detections": [count per sample], "success": [bool per sample]}}`` (the grids of
    ``clevr kmax`` annotate each sample with them).
    """
    from empirical.detection.detector import detect_objects

    per_k, counts = {}, {}
    per_k_interval, ok_by_set, found_by_set, per_sample = {}, {}, {}, {}
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
        groups = set_groups(requested, samples_per_set)
        ok_by_set[int(k)] = [[ok[i] for i in g] for g in groups]
        found_by_set[int(k)] = [[found[i] for i in g] for g in groups]
        per_k_interval[int(k)] = wilson_interval(int(np.sum(ok)), len(ok))
        counts[int(k)].update(success_wilson95=per_k_interval[int(k)],
                              requested_found_wilson95=wilson_interval(int(np.sum(found)), len(found)),
                              sets=len(groups),
                              found_share_chance=found_share_chance(
                                  detections, requested, groups, tolerance,
                                  np.random.default_rng([seed, int(k)])))
        per_sample[int(k)] = {"detections": [int(len(d)) for d in detections],
                              "success": [bool(o) for o in ok],
                              "found_share": [float(m.mean()) for m in matched] if k else None}
    found_by_k = {k: c["requested_found"] for k, c in counts.items()}
    return {"per_k": per_k, "kmax": kmax(per_k, threshold), "counts": counts,
            "kmax_requested_found": kmax(found_by_k, threshold),
            "tolerance": tolerance, "threshold": threshold,
            "per_k_wilson95": per_k_interval,
            "kmax_bootstrap95": bootstrap_kmax(ok_by_set, threshold, resamples, seed),
            "kmax_requested_found_bootstrap95": bootstrap_kmax(found_by_set, threshold, resamples, seed),
            "bootstrap": {"unit": "location set", "resamples": resamples, "seed": seed, "level": 0.95,
                          "samples_per_set": samples_per_set},
            "chance": {"field": "found_share_chance",
                       "method": "each sample re-scored against another location set of the same K "
                                 "(a derangement of the sets, numpy default_rng([seed, K]))",
                       "seed": seed},
            "per_sample": per_sample}


def found_share_beyond(evaluation: dict, top: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                       level: float = 0.95) -> dict | None:
    """The share of requested objects found beyond the training maximum ``top``, pooled: the mean
    over the tested K > ``top`` of each K's mean per-sample share (every K weighs the same, as in
    ``empirical.evaluation.table.share_found_beyond_training``), with a percentile bootstrap
    interval over *location sets* (each K's sets resampled with replacement, seeded; the samples
    of one set share its locations). Returns ``{"mean", "bootstrap95", "ks", "samples"}``; None
    when the evaluation has no per-sample ``found_share`` (a ``kmax.json`` written before it:
    ``clevr kmax --reuse-samples`` re-scores it) or no K above ``top``."""
    per_sample = evaluation.get("per_sample", {})
    n_per_set = (evaluation.get("bootstrap") or {}).get("samples_per_set")
    shares_by_k = {int(k): v.get("found_share") for k, v in per_sample.items() if int(k) > top}
    if not shares_by_k or any(v is None for v in shares_by_k.values()):
        return None
    ks = sorted(shares_by_k)
    set_means = {}
    for k in ks:
        shares = np.asarray(shares_by_k[k], dtype=np.float64)
        size = n_per_set or 1
        if len(shares) % size:
            size = 1
        set_means[k] = shares.reshape(-1, size).mean(axis=1)
    rng = np.random.default_rng(seed)
    totals = np.zeros(resamples)
    for k in ks:
        means = set_means[k]
        totals += means[rng.integers(0, len(means), size=(resamples, len(means)))].mean(axis=1)
    pooled = totals / len(ks)
    tail = (1 - level) / 2
    return {"mean": float(np.mean([set_means[k].mean() for k in ks])),
            "bootstrap95": [float(np.quantile(pooled, tail)), float(np.quantile(pooled, 1 - tail))],
            "ks": ks, "samples": int(sum(len(shares_by_k[k]) for k in ks)),
            "bootstrap": {"unit": "location set", "resamples": resamples, "seed": seed, "level": level}}


# -- reporting: the per-K table and annotated sample grids ------------------------------------------

PASS_COLOUR, FAIL_COLOUR = (0, 200, 0), (230, 0, 0)


def per_k_table(result: dict, found: str = "location_found_rate", chance: str = "found_share_chance") -> str:
    """The per-K lines of an :func:`evaluate_kmax` result: K, samples, strict success rate, share
    of requested objects found and its chance baseline (``n/a`` where undefined or absent);
    ``found`` and ``chance`` name those two fields in ``counts`` (colour Kmax: the colour ones)."""
    def cell(value, width):
        return f"{'n/a':>{width}s}" if value is None else f"{value:{width}.2f}"

    lines = [f"{'K':>3s} {'n':>5s} {'success':>8s} {'found share':>12s} {'chance':>7s}"]
    for k in sorted(result["counts"], key=int):
        c = result["counts"][k]
        lines.append(f"{int(k):3d} {c['n']:5d} {cell(result['per_k'][k], 8)} "
                     f"{cell(c.get(found), 12)} {cell(c.get(chance), 7)}")
    return "\n".join(lines)


def annotated_grid(pixels: np.ndarray, requested: np.ndarray, k: int, detections: list[int] | None,
                   success: list[bool] | None, ncols: int, scale: int = 1) -> np.ndarray:
    """One grid image of ``pixels [S, H, W, 3]`` uint8 (upscaled by ``scale``): a red dot at each
    requested location, and per sample a border (green: success, red: fail) and the text
    ``K<k> d<detections>`` in the top-left corner (no border or count where not given)."""
    import torch
    from PIL import Image, ImageDraw

    from empirical.models.sampling import image_grid, mark_locations

    tiles = []
    for i, image in enumerate(np.asarray(pixels)):
        tile = mark_locations(image, torch.as_tensor(np.asarray(requested[i]).reshape(-1, 2)))
        tile = tile.repeat(scale, axis=0).repeat(scale, axis=1)
        picture = Image.fromarray(np.ascontiguousarray(tile))
        draw = ImageDraw.Draw(picture)
        h, w = tile.shape[:2]
        if success is not None:
            width = max(1, min(h, w) // 40)
            draw.rectangle([0, 0, w - 1, h - 1], outline=PASS_COLOUR if success[i] else FAIL_COLOUR,
                           width=width)
        text = f"K{k}" + ("" if detections is None else f" d{detections[i]}")
        if min(h, w) >= 32:
            x, y = max(2, min(h, w) // 40 + 1), max(2, min(h, w) // 40 + 1)
            box = draw.textbbox((x, y), text)
            draw.rectangle([box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1], fill=(0, 0, 0))
            draw.text((x, y), text, fill=(255, 255, 255))
        tiles.append(np.asarray(picture))
    return image_grid(np.stack(tiles), ncols)


# -- the whole criterion for any denoiser (the public entry point, docs/api.md) -------------------

def location_sets_by_k(dataset, ks, num_sets: int) -> dict[int, list]:
    """The conditioners ``[K, 2]`` of the first ``num_sets`` items of ``dataset`` (any indexable
    of ``(image [C,H,W], cond [K_i,2])``) with exactly ``K`` of them, for each ``K`` in ``ks``.
    A ValueError names the K for which the dataset has no item."""
    wanted = {int(k): [] for k in ks}
    for i in range(len(dataset)):
        cond = dataset[i][1]
        bucket = wanted.get(int(cond.shape[0]))
        if bucket is not None and len(bucket) < num_sets:
            bucket.append(cond)
        if all(len(b) == num_sets for b in wanted.values()):
            break
    empty = [k for k, b in wanted.items() if not b]
    if empty:
        raise ValueError(f"no item with K = {empty} conditioners in the dataset")
    return wanted


def kmax_of_denoiser(denoiser, dataset, detector, max_k: int = 12, num_sets: int = 8,
                     samples_per_set: int = 1, sampler_steps: int = 18, seed: int = 0,
                     resolution: int | None = None, batch_size: int = 16,
                     tolerance: float = DEFAULT_TOLERANCE, threshold: float = DEFAULT_THRESHOLD,
                     keep_samples: bool = False, progress: bool = False) -> dict:
    """Kmax of ``denoiser`` (``D(x, sigma, cond, mask)``, docs/api.md) against ``dataset``'s
    location sets, as ``localcomp clevr kmax`` does for a trained run.

    For every K = 0..``max_k``: the location sets of the first ``num_sets`` items with K
    conditioners (:func:`location_sets_by_k`), ``samples_per_set`` Heun samples of each
    (``sampler_steps``, seed ``seed + K``, :func:`empirical.models.sampling.sample_for_sets`),
    scored by ``detector`` (a network, a checkpoint path or any callable, see
    :func:`empirical.detection.detector.detect_objects`). ``resolution`` defaults to the
    dataset's image size. Returns :func:`evaluate_kmax`'s dict plus the settings; with
    ``keep_samples`` also ``"samples"``: ``{K: uint8 [S, H, W, 3]}`` and ``"requested"``:
    ``{K: float [S, K, 2]}``."""
    import torch

    from empirical.models.sampling import sample_for_sets, to_uint8

    if max_k < 0 or num_sets < 1 or samples_per_set < 1 or sampler_steps < 1:
        raise ValueError("max_k must be >= 0; num_sets, samples_per_set, sampler_steps >= 1")
    resolution = int(dataset[0][0].shape[-1]) if resolution is None else resolution
    sets_by_k = location_sets_by_k(dataset, range(max_k + 1), num_sets)
    samples_by_k, requested_by_k = {}, {}
    for k, sets in sets_by_k.items():
        sets = [torch.as_tensor(s, dtype=torch.float32).reshape(k, 2) for s in sets]
        images = sample_for_sets(denoiser, sets, resolution, samples_per_set, sampler_steps, seed + k,
                                 batch_size=batch_size, progress=progress)
        samples_by_k[k] = to_uint8(images)
        requested_by_k[k] = np.stack([s.numpy() for s in sets for _ in range(samples_per_set)]
                                     ).reshape(len(sets) * samples_per_set, k, 2)
    result = evaluate_kmax(samples_by_k, requested_by_k, detector, tolerance, threshold,
                           samples_per_set=samples_per_set, seed=seed)
    result.update(max_k=max_k, num_sets=num_sets, samples_per_set=samples_per_set,
                  sampler_steps=sampler_steps, seed=seed, resolution=resolution)
    if keep_samples:
        result["samples"], result["requested"] = samples_by_k, requested_by_k
    return result
