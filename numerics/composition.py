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

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

DenoiseFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x [B, d], sigma) -> [B, d]
ScoreFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x [B, d], sigma) -> [B, d]


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


class SpectralMixture(NamedTuple):
    """A Gaussian mixture in eigen-form, ready for denoising at any σ without factorizations:
    ``weights [K]``, ``means [K, d]``, ``eigvals [K, d]``, ``eigvecs [K, d, d]`` with
    ``S_k = V_k diag(λ_k) V_kᵀ``, so ``(S_k + σ² I)^{-1} = V_k diag(1/(λ_k + σ²)) V_kᵀ``."""

    weights: jax.Array
    means: jax.Array
    eigvals: jax.Array
    eigvecs: jax.Array


def spectral_form(model):
    """Eigen-form of a ``numerics.blocks`` model: a ``SpectralMixture`` for a
    ``GaussianMixture``, ``(indices, tuple of SpectralMixture)`` for a ``BlockProduct``.

    Call it once, outside the sampler's loop: everything done per step afterwards
    (``spectral_log_prob_and_denoise``) is matrix products and elementwise maths. Keeping LAPACK calls
    (Cholesky, triangular solves) out of ``lax.scan`` is deliberate: jitted Heun loops with
    them deadlocked XLA:CPU on this machine (docs/toy-experiments.md, "Why eq. 18 used to hang").
    """
    from numerics.blocks import BlockProduct

    def mixture(gm) -> SpectralMixture:
        eigvals, eigvecs = jnp.linalg.eigh(gm.covs)
        return SpectralMixture(gm.weights, gm.means, eigvals, eigvecs)

    if isinstance(model, BlockProduct):
        return (model.indices, tuple(mixture(m) for m in model.mixtures))
    return mixture(model)


def _mixture_log_prob_and_denoise(spec: SpectralMixture, x: jax.Array, sigma: jax.Array):
    """``log p_σ(x) [B]`` and ``D(x) [B, d]`` of one mixture for ``x [B, d]``."""
    inv = 1.0 / (spec.eigvals + sigma ** 2)                                   # [K, d]
    diff = x[None, :, :] - spec.means[:, None, :]                             # [K, B, d]
    rotated = jnp.einsum("kij,kbi->kbj", spec.eigvecs, diff)                  # V_kᵀ (x − μ_k)
    maha = jnp.sum(rotated ** 2 * inv[:, None, :], axis=-1)                   # [K, B]
    logdet = -jnp.sum(jnp.log(inv), axis=-1)                                  # [K]
    dim = x.shape[-1]
    log_terms = (jnp.log(spec.weights)[:, None]
                 - 0.5 * (maha + logdet[:, None] + dim * jnp.log(2 * jnp.pi)))
    resp = jax.nn.softmax(log_terms, axis=0)                                  # [K, B]
    prec_diff = jnp.einsum("kij,kbj->kbi", spec.eigvecs, rotated * inv[:, None, :])
    score = -jnp.einsum("kb,kbd->bd", resp, prec_diff)
    return jax.scipy.special.logsumexp(log_terms, axis=0), x + sigma ** 2 * score


def spectral_log_prob_and_denoise(spec, x: jax.Array, sigma: jax.Array):
    """Exact ``log p_σ(x) [B]`` and Tweedie denoiser ``D(x, σ) [B, d]`` of a model in
    ``spectral_form``; a block product is evaluated block by block (never expanded)."""
    if isinstance(spec, SpectralMixture):
        return _mixture_log_prob_and_denoise(spec, x, sigma)
    indices, mixtures = spec
    log_prob, out = jnp.zeros(x.shape[0], dtype=x.dtype), jnp.zeros_like(x)
    for idx, mixture in zip(indices, mixtures):
        block_log_prob, block_denoised = _mixture_log_prob_and_denoise(mixture, x[:, idx], sigma)
        log_prob = log_prob + block_log_prob
        out = out.at[:, idx].set(block_denoised)
    return log_prob, out


def model_denoiser(model) -> DenoiseFn:
    """Exact batched denoiser ``[B, d] -> [B, d]`` of a ``numerics.blocks`` model:

        D(x) = x + σ² Σ_k r_k(x) (S_k + σ² I)^{-1} (μ_k − x),
        r_k(x) ∝ w_k N(x; μ_k, S_k + σ² I),

    block by block for a ``BlockProduct``. The eigen-decompositions are done here, once.
    """
    return spectral_denoiser(spectral_form(model))


def spectral_denoiser(spec) -> DenoiseFn:
    """Denoiser ``[B, d] -> [B, d]`` of a model already in ``spectral_form`` (a pytree, so it
    can be passed into a jitted sampler as an argument: one compilation per structure)."""
    return lambda x, sigma: spectral_log_prob_and_denoise(spec, x, sigma)[1]


def mixture_denoiser(gm) -> DenoiseFn:
    """Exact batched denoiser of a ``numerics.gmm.GaussianMixture``: ``[B, d] -> [B, d]``.

    Same value as ``vmap(numerics.gmm.denoise)``; the covariances are eigen-decomposed once
    here (``spectral_form``), not per point or per σ.
    """
    return model_denoiser(gm)


def stacked_model_denoisers(stacked_models) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Exact denoisers of ``M`` models of one pytree structure, stacked on a leading axis.

    ``stacked_models``: a ``numerics.blocks`` model (``GaussianMixture`` or ``BlockProduct``)
    whose leaves carry a leading axis ``[M, ...]`` (``jax.tree_util.tree_map(jnp.stack, ...)``).
    Returns ``(x [B, d], σ) -> [M, B, d]``, ``D_m(x) = x + σ² ∇ log p_{m,σ}(x)``. Block
    products stay products (never expanded), so a product of ``d`` one-coordinate mixtures
    costs ``O(d)`` per point instead of the ``2^d`` components of its flat expansion.
    """
    log_prob_and_denoise = stacked_log_prob_and_denoise(stacked_models)
    return lambda x, sigma: log_prob_and_denoise(x, sigma)[1]


def stacked_log_prob_and_denoise(stacked_models):
    """``(x [B, d], σ) -> (log p_{m,σ}(x) [M, B], D_m(x) [M, B, d])`` for stacked models."""
    spec = jax.vmap(spectral_form)(stacked_models)
    batched = jax.vmap(spectral_log_prob_and_denoise, in_axes=(0, None, None))
    return lambda x, sigma: batched(spec, x, sigma)


def mixture_of_models_denoiser(stacked_models, log_weights: jax.Array) -> DenoiseFn:
    """Exact denoiser of the mixture ``Σ_m w_m p_m`` of stacked models (see above).

    Tweedie for a mixture: ``D(x) = Σ_m r_m(x) D_m(x)`` with posterior model probabilities
    ``r_m(x) ∝ w_m p_{m,σ}(x)``; ``log_weights [M]`` are ``log w_m`` (need not be normalized).
    The components may themselves be block products: a mixture of products (e.g. the Bayes
    background ``(1/d) Σ_i p_i``) is never expanded into its Cartesian product.
    """
    log_prob_and_denoise = stacked_log_prob_and_denoise(stacked_models)

    def denoise(x: jax.Array, sigma: jax.Array) -> jax.Array:
        log_probs, denoised = log_prob_and_denoise(x, sigma)
        posterior = jax.nn.softmax(log_weights[:, None] + log_probs, axis=0)  # [M, B]
        return jnp.einsum("mb,mbd->bd", posterior, denoised)

    return denoise
