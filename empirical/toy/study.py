"""Learned vs exact denoisers on bump images: models, training, and the three measurements.

Models (all ``D(x [B,3,S,S], sigma [B], cond [B,K,2], mask [B,K])``, EDM-preconditioned):

* ``unet-tokens``: the set-conditioned UNet (``empirical.models.unet.SetUNet``, cross-attention to one
  token per location; our Exp.1/Exp.2 model);
* ``unet-global``: the same UNet with the locations summed into one FiLM vector (our Exp.3
  construction: every pixel sees every conditioner through one vector);
* ``patch``: the patch-local denoiser (``empirical.models.patch_local``), one patch cell = one bump
  cell, half-width ``k`` cells (local by construction).

Training draws fresh exact samples every step (``toy_bumps.sample_images``) with 1..3 objects at
uniformly random distinct cells; the conditioners are every object's cell (``all``, Exp.1
style) or one random object's cell (``one``, Exp.2 style, ``train.select_conditioners``).

Measurements, all against the exact denoiser ``D*`` of the family (``toy_bumps.ExactDenoiser``):

* score error per sigma and K: ``sum |D - D*|^2 / sum |D* - x|^2`` over points
  ``x ~ p_sigma(. | c_J)``, ``|J| = K``; since ``D = x + sigma^2 s`` this is the relative squared
  error of the score ``sum |s - s*|^2 / sum |s*|^2``;
* conditional leakage per sigma: remove one conditioner ``c_j`` from ``J`` and measure the change
  ``Delta = D(x; J) - D(x; J \\ {j})`` per pixel; leakage = fraction of ``sum |Delta|^2`` outside
  ``M(c_j)`` (split into other objects' cells and background cells). 0 for an exactly
  conditionally local denoiser;
* Kmax: for K = 0..12 requested cells, sample with Heun (``empirical.models.edm``), count the on cells
  exactly (``toy_bumps.found_cells``); a sample succeeds when the on cells are exactly the
  requested ones; ``kmax`` as in ``empirical.evaluation.kmax.kmax``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from empirical.models import edm
from empirical.evaluation.kmax import DEFAULT_THRESHOLD, kmax
from empirical.toy.bumps import (BumpFamily, ExactDenoiser, cells_to_present, conditioners,
                                 found_cells, random_sets, sample_images)

MODEL_NAMES = ("unet-tokens", "unet-global", "patch")
CONDITIONING = ("all", "one")


@dataclass(frozen=True)
class StudyConfig:
    """Everything the study depends on (recorded in ``run.json``); see docs/toy-learned.md."""
    size: int = 8                                   # image side (px); cells are 2 x 2 px
    shadow: float = 0.2                             # darkening of the near-CPC variant
    families: tuple[str, ...] = ("cpc", "shadow")
    models: tuple[str, ...] = MODEL_NAMES
    conditioning: str = "all"
    train_objects: tuple[int, int] = (1, 3)         # inclusive range of objects per image
    steps: int = 600
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 50
    channels: int = 16                              # base width of every network
    k: int = 1                                      # patch half-width in cells
    sigmas: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
    error_ks: tuple[int, ...] = (1, 2, 3, 6, 12)
    leakage_k: int = 3
    points: int = 64                                # points per (sigma, K)
    max_objects: int = 12
    samples: int = 24                               # samples per K
    sampler_steps: int = 12
    sigma_max: float = 10.0
    threshold: float = DEFAULT_THRESHOLD            # Kmax: success rate >= threshold

    def family(self, name: str) -> BumpFamily:
        return BumpFamily(self.size, 0.0 if name == "cpc" else self.shadow)


# -- models -------------------------------------------------------------------------------------------

def build_model(name: str, config: StudyConfig) -> torch.nn.Module:
    from empirical.models.patch_local import PatchConfig, PatchLocalDenoiser
    from empirical.models.unet import EDMDenoiser, UNetConfig

    width = config.channels
    if name in ("unet-tokens", "unet-global"):
        return EDMDenoiser(UNetConfig(
            img_resolution=config.size, in_channels=3, out_channels=3, channels=width,
            channel_mult=(1, 2), num_blocks=1, attn_resolutions=(config.size, config.size // 2),
            head_channels=width, cond_mode=name.split("-")[1]))
    if name == "patch":
        return PatchLocalDenoiser(PatchConfig(
            img_resolution=config.size, grid=config.size // 2, k=config.k,
            net=UNetConfig(img_resolution=8, channels=width, channel_mult=(1, 2), num_blocks=1,
                           head_channels=width)))
    raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")


# -- training -----------------------------------------------------------------------------------------

def training_batch(family: BumpFamily, config: StudyConfig, generator: torch.Generator):
    """Fresh exact samples: ``(images [B,3,S,S], cond [B,K,2], mask [B,K])``, conditioners
    selected per ``config.conditioning``."""
    from empirical.training.train import select_conditioners

    lo, hi = config.train_objects
    num = torch.randint(lo, hi + 1, (config.batch_size,), generator=generator)
    cells = random_sets(config.batch_size, num, family, generator)
    images = sample_images(family, cells_to_present(cells, family), generator)
    cond, mask = conditioners(cells, family)
    cond, mask = select_conditioners(cond, mask, config.conditioning, generator)
    return images, cond, mask


def learning_rate(step: int, config: StudyConfig) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to 0 at ``steps``."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    return config.lr * max(0.0, 1 - (step - config.warmup) / max(config.steps - config.warmup, 1))


def train_model(model, family: BumpFamily, config: StudyConfig, seed: int,
                progress: bool = True, desc: str = "train") -> list[dict]:
    """Adam on the model's EDM ``training_loss``; returns the loss history (mean per 50 steps)."""
    from tqdm import tqdm

    from empirical.models.unet import SigmaDistribution

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.99))
    history, window = [], []
    model.train()
    bar = tqdm(range(config.steps), desc=desc, unit="step", disable=not progress, leave=False)
    for step in bar:
        images, cond, mask = training_batch(family, config, generator)
        loss = model.training_loss(images, cond, mask, generator, SigmaDistribution())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        optimizer.step()
        window.append(loss.item())
        if len(window) == 50 or step == config.steps - 1:
            history.append({"step": step + 1, "mean_loss": float(np.mean(window))})
            bar.set_postfix(loss=f"{history[-1]['mean_loss']:.4f}")
            window = []
    model.eval().requires_grad_(False)
    return history


