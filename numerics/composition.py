"""The composition operator ``C[p_b; p_1..p_k]`` (2502.04549, Def. 5.1) on denoisers and scores.

    C[p_b; p_1..p_k](x)  ∝  p_b(x) ∏_i p_i(x) / p_b(x),
    ∇ log C = Σ_i ∇ log p_i − (k − 1) ∇ log p_b.

With denoisers ``D(x, σ) = x + σ² ∇ log p_σ(x)`` (Tweedie) the same identity reads
``D_C = Σ_i D_i − (k − 1) D_b`` (the ``x`` terms cancel because the weights sum to one).

**What gets sampled.** Diffusion sampling needs a score at every noise level σ. Following
the paper, we *anneal the composed score*: at level σ we use
``Σ_i s_i(x, σ) − (k − 1) s_b(x, σ)``, i.e. the score of ``C[p_{b,σ}; p_{1,σ}..p_{k,σ}]``,
the composition of the *noised* distributions. This is in general **not** the score of
``C[p_b; p_1..p_k]_σ``, the noised composition, so reverse diffusion with it need not sample
``C[p_b; p_1..p_k]``. The two agree at every σ when the factorized-conditionals condition
(Def. 5.2) holds for the coordinate blocks, because Gaussian noise is a product over
coordinates and keeps the factorization (T3 / Thm 5.3); they disagree e.g. for the Bayes
background of Appendix G eq. 17 and for families factorized only in a non-orthogonal
feature basis ``z = A x`` (Lemma 7.2). The experiments in ``numerics.experiments`` measure
both cases.

Every function here is pure and works on batches: ``x: [B, d]``, ``sigma`` a scalar.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

DenoiseFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x [B, d], sigma) -> [B, d]
ScoreFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x [B, d], sigma) -> [B, d]


def composition_weights(num_components: int) -> jax.Array:
    """Weights ``[1, ..., 1, -(k-1)]`` of ``(p_1..p_k, p_b)`` in the composed score; sum 1."""
    if num_components < 1:
        raise ValueError(f"compose at least one distribution, got {num_components}")
    return jnp.concatenate([jnp.ones(num_components), jnp.array([-(num_components - 1.0)])])


def compose_scores(background_score: jax.Array, component_scores: Sequence[jax.Array]) -> jax.Array:
    """``Σ_i s_i − (k − 1) s_b`` for already-evaluated scores of equal shape."""
    k = len(component_scores)
    if k < 1:
        raise ValueError("compose at least one distribution")
    return sum(component_scores) - (k - 1) * background_score


def composed_score_fn(background: ScoreFn, components: Sequence[ScoreFn]) -> ScoreFn:
    """Score function of the composition of the noised distributions at every σ."""
    components = tuple(components)

    def score(x: jax.Array, sigma: jax.Array) -> jax.Array:
        return compose_scores(background(x, sigma), [s(x, sigma) for s in components])

    return score


def composed_denoiser(background: DenoiseFn, components: Sequence[DenoiseFn]) -> DenoiseFn:
    """Denoiser ``Σ_i D_i − (k − 1) D_b`` of the annealed composition (see module doc).

    Equal to ``x + σ² (Σ_i s_i − (k−1) s_b)`` because the coefficients sum to one.
    """
    components = tuple(components)

    def denoise(x: jax.Array, sigma: jax.Array) -> jax.Array:
        return compose_scores(background(x, sigma), [d(x, sigma) for d in components])

    return denoise


def score_from_denoiser(denoise_fn: DenoiseFn) -> ScoreFn:
    """``s(x, σ) = (D(x, σ) − x) / σ²`` (Tweedie), for ``σ > 0``."""

    def score(x: jax.Array, sigma: jax.Array) -> jax.Array:
        return (denoise_fn(x, sigma) - x) / sigma ** 2

    return score


def denoiser_from_score(score_fn: ScoreFn) -> DenoiseFn:
    """``D(x, σ) = x + σ² s(x, σ)`` (Tweedie)."""

    def denoise(x: jax.Array, sigma: jax.Array) -> jax.Array:
        return x + sigma ** 2 * score_fn(x, sigma)

    return denoise


def mixture_denoiser(gm) -> DenoiseFn:
    """Exact batched denoiser of a ``numerics.gmm.GaussianMixture``: ``[B, d] -> [B, d]``.

    Same value as ``vmap(numerics.gmm.denoise)`` but the Cholesky factors of the noised
    covariances ``S_k + σ² I`` are computed once per call, not once per point:

        D(x) = x + σ² Σ_k r_k(x) (S_k + σ² I)^{-1} (μ_k − x),
        r_k(x) ∝ w_k N(x; μ_k, S_k + σ² I).
    """

    def denoise(x: jax.Array, sigma: jax.Array) -> jax.Array:
        dim = gm.means.shape[-1]
        chol = jnp.linalg.cholesky(gm.covs + sigma ** 2 * jnp.eye(dim))        # [K, d, d]
        diff = x[None, :, :] - gm.means[:, None, :]                            # [K, B, d]
        solved = jax.scipy.linalg.solve_triangular(
            chol, jnp.swapaxes(diff, -1, -2), lower=True)                      # [K, d, B]
        maha = jnp.sum(solved ** 2, axis=1)                                    # [K, B]
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        log_terms = jnp.log(gm.weights)[:, None] - 0.5 * (maha + logdet[:, None])
        resp = jax.nn.softmax(log_terms, axis=0)                               # [K, B]
        prec_diff = jax.scipy.linalg.solve_triangular(
            jnp.swapaxes(chol, -1, -2), solved, lower=False)                   # [K, d, B]
        score = -jnp.einsum("kb,kdb->bd", resp, prec_diff)
        return x + sigma ** 2 * score

    return denoise
