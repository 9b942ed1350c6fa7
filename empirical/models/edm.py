"""EDM diffusion mechanics (Karras et al. 2022, "Elucidating the design space"; EDM2 2024).

Small pure functions; every denoiser in ``empirical`` is built from them.

Forward process: ``x_sigma = x_0 + sigma * n`` with ``n ~ N(0, I)``. A denoiser ``D(x_sigma, sigma)``
estimates ``E[x_0 | x_sigma]``; it is parameterised through a raw network ``F`` as

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma))

    c_skip = sd^2 / (sigma^2 + sd^2)          c_out = sigma sd / sqrt(sigma^2 + sd^2)
    c_in   = 1 / sqrt(sigma^2 + sd^2)         c_noise = ln(sigma) / 4

(``sd`` = sigma_data). With these, the network input ``c_in x`` and the effective regression target
``(x_0 - c_skip x) / c_out`` both have unit variance when ``Var(x_0) = sd^2``, and the loss weight
``lambda = (sigma^2 + sd^2) / (sigma sd)^2 = 1 / c_out^2`` makes the loss of ``F`` unit-weighted at
every sigma (tested in ``tests/test_edm.py``).

Training draws ``ln sigma ~ N(P_mean, P_std^2)``. Sampling integrates the probability-flow ODE
``dx/dsigma = (x - D(x; sigma)) / sigma`` with Heun's 2nd-order method on the Karras schedule
``sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``, optionally
with stochastic "churn" (Karras et al. Algorithm 2).
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch

SIGMA_DATA = 0.5  # EDM default; images in [-1, 1] have std close to 0.5


def preconditioning(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA):
    """``(c_skip, c_out, c_in, c_noise)`` for noise levels ``sigma`` (any shape, > 0)."""
    sigma = torch.as_tensor(sigma)
    total = sigma ** 2 + sigma_data ** 2
    c_skip = sigma_data ** 2 / total
    c_out = sigma * sigma_data / total.sqrt()
    c_in = 1.0 / total.sqrt()
    c_noise = sigma.log() / 4.0
    return c_skip, c_out, c_in, c_noise


def loss_weight(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA) -> torch.Tensor:
    """EDM loss weight ``lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2`` (= 1 / c_out^2)."""
    return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


def sample_sigma(n: int, p_mean: float, p_std: float, generator: torch.Generator | None = None,
                 device=None) -> torch.Tensor:
    """``n`` training noise levels, log-normal: ``ln sigma ~ N(p_mean, p_std^2)``. Shape ``[n]``.

    Drawn on the CPU generator (reproducible on any device), then moved to ``device``."""
    z = torch.randn(n, generator=generator)
    return (p_mean + p_std * z).exp().to(device)


def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                  rho: float = 7.0) -> torch.Tensor:
    """Sampling schedule ``[sigma_0 = sigma_max, ..., sigma_{N-1} = sigma_min, 0]``; shape ``[N+1]``."""
    if num_steps < 1:
        raise ValueError("num_steps must be >= 1")
    i = torch.arange(num_steps, dtype=torch.float64)
    ramp = i / max(num_steps - 1, 1)
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)]).float()


Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``D(x [B,...], sigma [B]) -> x0_hat [B,...]`` (conditioners bound in a closure)."""


@torch.no_grad()
def heun_sample(denoise: Denoiser, noise: torch.Tensor, sigmas: torch.Tensor, churn: float = 0.0,
                s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Heun sampler (Karras et al. 2022, Algorithm 2; deterministic Algorithm 1 when ``churn = 0``).

    ``noise``: ``N(0, I)`` draws, shape ``[B, ...]``; ``sigmas``: decreasing, ending in 0 (see
    :func:`karras_sigmas`). Returns the sample at ``sigma = 0``.
    """
    num_steps = len(sigmas) - 1
    x = noise * sigmas[0]
    ones = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
    for i in range(num_steps):
        s_cur, s_next = float(sigmas[i]), float(sigmas[i + 1])
        gamma = min(churn / num_steps, math.sqrt(2) - 1) if s_tmin <= s_cur <= s_tmax else 0.0
        s_hat = s_cur * (1 + gamma)
        if gamma > 0:
            eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)  # CPU generator
            x = x + math.sqrt(s_hat ** 2 - s_cur ** 2) * s_noise * eps
        d_cur = (x - denoise(x, s_hat * ones)) / s_hat
        x_next = x + (s_next - s_hat) * d_cur
        if s_next > 0:  # 2nd-order correction
            d_next = (x_next - denoise(x_next, s_next * ones)) / s_next
            x_next = x + (s_next - s_hat) * (0.5 * d_cur + 0.5 * d_next)
        x = x_next
    return x


def ema_decay(step: int, batch_size: int, halflife_images: float, rampup_ratio: float | None) -> float:
    """EMA decay per step for a half-life in training images (EDM1 convention).

    ``halflife = min(halflife_images, step * batch_size * rampup_ratio)`` early in training, so the
    average does not remember the random initialisation; ``decay = 0.5 ** (batch_size / halflife)``.
    """
    halflife = halflife_images
    if rampup_ratio is not None:
        halflife = min(halflife, step * batch_size * rampup_ratio)
    if halflife <= 0:
        return 0.0
    return 0.5 ** (batch_size / halflife)


@torch.no_grad()
def ema_update(ema_params: Iterable[torch.Tensor], params: Iterable[torch.Tensor], decay: float) -> None:
    """In place: ``ema <- decay * ema + (1 - decay) * param`` for each pair."""
    for ema, param in zip(ema_params, params):
        ema.lerp_(param.detach(), 1.0 - decay)