# -- evaluation points ----------------------------------------------------------------------------------

@dataclass
class PointSet:
    """Points ``x ~ p_sigma(. | c_J)`` with their sets: ``x [B,3,S,S]``, ``cells [B,K]``."""
    sigma: float
    K: int
    x: torch.Tensor
    cells: torch.Tensor
    extra: dict = field(default_factory=dict)


def draw_points(family: BumpFamily, sigma: float, K: int, n: int, generator) -> PointSet:
    cells = random_sets(n, torch.full((n,), K), family, generator)
    clean = sample_images(family, cells_to_present(cells, family), generator, dtype=torch.float64)
    x = clean + sigma * torch.randn(clean.shape, generator=generator, dtype=torch.float64)
    return PointSet(sigma, K, x, cells)


def evaluate(model, family: BumpFamily, x: torch.Tensor, sigma: float, cells: torch.Tensor) -> torch.Tensor:
    """``D(x; sigma, cells)`` as float64; learned models run in float32 without gradients."""
    cond, mask = conditioners(cells, family)
    sig = torch.full((x.shape[0],), float(sigma), dtype=torch.float64)
    if isinstance(model, ExactDenoiser):
        return model(x, sig, cond, mask)
    with torch.no_grad():
        return model(x.float(), sig.float(), cond, mask).double()


def relative_score_error(denoised: torch.Tensor, exact: torch.Tensor, x: torch.Tensor) -> float:
    """``sum |D - D*|^2 / sum |D* - x|^2`` (= relative squared score error)."""
    return float(((denoised - exact) ** 2).sum() / ((exact - x) ** 2).sum())


def score_errors(model, family: BumpFamily, points: list[PointSet], exact: ExactDenoiser) -> list[dict]:
    """Per point set: relative score error and the denoiser MSE per coordinate."""
    rows = []
    for p in points:
        target = p.extra.get("target")
        if target is None:
            target = p.extra["target"] = evaluate(exact, family, p.x, p.sigma, p.cells)
        out = evaluate(model, family, p.x, p.sigma, p.cells)
        rows.append({"sigma": p.sigma, "K": p.K, "relative_score_error": relative_score_error(out, target, p.x),
                     "denoiser_mse": float(((out - target) ** 2).mean())})
    return rows


