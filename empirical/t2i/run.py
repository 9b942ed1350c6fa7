"""The whole ``t2i locality`` measurement: prompt sets x sigma grid -> one JSON-ready report.

For each prompt set the prompts are encoded once (full, base, full without part ``i``, base plus
part ``i``). For each seed a clean latent ``x0`` is drawn by the denoiser itself (Euler steps in
EDM form with classifier-free guidance on the full prompt, :func:`euler_sample`; with
``sample_steps = 0``, ``x0 = 0`` and ``x = sigma eps`` is pure noise), and ``noise_samples`` noise
draws ``eps`` are fixed; every sigma reuses them, so a curve over sigma compares like with like.
At each sigma, ``x = x0 + sigma eps``; the Jacobian rows are taken at the first noise draw of
every seed, the ablations and mean shifts at every draw (module docstring of
:mod:`empirical.t2i.measure`). Randomness comes only from ``torch.Generator`` seeded by the spec.
"""

from __future__ import annotations

import math

import torch

from empirical.t2i.measure import (OUTPUT, FeatureRecorder, SigmaAccumulator, accumulate_ablations,
                                   draw_positions, output_jacobian_energy, positions_to_pixels, resolve_features,
                                   summarize_sigma)
from empirical.t2i.spec import LocalitySpec, PromptSet
from localcomp.errors import UserError

POSITION_SEED_OFFSET = 1_000_003  # positions use their own stream, seeded seeds[0] + this


def check_sigmas(spec: LocalitySpec, sigma_range: tuple[float, float] | None) -> None:
    """UserError naming the first ``sigmas[i]`` outside the model's ``[sigma_min, sigma_max]``."""
    if sigma_range is None:
        return
    low, high = sigma_range
    for i, sigma in enumerate(spec.sigmas):
        if not low <= sigma <= high:
            raise UserError(f"--prompts: sigmas[{i}]: {sigma:g} is outside the model's noise range "
                            f"[{low:.4g}, {high:.4g}] (sigma = sqrt((1 - abar_t) / abar_t))")


def prompt_variants(prompt_set: PromptSet) -> dict:
    """The prompt strings: ``full``, ``base``, ``without`` and ``only`` (one per part, in order)."""
    every = set(range(len(prompt_set.parts)))
    return {"full": prompt_set.prompt(),
            "base": prompt_set.prompt(set()),
            "without": [prompt_set.prompt(every - {i}) for i in every],
            "only": [prompt_set.prompt({i}) for i in every]}


def encode_variants(denoiser, prompts: dict) -> dict:
    return {key: [denoiser.encode(p) for p in value] if isinstance(value, list) else denoiser.encode(value)
            for key, value in prompts.items()}


def sampling_sigmas(sigma_range: tuple[float, float], steps: int) -> list[float]:
    """``steps`` noise levels spaced evenly in ``log sigma`` from ``sigma_max`` down to
    ``sigma_min``, then 0 (the last Euler step lands on ``D``)."""
    low, high = sigma_range
    if steps == 1:
        return [high, 0.0]
    return [math.exp(math.log(high) + (math.log(low) - math.log(high)) * k / (steps - 1)) for k in range(steps)] + [0.0]


@torch.no_grad()
def euler_sample(denoiser, cond, null_cond, x_unit: torch.Tensor, sigmas: list[float], guidance: float) -> torch.Tensor:
    """Euler steps of the probability-flow ODE ``dx/dsigma = (x - D(x)) / sigma`` from
    ``x = sigmas[0] x_unit`` over ``sigmas`` (decreasing, ending at 0), with
    ``D = D(null) + guidance (D(cond) - D(null))`` (``guidance = 1``: ``D(cond)`` alone)."""
    x = sigmas[0] * x_unit
    for sigma, nxt in zip(sigmas[:-1], sigmas[1:]):
        d = denoiser(x, sigma, cond)
        if guidance != 1:
            d_null = denoiser(x, sigma, null_cond)
            d = d_null + guidance * (d - d_null)
        x = x + (nxt - sigma) * (x - d) / sigma
    return x


def clean_latent(denoiser, spec: LocalitySpec, conds: dict, null_cond, x_unit: torch.Tensor) -> torch.Tensor:
    if spec.sample_steps == 0:
        return torch.zeros_like(x_unit)
    return euler_sample(denoiser, conds["full"], null_cond, x_unit,
                        sampling_sigmas(denoiser.sigma_range, spec.sample_steps), spec.guidance)


def jacobian_pixels(spec: LocalitySpec, height: int, width: int) -> torch.Tensor:
    """``[P, 2]`` (row, col): the spec's points, or ``positions`` pixels drawn uniformly."""
    if isinstance(spec.positions, int):
        generator = torch.Generator().manual_seed(spec.seeds[0] + POSITION_SEED_OFFSET)
        return draw_positions(spec.positions, height, width, generator)
    return positions_to_pixels(spec.positions, height, width)


