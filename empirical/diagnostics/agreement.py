"""How closely one denoiser's output explains another's: r² per image, per noise level.

Kamb & Ganguli (ICML 2025) compare a trained CNN denoiser with their analytic ELS machine by the
r² of the machine's output as a prediction of the network's, on the same noisy inputs (their
median r² ≈ 0.94–0.96). Here the same measure compares every trained CLEVR run with every local
conditional machine (:mod:`empirical.models.machine`) on the same held-out noisy images and
the same conditioners:

    r²(pred -> target) = 1 - ||pred - target||² / ||target - mean(target)||²       (per image),

sums over pixels and channels, ``mean`` the image's mean over pixels and channels. ``target``
is the network's output (what is explained), ``pred`` the reference's (the machine's). r² = 1
is identical output; r² = 0 explains no more than the image's mean colour; it is negative
when the prediction is worse than that.

At large sigma every good denoiser returns nearly the dataset's mean image, whose background
and floor alone make that r² close to 1. The second measure, ``r2_vs_mean_image``, asks how much
of the *image-specific* part of the target it explains: the baseline is the target's mean output
over the evaluated images, per pixel, instead of each image's mean.

All denoisers are ``D(x [B,3,H,W], sigma [B], cond [B,K,2], mask [B,K]) -> [B,3,H,W]``.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def r_squared(prediction: torch.Tensor, target: torch.Tensor, baseline: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image r² of ``prediction`` as a model of ``target``: both ``[B, ...]`` -> ``[B]`` float64.

    The variance explained is about ``baseline`` (broadcast to ``target``; default each image's
    own mean over pixels and channels). ``nan`` for an image whose target equals its baseline."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ")
    p, t = prediction.double().flatten(1), target.double().flatten(1)
    base = t.mean(1, keepdim=True) if baseline is None else baseline.double().expand_as(target).flatten(1)
    residual = ((p - t) ** 2).sum(1)
    total = ((t - base) ** 2).sum(1)
    return torch.where(total > 0, 1 - residual / total.clamp(min=torch.finfo(torch.float64).tiny),
                       torch.full_like(total, math.nan))


def summarize(values: torch.Tensor) -> dict:
    """Median, mean and quartiles of per-image values (nan dropped)."""
    v = values[~torch.isnan(values)].double()
    if not len(v):
        return {"median": None, "mean": None, "q25": None, "q75": None, "n": 0}
    q = torch.quantile(v, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    return {"median": float(q[1]), "mean": float(v.mean()), "q25": float(q[0]), "q75": float(q[2]),
            "n": int(len(v))}


@torch.no_grad()
def denoiser_outputs(denoiser: Denoiser, x: torch.Tensor, sigma: float, cond, mask, batch_size: int = 16):
    """``D(x, sigma)`` for a batch of noisy images, in chunks of ``batch_size``; float32 on the CPU."""
    out = []
    for lo in range(0, len(x), batch_size):
        sl = slice(lo, lo + batch_size)
        s = torch.full((len(x[sl]),), float(sigma))
        out.append(denoiser(x[sl], s, cond[sl], mask[sl]).float().cpu())
    return torch.cat(out)


def agreement_at_sigmas(targets: Mapping[str, Denoiser], references: Mapping[str, Denoiser],
                        clean: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor, sigmas,
                        seed: int = 0, progress: bool = False) -> dict:
    """r² of every reference's output as a model of every target's, at ``x = clean + sigma * n``
    (the same ``n ~ N(0, I)``, seeded by ``seed``, at every sigma and for every denoiser).

    ``clean [B,3,H,W]``, ``cond [B,K,2]``, ``mask [B,K]``. Besides the references, every target
    is also scored against the clean image (``"clean"``: how much of the network's output the
    truth explains) and against the other targets, so a reference's r² can be read against them.
    Returns ``{"per_sigma": [{"sigma", "r2": {target: {reference: summary}}, "r2_vs_mean_image": (same),
    "per_image": ...}]}``.
    """
    if not sigmas or any(not (s > 0 and math.isfinite(s)) for s in sigmas):
        raise ValueError(f"sigmas: need positive finite noise levels, got {list(sigmas)}")
    if not targets or not references:
        raise ValueError("need at least one target and one reference denoiser")
    overlap = set(targets) & set(references)
    if overlap or "clean" in targets or "clean" in references:
        raise ValueError(f"names must differ between targets and references and not be 'clean': {sorted(overlap)}")
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed), dtype=clean.dtype)
    iterator = list(sigmas)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, desc="agreement sigma", unit="sigma")
    per_sigma = []
    for sigma in iterator:
        x = clean + sigma * noise
        outputs = {name: denoiser_outputs(d, x, sigma, cond, mask) for name, d in {**targets, **references}.items()}
        outputs["clean"] = clean.float()
        row, row_specific, per_image = {}, {}, {}
        for t in targets:
            others = [r for r in [*references, "clean", *targets] if r != t]
            scores = {r: r_squared(outputs[r], outputs[t]) for r in others}
            mean_image = outputs[t].mean(0, keepdim=True)
            row[t] = {r: summarize(v) for r, v in scores.items()}
            row_specific[t] = {r: summarize(r_squared(outputs[r], outputs[t], mean_image)) for r in others}
            per_image[t] = {r: [None if math.isnan(x) else x for x in v.tolist()] for r, v in scores.items()}
        per_sigma.append({"sigma": float(sigma), "r2": row, "r2_vs_mean_image": row_specific,
                          "per_image": per_image})
    return {"per_sigma": per_sigma, "seed": seed, "targets": list(targets), "references": list(references)}


def best_reference(result: dict, target: str, statistic: str = "median", measure: str = "r2") -> list[dict]:
    """Per sigma, the reference with the highest ``measure`` (``r2`` or ``r2_vs_mean_image``)
    ``statistic`` for ``target`` (references only, not ``clean`` or other targets)."""
    refs = result["references"]
    out = []
    for row in result["per_sigma"]:
        scores = {r: row[measure][target][r][statistic] for r in refs if row["r2"][target][r][statistic] is not None}
        best = max(scores, key=scores.get) if scores else None
        out.append({"sigma": row["sigma"], "reference": best, statistic: scores.get(best)})
    return out


def sample_agreement(targets: Mapping[str, Denoiser], references: Mapping[str, Denoiser],
                     sets_by_k: Mapping[int, list], resolution: int, num_steps: int = 18,
                     seed: int = 0) -> dict:
    """r² of final samples drawn from the same initial noise (Kamb & Ganguli's comparison of whole
    reverse trajectories): every denoiser samples every location set of ``sets_by_k``
    (``{K: [cond [K,2], ...]}``) with the Heun sampler and noise seeded by ``(seed, set, 0)``
    (:func:`empirical.models.sampling.sample_for_sets`), and each reference's sample is scored as
    a model of each target's. Returns ``{K: {target: {reference: {"r2": summary, "r2_vs_mean_image":
    summary}}}}`` (K as strings)."""
    from empirical.models.sampling import sample_for_sets

    out = {}
    for k, sets in sets_by_k.items():
        samples = {name: sample_for_sets(d, list(sets), resolution, 1, num_steps, seed)
                   for name, d in {**targets, **references}.items()}
        out[str(k)] = {t: {r: {"r2": summarize(r_squared(samples[r], samples[t])),
                               "r2_vs_mean_image": summarize(r_squared(samples[r], samples[t],
                                                                       samples[t].mean(0, keepdim=True)))}
                           for r in [*references, *targets] if r != t} for t in targets}
    return out