def cell_pixel_masks(cells: torch.Tensor, family: BumpFamily) -> torch.Tensor:
    """``cells [B, K]`` (-1 = none) -> bool ``[B, S, S]``: pixels of those cells."""
    present = cells_to_present(cells, family).view(-1, family.grid, family.grid)
    return present.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)


def leakage(model, family: BumpFamily, points: PointSet) -> dict:
    """Conditional leakage by the shared CLEVR measure (:mod:`empirical.diagnostics.locality`): remove each
    conditioner in turn, map ``|D(x, C) - D(x, C minus c_j)|`` (L2 over channels per pixel) and take
    the share of that change outside c_j's cell (``leakage``), on the other objects' cells
    (``onto_objects``) and on background cells (``onto_background``), averaged over removals;
    ``change_energy`` is the mean change per pixel."""
    from empirical.diagnostics.locality import conditional_change_maps, conditional_locality_summary

    def denoiser(x, sigma, cond, mask):  # float64 out, as :func:`evaluate`
        if isinstance(model, ExactDenoiser):
            return model(x, sigma.double(), cond, mask)
        with torch.no_grad():
            return model(x.float(), sigma.float(), cond, mask).double()

    cond, mask = conditioners(points.cells, family)
    sigma = torch.full((points.x.shape[0],), float(points.sigma), dtype=torch.float64)
    change, valid = conditional_change_maps(denoiser, points.x, sigma, cond, mask)
    footprints = torch.stack([cell_pixel_masks(points.cells[:, j:j + 1], family)
                              for j in range(points.cells.shape[1])], dim=1)       # [B, K, S, S]
    summary = conditional_locality_summary(change, valid, footprints)
    zero = lambda v: 0.0 if v is None or v != v else v  # noqa: E731  (no change at all: nothing leaks)
    return {"sigma": points.sigma, "leakage": zero(summary["leakage"]),
            "onto_objects": zero(summary["other_objects"]), "onto_background": zero(summary["background"]),
            "change_energy": zero(summary["mean_change"])}


# -- Kmax ----------------------------------------------------------------------------------------------

@dataclass
class KmaxRequest:
    """``cells [M, max K]`` requested sets (K = 0..max, ``samples`` each, K-major), ``noise``."""
    ks: torch.Tensor
    cells: torch.Tensor
    noise: torch.Tensor


def kmax_request(family: BumpFamily, config: StudyConfig, generator) -> KmaxRequest:
    ks = torch.arange(config.max_objects + 1).repeat_interleave(config.samples)
    cells = random_sets(len(ks), ks, family, generator)
    noise = torch.randn(len(ks), 3, family.size, family.size, generator=generator, dtype=torch.float64)
    return KmaxRequest(ks, cells, noise)


def generate(model, family: BumpFamily, request: KmaxRequest, config: StudyConfig) -> torch.Tensor:
    """Heun (EDM Algorithm 1) samples for every requested set, ``[M, 3, S, S]`` float64."""
    cond, mask = conditioners(request.cells, family)
    sigmas = edm.karras_sigmas(config.sampler_steps, sigma_max=config.sigma_max).double()
    if isinstance(model, ExactDenoiser):
        return edm.heun_sample(lambda x, s: model(x, s, cond, mask), request.noise, sigmas)
    with torch.no_grad():
        return edm.heun_sample(lambda x, s: model(x, s, cond, mask), request.noise.float(),
                               sigmas.float()).double()


def kmax_table(images: torch.Tensor, family: BumpFamily, request: KmaxRequest, threshold: float) -> dict:
    """Per K: success rate (on cells == requested), all-requested-present rate, mean count; Kmax."""
    found = found_cells(images, family)
    requested = [set(c[c >= 0].tolist()) for c in request.cells]
    per_k = {}
    for K in sorted(set(request.ks.tolist())):
        rows = [i for i in range(len(found)) if int(request.ks[i]) == K]
        per_k[K] = {"success": float(np.mean([found[i] == requested[i] for i in rows])),
                    "requested_present": float(np.mean([requested[i] <= found[i] for i in rows])),
                    "mean_count": float(np.mean([len(found[i]) for i in rows]))}
    return {"per_k": per_k, "kmax": kmax({K: v["success"] for K, v in per_k.items()}, threshold),
            "threshold": threshold}