def feature_groups(denoiser, spec: LocalitySpec) -> dict[str, list[str]]:
    """The spec's feature selectors resolved on ``denoiser.module``; UserError naming the field."""
    try:
        return resolve_features(denoiser.module, spec.features) if spec.features else {}
    except ValueError as error:
        raise UserError(f"--prompts: features: {error}") from None


def measure_prompt_set(denoiser, prompt_set: PromptSet, spec: LocalitySpec, groups: dict, pixels,
                       null_cond, on_sigma=None) -> dict:
    """Every sigma of ``spec`` for one prompt set: ``{"name", "prompts", "per_sigma": [...]}``.
    ``on_sigma()`` is called after each sigma (progress)."""
    channels, height, width = denoiser.latent_shape
    prompts = prompt_variants(prompt_set)
    conds = encode_variants(denoiser, prompts)
    draws = []
    for seed in spec.seeds:
        generator = torch.Generator().manual_seed(seed)
        x_unit = torch.randn(1, channels, height, width, generator=generator)
        noises = [torch.randn(1, channels, height, width, generator=generator) for _ in range(spec.noise_samples)]
        device = getattr(denoiser, "device", torch.device("cpu"))
        x0 = clean_latent(denoiser, spec, conds, null_cond, x_unit.to(device))
        draws.append((x0, [n.to(device) for n in noises]))
    recorder = FeatureRecorder(denoiser.module, [m for names in groups.values() for m in names],
                               (height, width)) if groups else None
    per_sigma = []
    try:
        for sigma in spec.sigmas:
            acc = SigmaAccumulator([p.name for p in prompt_set.parts])
            for x0, noises in draws:
                for n, noise in enumerate(noises):
                    x = x0 + sigma * noise
                    if n == 0 and len(pixels):
                        acc.energy_maps.append(output_jacobian_energy(denoiser, x, sigma, conds["full"], pixels))
                    accumulate_ablations(acc, denoiser, recorder, x, sigma, conds)
            record = {"sigma": sigma, "timestep": denoiser.timestep(sigma) if hasattr(denoiser, "timestep") else None}
            record.update(summarize_sigma(acc, groups, prompt_set.parts, pixels, (height, width),
                                          spec.radii, spec.effective_mass))
            per_sigma.append(record)
            if on_sigma:
                on_sigma()
    finally:
        if recorder:
            recorder.remove()
    return {"name": prompt_set.name, "prompts": prompts,
            "parts": [{"name": p.name, "text": p.text, "region": p.region} for p in prompt_set.parts],
            "per_sigma": per_sigma}


def summary_rows(prompt_sets: list[dict]) -> list[dict]:
    """One flat row per (prompt set, sigma): the numbers a table shows."""
    rows = []
    for ps in prompt_sets:
        for rec in ps["per_sigma"]:
            cond = rec["conditional"]
            row = {"prompt_set": ps["name"], "sigma": rec["sigma"],
                   "effective_radius": rec.get("spatial", {}).get("effective_radius"),
                   "output_mean_abs_cosine": cond["mean_abs_cosine"],
                   "output_mean_overlap": cond["mean_overlap"],
                   "output_region_share": {k: v.get("region_share") for k, v in cond["parts"].items()},
                   "output_spread_ratio": {k: v["spread_ratio"] for k, v in cond["parts"].items()}}
            for group, feat in rec["features"].items():
                row[f"{group}_mean_abs_cosine"] = feat["mean_abs_cosine"]
                row[f"{group}_mean_overlap"] = feat["mean_overlap"]
            rows.append(row)
    return rows


def run_locality(denoiser, spec: LocalitySpec, progress: bool = False) -> dict:
    """The report: ``{"model", "spec", "features", "positions", "prompt_sets", "summary"}``."""
    check_sigmas(spec, getattr(denoiser, "sigma_range", None))
    groups = feature_groups(denoiser, spec)
    _, height, width = denoiser.latent_shape
    pixels = jacobian_pixels(spec, height, width)
    null_cond = denoiser.encode("")
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(spec.prompt_sets) * len(spec.sigmas), desc="t2i locality (prompt set x sigma)")
    try:
        results = [measure_prompt_set(denoiser, ps, spec, groups, pixels, null_cond,
                                      on_sigma=bar.update if bar else None) for ps in spec.prompt_sets]
    finally:
        if bar:
            bar.close()
    return {"model": denoiser.describe() if hasattr(denoiser, "describe") else {},
            "spec": spec.as_json(), "features": {OUTPUT: [OUTPUT], **groups},
            "positions": pixels.tolist(), "prompt_sets": results, "summary": summary_rows(results)}
