"""Exact-score diffusion samplers (Karras et al. 2022, "EDM"), pure JAX.

Variance-exploding convention: ``x_σ = x_0 + σ ε``. A *denoiser* is a function
``denoise_fn(x: [B, d], sigma: scalar) -> [B, d]`` returning ``E[x_0 | x_σ = x]``; the score
is ``∇ log p_σ(x) = (D(x, σ) - x) / σ²`` (Tweedie) and the probability-flow ODE is

    dx/dσ = (x - D(x, σ)) / σ.

``edm_sigmas`` builds the EDM time discretisation, ``heun_sample`` integrates the ODE with
Heun's second-order method (Euler on the final step to σ = 0, EDM Algorithm 1) and
``stochastic_sample`` is EDM Algorithm 2 (churn: add noise to raise σ by a factor 1 + γ,
then one Heun step down). Both are written with ``jax.lax.scan`` over the steps and are pure
functions of their inputs; jit them at the call site (``jax.jit(heun_sample,
static_argnums=0)`` or close over ``denoise_fn``).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

DenoiseFn = Callable[[jax.Array, jax.Array], jax.Array]


def edm_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
               rho: float = 7.0) -> jax.Array:
    """EDM noise levels ``[num_steps + 1]``, decreasing, the last one exactly 0.

    ``σ_i = (σ_max^{1/ρ} + i/(N-1) (σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ`` for ``i = 0..N-1``,
    ``σ_N = 0`` (Karras et al. 2022, eq. 5).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    if num_steps == 1:
        ramp = jnp.zeros(1)
    else:
        ramp = jnp.arange(num_steps) / (num_steps - 1)
    inv_rho = 1.0 / rho
    sigmas = (sigma_max ** inv_rho + ramp * (sigma_min ** inv_rho - sigma_max ** inv_rho)) ** rho
    return jnp.concatenate([sigmas, jnp.zeros(1)])


def _heun_step(denoise_fn: DenoiseFn, x: jax.Array, sigma_cur: jax.Array,
               sigma_next: jax.Array) -> jax.Array:
    """One step of the probability-flow ODE from ``sigma_cur`` to ``sigma_next``.

    Heun (explicit trapezoid) when ``sigma_next > 0``; plain Euler when ``sigma_next == 0``
    (the ODE's velocity at σ = 0 is undefined). Branch-free so it can sit inside ``scan``.
    """
    velocity = (x - denoise_fn(x, sigma_cur)) / sigma_cur
    x_euler = x + (sigma_next - sigma_cur) * velocity
    final = sigma_next <= 0
    safe_next = jnp.where(final, 1.0, sigma_next)
    velocity_next = (x_euler - denoise_fn(x_euler, safe_next)) / safe_next
    x_heun = x + (sigma_next - sigma_cur) * 0.5 * (velocity + velocity_next)
    return jnp.where(final, x_euler, x_heun)


def heun_sample(denoise_fn: DenoiseFn, x_init: jax.Array, sigmas: jax.Array) -> jax.Array:
    """Integrate the probability-flow ODE along ``sigmas`` (EDM Algorithm 1).

    ``x_init: [B, d]`` is a draw at noise ``sigmas[0]`` (e.g. ``sigmas[0] * N(0, I)``);
    ``sigmas: [N + 1]`` decreasing, usually ending in 0. Returns ``[B, d]`` at ``sigmas[-1]``.
    Uses ``2N - 1`` denoiser evaluations in effect (the final Euler step's corrector is
    computed and discarded to stay branch-free).
    """
    sigmas = jnp.asarray(sigmas, dtype=x_init.dtype)

    def step(x, pair):
        return _heun_step(denoise_fn, x, pair[0], pair[1]), None

    x_final, _ = jax.lax.scan(step, x_init, jnp.stack([sigmas[:-1], sigmas[1:]], axis=1))
    return x_final


def stochastic_sample(denoise_fn: DenoiseFn, x_init: jax.Array, sigmas: jax.Array,
                      key: jax.Array, churn: float = 30.0, s_noise: float = 1.0,
                      s_tmin: float = 0.0, s_tmax: float = float("inf")) -> jax.Array:
    """EDM stochastic sampler (Karras et al. 2022, Algorithm 2).

    At each step with ``s_tmin <= σ_i <= s_tmax`` raise the noise to
    ``σ̂ = σ_i (1 + γ)``, ``γ = min(churn / N, √2 - 1)``, by adding
    ``√(σ̂² - σ_i²) s_noise ε``, then take one Heun step from ``σ̂`` to ``σ_{i+1}`` (Euler on
    the final step to 0). ``churn = 0`` reduces to ``heun_sample``. Shapes as in
    ``heun_sample``; ``key`` is a ``jax.random`` key.
    """
    sigmas = jnp.asarray(sigmas, dtype=x_init.dtype)
    num_steps = sigmas.shape[0] - 1
    gamma_max = min(churn / num_steps, 2.0 ** 0.5 - 1.0)
    keys = jax.random.split(key, num_steps)

    def step(x, inputs):
        sigma_cur, sigma_next, step_key = inputs
        in_window = (sigma_cur >= s_tmin) & (sigma_cur <= s_tmax)
        gamma = jnp.where(in_window, gamma_max, 0.0)
        sigma_hat = sigma_cur * (1.0 + gamma)
        noise = jax.random.normal(step_key, x.shape, dtype=x.dtype)
        x_hat = x + jnp.sqrt(sigma_hat ** 2 - sigma_cur ** 2) * s_noise * noise
        return _heun_step(denoise_fn, x_hat, sigma_hat, sigma_next), None

    x_final, _ = jax.lax.scan(step, x_init, (sigmas[:-1], sigmas[1:], keys))
    return x_final
