"""Locality against Kmax across trained models (issue 6 part 3): entries, Spearman, scatter figure.

An *entry* is one trained model: its ``locality.json`` (written by ``localcomp clevr locality``)
and its ``kmax.json`` (written by ``localcomp clevr kmax``: fields ``experiment``,
``training_objects``, ``kmax``). :func:`load_entries` pairs them; :func:`correlate` computes, for
every locality summary number present in all entries, Spearman's rank correlation with Kmax
(``scipy.stats.spearmanr``, average ranks for ties; ``rho`` is None when fewer than 3 entries or a
constant column make it undefined) with a percentile bootstrap 95% interval over *models*
(:func:`bootstrap_spearman`: the models are resampled with replacement, seeded, and rho recomputed;
resamples where rho is undefined, e.g. every draw the same model, are dropped and counted);
:func:`plot_correlation` draws one scatter panel per metric, each point labelled
``experiment (training objects)``.

The claim under test (SCIENCE.md §6): conditional locality tracks Kmax, so ``conditional_leakage``
should correlate *negatively* with Kmax.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from localcomp.errors import UserError

DEFAULT_METRICS = ("conditional_leakage", "pixel_effective_radius")
BOOTSTRAP_RESAMPLES = 2000


def _read_json(path: Path, field: str) -> dict:
    if not path.exists():
        raise UserError(f"{field}: {path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{field}: {path} is not valid JSON ({error})") from None


FOUND_SHARE = "found_share"
DEFAULT_FOUND_KS = (6, 8)


def found_share_at(kmax: dict, found_ks, source) -> float:
    """The mean over ``found_ks`` of the share of requested objects found
    (``evaluation.counts[K].location_found_rate`` of a ``kmax.json``); a UserError names a K the
    evaluation did not test."""
    counts = (kmax.get("evaluation") or {}).get("counts") or {}
    missing = [K for K in found_ks if (counts.get(str(K)) or {}).get("location_found_rate") is None]
    if missing:
        raise UserError(f"--found-k: {source} has no found share at K = {missing} "
                        f"(tested: {', '.join(sorted(counts, key=int)) or 'none'})")
    return sum(counts[str(K)]["location_found_rate"] for K in found_ks) / len(found_ks)


def load_entry(locality_path, kmax_path=None, kmax_field: str = "kmax", found_ks=DEFAULT_FOUND_KS) -> dict:
    """One entry from a ``locality.json`` (or a directory holding one) and a ``kmax.json``
    (default: ``kmax.json`` in the run directory recorded in the locality file, or beside it).
    ``kmax_field``: ``kmax``, ``kmax_requested_found`` or ``found_share`` (the mean share of
    requested objects found at ``found_ks``, :func:`found_share_at`: where strict Kmax is the same
    for every model, the graded measure of composing beyond the training range).
    Returns ``{"label", "experiment", "training_objects", "kmax", "summary", "locality_source",
    "kmax_source"}``."""
    path = Path(locality_path)
    if path.is_dir():
        path = path / "locality.json"
    locality = _read_json(path, "--entries")
    if not isinstance(locality.get("summary"), dict):
        raise UserError(f"--entries: {path} has no 'summary' object (not written by clevr locality?)")
    if kmax_path is None:
        candidates = [Path(str(locality.get("run", ""))) / "kmax.json", path.parent / "kmax.json"]
        kmax_path = next((c for c in candidates if c.exists()), candidates[0])
    kmax_path = Path(kmax_path)
    if kmax_path.is_dir():
        kmax_path = kmax_path / "kmax.json"
    kmax = _read_json(kmax_path, "--kmax")
    required = ("experiment",) if kmax_field == FOUND_SHARE else ("experiment", kmax_field)
    missing = [k for k in required if k not in kmax]
    if missing:
        raise UserError(f"--kmax: {kmax_path} lacks {', '.join(missing)}")
    objects = kmax.get("training_objects")
    label = kmax["experiment"] + (f" ({objects})" if objects is not None else "")
    if kmax_field == FOUND_SHARE:
        value, field = found_share_at(kmax, found_ks, kmax_path), f"found share at K = {', '.join(map(str, found_ks))}"
    else:
        value, field = kmax[kmax_field], kmax_field
    return {"label": label, "experiment": kmax["experiment"], "training_objects": objects,
            "kmax": value, "kmax_field": field, "summary": locality["summary"],
            "locality_source": str(path),
            "kmax_source": str(kmax_path)}


def load_entries(locality_paths, kmax_paths=None, kmax_field: str = "kmax", found_ks=DEFAULT_FOUND_KS) -> list[dict]:
    """Entries for each locality file; ``kmax_paths`` (same length) overrides the default pairing.
    ``kmax_field`` and ``found_ks``: as :func:`load_entry`."""
    if not locality_paths:
        raise UserError("--entries: give at least one locality.json")
    if kmax_paths is not None and len(kmax_paths) != len(locality_paths):
        raise UserError(f"--kmax: {len(kmax_paths)} files for {len(locality_paths)} --entries; "
                        f"give one per entry, in the same order")
    pairs = zip(locality_paths, kmax_paths or [None] * len(locality_paths))
    return [load_entry(loc, km, kmax_field, found_ks) for loc, km in pairs]


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _rho(xs, ys) -> float | None:
    from scipy.stats import spearmanr

    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    rho = float(spearmanr(xs, ys).statistic)
    return rho if math.isfinite(rho) else None


def bootstrap_spearman(xs, ys, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                       level: float = 0.95) -> dict:
    """Percentile bootstrap interval of Spearman's rho over the paired models:
    ``{"interval": [low, high] or None, "resamples", "undefined", "seed", "level"}``. Each resample
    draws ``n`` pairs with replacement (``numpy.random.default_rng(seed)``); a resample whose rho is
    undefined (a constant column) is left out and counted in ``undefined``."""
    import numpy as np

    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    rng = np.random.default_rng(seed)
    rhos, undefined = [], 0
    for _ in range(resamples):
        draw = rng.integers(0, len(xs), size=len(xs))
        rho = _rho(xs[draw].tolist(), ys[draw].tolist())
        if rho is None:
            undefined += 1
        else:
            rhos.append(rho)
    tail = (1 - level) / 2
    interval = ([float(np.quantile(rhos, tail)), float(np.quantile(rhos, 1 - tail))] if rhos else None)
    return {"interval": interval, "resamples": resamples, "undefined": undefined, "seed": seed, "level": level}


def spearman(xs, ys, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """``{"rho", "p_value", "n", "bootstrap95"}``: Spearman's rank correlation of paired values
    (None where undefined: fewer than 3 pairs or a constant column) and its bootstrap interval over
    the pairs (:func:`bootstrap_spearman`; None where rho is undefined)."""
    from scipy.stats import spearmanr

    n = len(xs)
    rho = _rho(xs, ys)
    if rho is None:
        return {"rho": None, "p_value": None, "n": n, "bootstrap95": None}
    p = float(spearmanr(xs, ys).pvalue)
    return {"rho": rho, "p_value": p if math.isfinite(p) else None, "n": n,
            "bootstrap95": bootstrap_spearman(xs, ys, resamples, seed)}


def correlate(entries: list[dict], metrics=None) -> dict:
    """Spearman of each metric (default: every numeric summary key) against Kmax, over the
    entries where both are numbers: ``{metric: {"rho", "p_value", "n"}}``."""
    if metrics is None:
        metrics = sorted({k for e in entries for k, v in e["summary"].items() if _number(v) is not None})
    out = {}
    for metric in metrics:
        pairs = [(_number(e["summary"].get(metric)), _number(e["kmax"])) for e in entries]
        pairs = [(m, k) for m, k in pairs if m is not None and k is not None]
        out[metric] = spearman([m for m, _ in pairs], [k for _, k in pairs])
    return out


def y_quantity(entries: list[dict]) -> str:
    """What the entries' ``kmax`` values are (their ``kmax_field``: a Kmax or the found share),
    for axis labels and printouts."""
    return entries[0].get("kmax_field", "kmax") if entries else "kmax"


def plot_correlation(entries: list[dict], metrics, correlations: dict, label_limit: int = 12):
    """Figure: one panel per metric, Kmax or the entries' ``kmax_field`` (y) against the metric (x).

    Up to ``label_limit`` points are labelled in place; beyond it, labels in a crowd overlap, so
    each point carries its entry's number (1-based, the order of ``entries``, the same in every
    panel) and a key beside the panels gives the labels."""
    from numerics.experiments.common import matplotlib_headless

    plt = matplotlib_headless()
    numbered = len(entries) > label_limit
    key_columns = 0 if not numbered else (1 if len(entries) <= 25 else 2)
    panels_width, key_width = 4.6 * len(metrics), 1.9 * key_columns  # inches
    panels = panels_width / (panels_width + key_width)  # the figure's share left of the key
    fig, axes = plt.subplots(1, len(metrics), figsize=(panels_width + key_width, 4.0), squeeze=False)
    y_name = y_quantity(entries)
    for ax, metric in zip(axes[0], metrics):
        points = [(_number(e["summary"].get(metric)), _number(e["kmax"]), str(n + 1) if numbered else e["label"])
                  for n, e in enumerate(entries)]
        points = [p for p in points if p[0] is not None and p[1] is not None]
        ax.scatter([p[0] for p in points], [p[1] for p in points], color="tab:blue", s=14 if numbered else 36)
        offsets = ((4, 4), (4, -10), (4, 14), (-40, 4)) if not numbered else ((3, 3), (3, -8), (-10, 3), (-10, -8))
        for n, (x, y, label) in enumerate(sorted(points)):  # cycled so that neighbours' labels separate
            ax.annotate(label, (x, y), textcoords="offset points", xytext=offsets[n % len(offsets)],
                        fontsize=6 if numbered else 7)
        c = correlations.get(metric, {})
        rho = "undefined" if c.get("rho") is None else f"{c['rho']:+.2f}"
        interval = (c.get("bootstrap95") or {}).get("interval")
        if interval is not None:
            rho += f" [{interval[0]:+.2f}, {interval[1]:+.2f}]"
        ax.set_title(f"Spearman rho = {rho} (n = {c.get('n', len(points))})", fontsize=9)
        ax.margins(0.15 if not numbered else 0.06)  # room for the labels
        ax.set_xlabel(metric)
        ax.set_ylabel(y_name)
        ax.grid(alpha=0.3)
    if numbered:
        lines = [f"{n + 1:>2}  {e['label']}" for n, e in enumerate(entries)]
        per_column = -(-len(lines) // key_columns)
        for column in range(key_columns):
            fig.text(panels + 0.01 + column * (1 - panels) / key_columns, 0.9,
                     "\n".join(lines[column * per_column:(column + 1) * per_column]),
                     fontsize=6.5, family="monospace", va="top")
    fig.suptitle(f"locality summary vs {y_name}, one point per trained model"
                 + (" (numbers: key at right)" if numbered else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0, panels, 1))
    return fig
