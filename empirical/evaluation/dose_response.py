"""Kmax, found share and conditional leakage against the patch size k: the locality dose-response.

The theory predicts that compositional generalization falls as the denoiser's patch grows
(conditional locality is lost), towards the non-local denoiser's. A *point* is one run folder at
one patch half-width ``k`` (or ``"nonlocal"``) in a named *series* ("machine", "learned", ...):
its ``kmax.json`` (``localcomp clevr kmax``) and, when present, ``locality/locality.json``
(``localcomp clevr locality``). :func:`dose_response_figure` draws the series on shared axes, so
the training-free machine and the trained patch models can be read side by side.
"""

from __future__ import annotations

import json
from pathlib import Path

from localcomp.errors import UserError

NONLOCAL = "nonlocal"


def parse_point(spec: str) -> tuple[str, int | str, Path]:
    """``SERIES:K:RUN_DIR`` (``K`` an integer >= 0 or ``nonlocal``) -> ``(series, k, run_dir)``."""
    parts = spec.split(":", 2)
    if len(parts) != 3 or not parts[0] or not parts[2]:
        raise UserError(f"--point: {spec!r} is not SERIES:K:RUN_DIR")
    series, k, run = parts
    if k != NONLOCAL:
        try:
            k = int(k)
        except ValueError:
            raise UserError(f"--point: {spec!r}: K must be an integer or '{NONLOCAL}', got {k!r}") from None
        if k < 0:
            raise UserError(f"--point: {spec!r}: K must be >= 0, got {k}")
    return series, k, Path(run)


def _json(path: Path, spec: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"--point: {spec!r}: {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise UserError(f"--point: {spec!r}: {path} is not valid JSON ({error})") from None


def load_point(spec: str, found_ks=(6, 8)) -> dict:
    """One point: strict and extras-allowed Kmax with their bootstrap intervals, the share of
    requested objects found (and its chance baseline) at each of ``found_ks``, and the
    conditional leakage (None without ``locality/locality.json``)."""
    series, k, run = parse_point(spec)
    kmax = _json(run / "kmax.json", spec)
    evaluation = kmax.get("evaluation")
    if not isinstance(evaluation, dict) or "counts" not in evaluation:
        raise UserError(f"--point: {spec!r}: {run / 'kmax.json'} has no evaluation.counts (not from clevr kmax?)")
    counts = evaluation["counts"]
    found = {}
    for K in found_ks:
        c = counts.get(str(K))
        found[str(K)] = None if c is None else {"found": c.get("location_found_rate"),
                                                "chance": c.get("found_share_chance"), "n": c.get("n")}
    locality_path = run / "locality" / "locality.json"
    leakage = (_json(locality_path, spec)["summary"].get("conditional_leakage")
               if locality_path.exists() else None)
    return {"series": series, "k": k, "run": str(run), "experiment": kmax.get("experiment"),
            "kmax": kmax.get("kmax"), "kmax_bootstrap95": evaluation.get("kmax_bootstrap95"),
            "kmax_requested_found": kmax.get("kmax_requested_found"),
            "kmax_requested_found_bootstrap95": evaluation.get("kmax_requested_found_bootstrap95"),
            "found_share": found, "conditional_leakage": leakage,
            "num_sets": kmax.get("num_sets"), "samples_per_set": kmax.get("samples_per_set"),
            "training_objects": kmax.get("training_objects")}


def x_position(k, ks) -> float:
    """Where ``k`` sits on the x axis: the integer itself, non-local one step past the largest k."""
    numeric = [v for v in ks if v != NONLOCAL]
    return (max(numeric, default=0) + 2) if k == NONLOCAL else float(k)


def dose_response_figure(points: list[dict], found_ks=(6, 8)):
    """Three panels against k: strict Kmax (bootstrap 95% bars) and extras-allowed Kmax; the share
    of requested objects found at each of ``found_ks`` (chance dotted); conditional leakage."""
    from numerics.experiments.common import matplotlib_headless

    plt = matplotlib_headless()
    ks = sorted({p["k"] for p in points}, key=lambda v: x_position(v, [p["k"] for p in points]))
    all_k = [p["k"] for p in points]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    series = list(dict.fromkeys(p["series"] for p in points))
    markers = "osD^v<>"
    for si, name in enumerate(series):
        pts = sorted((p for p in points if p["series"] == name), key=lambda p: x_position(p["k"], all_k))
        xs = [x_position(p["k"], all_k) + 0.08 * si for p in pts]
        m, colour = markers[si % len(markers)], f"C{si}"
        strict = [p["kmax"] for p in pts]
        lo = [p["kmax"] - (p["kmax_bootstrap95"] or [p["kmax"]] * 2)[0] for p in pts]
        hi = [(p["kmax_bootstrap95"] or [p["kmax"]] * 2)[1] - p["kmax"] for p in pts]
        axes[0].errorbar(xs, strict, yerr=[lo, hi], marker=m, color=colour, capsize=3, label=f"{name}: strict")
        axes[0].plot(xs, [p["kmax_requested_found"] for p in pts], m + "--", color=colour,
                     mfc="none", label=f"{name}: extras allowed")
        for fi, K in enumerate(found_ks):
            vals = [(p["found_share"].get(str(K)) or {}).get("found") for p in pts]
            chance = [(p["found_share"].get(str(K)) or {}).get("chance") for p in pts]
            style = "-" if fi == 0 else "--"
            axes[1].plot(xs, [float("nan") if v is None else v for v in vals], m + style, color=colour,
                         mfc=colour if fi == 0 else "none", label=f"{name}: K = {K}")
            axes[1].plot(xs, [float("nan") if v is None else v for v in chance], ":", color=colour, lw=1)
        axes[2].plot(xs, [float("nan") if p["conditional_leakage"] is None else p["conditional_leakage"]
                          for p in pts], m + "-", color=colour, label=name)
    ticks = [x_position(k, all_k) for k in ks]
    labels = ["non-local" if k == NONLOCAL else str(k) for k in ks]
    for ax, title in zip(axes, ("Kmax (training max marked)", "share of requested objects found (chance dotted)",
                                "conditional leakage")):
        ax.set_xticks(ticks, labels)
        ax.set_xlabel("patch half-width k (cells)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6)
    objects = {p["training_objects"] for p in points if p["training_objects"]}
    if len(objects) == 1:
        top = max(int(v) for v in objects.pop().split("-"))
        axes[0].axhline(top, color="0.6", lw=0.8, ls=":")
    axes[1].set_ylim(0, 1)
    axes[2].set_ylim(0, 1)
    fig.tight_layout()
    return fig
