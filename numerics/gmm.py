"""Gaussian mixtures with full covariances: exact density, score, Hessian, noising, marginals.

A mixture ``p(x) = sum_k w_k N(x; mu_k, S_k)`` is a pytree ``GaussianMixture(weights [K],
means [K, d], covs [K, d, d])``. Noising at level sigma is exact: ``p_sigma = p * N(0, sigma^2 I)``
has covariances ``S_k + sigma^2 I``. All functions take one point ``x: [d]``; ``jax.vmap``
them for batches. Float64 is switched on in ``numerics/__init__.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

import numerics  # noqa: F401  (float64 on)


class GaussianMixture(NamedTuple):
    """``weights [K]`` (sum 1), ``means [K, d]``, ``covs [K, d, d]`` (symmetric positive definite)."""

    weights: jnp.ndarray
    means: jnp.ndarray
    covs: jnp.ndarray

    @property
    def dim(self) -> int:
        return self.means.shape[-1]

    @property
    def num_components(self) -> int:
        return self.means.shape[0]


def gaussian(mean, cov) -> GaussianMixture:
    """A single Gaussian ``N(mean [d], cov [d, d])`` as a one-component mixture."""
    mean = jnp.asarray(mean, dtype=jnp.float64)
    return GaussianMixture(jnp.ones(1), mean[None], jnp.asarray(cov, dtype=jnp.float64)[None])


def diagonal_mixture(weights, means, vars) -> GaussianMixture:
    """Mixture with diagonal covariances ``diag(vars_k)``; ``vars`` is ``[K, d]``, ``[K]`` or scalar."""
    means = jnp.asarray(means, dtype=jnp.float64)
    vars = jnp.broadcast_to(jnp.asarray(vars, dtype=jnp.float64).reshape(
        (-1, 1) if jnp.ndim(vars) == 1 else jnp.shape(vars)), means.shape)
    covs = jax.vmap(jnp.diag)(vars)
    return GaussianMixture(jnp.asarray(weights, dtype=jnp.float64), means, covs)


def isotropic_mixture(weights, means, var) -> GaussianMixture:
    """Mixture with covariances ``var_k I``; ``var`` is a scalar or ``[K]``."""
    return diagonal_mixture(weights, means, var)


def _whitening(gm: GaussianMixture):
    """``L_k^{-1} [K, d, d]`` (inverse Cholesky factors) and ``log det S_k [K]``.

    Independent of the point ``x``, so under ``jax.vmap`` over points it is computed once and
    every per-point operation below is a plain matrix product (fast batched on CPU/GPU)."""
    chol = jnp.linalg.cholesky(gm.covs)
    eye = jnp.broadcast_to(jnp.eye(gm.means.shape[-1]), gm.covs.shape)
    chol_inv = jax.scipy.linalg.solve_triangular(chol, eye, lower=True)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    return chol_inv, logdet


def _component_terms(gm: GaussianMixture, x):
    """Per-component ``log(w_k N(x; mu_k, S_k))`` ``[K]`` and ``S_k^{-1}(x - mu_k)`` ``[K, d]``."""
    chol_inv, logdet = _whitening(gm)
    diff = x[None, :] - gm.means                             # [K, d]
    solved = jnp.einsum("kij,kj->ki", chol_inv, diff)        # L^{-1}(x - mu)
    maha = jnp.sum(solved ** 2, axis=-1)
    d = gm.means.shape[-1]
    log_terms = jnp.log(gm.weights) - 0.5 * (maha + logdet + d * jnp.log(2 * jnp.pi))
    prec_diff = jnp.einsum("kji,kj->ki", chol_inv, solved)   # L^{-T} L^{-1} (x - mu)
    return log_terms, prec_diff


def log_prob(gm: GaussianMixture, x):
    """``log p(x)`` for ``x [d]`` (scalar), via logsumexp over components."""
    log_terms, _ = _component_terms(gm, x)
    return logsumexp(log_terms)


def score(gm: GaussianMixture, x):
    """``grad log p(x) = -sum_k r_k(x) S_k^{-1} (x - mu_k)``, ``[d]`` (closed form)."""
    log_terms, prec_diff = _component_terms(gm, x)
    r = jax.nn.softmax(log_terms)
    return -jnp.einsum("k,kd->d", r, prec_diff)


def hessian(gm: GaussianMixture, x):
    """Score Jacobian ``d^2 log p / dx^2 [d, d]`` (closed form):

    ``sum_k r_k (-P_k + g_k g_k^T) - s s^T`` with ``g_k = -P_k (x - mu_k)``, ``s = sum_k r_k g_k``.
    """
    log_terms, prec_diff = _component_terms(gm, x)
    r = jax.nn.softmax(log_terms)
    g = -prec_diff
    s = r @ g
    chol_inv, _ = _whitening(gm)
    precs = jnp.einsum("kji,kjl->kil", chol_inv, chol_inv)
    return (-jnp.einsum("k,kij->ij", r, precs) + jnp.einsum("k,ki,kj->ij", r, g, g)
            - jnp.outer(s, s))


def noised(gm: GaussianMixture, sigma) -> GaussianMixture:
    """``p * N(0, sigma^2 I)``: covariances ``S_k + sigma^2 I``."""
    d = gm.means.shape[-1]
    return gm._replace(covs=gm.covs + (sigma ** 2) * jnp.eye(d))


def denoise(gm: GaussianMixture, x, sigma):
    """Tweedie: ``E[x_0 | x_sigma = x] = x + sigma^2 score(p_sigma, x)``, ``[d]``."""
    return x + sigma ** 2 * score(noised(gm, sigma), x)


def marginal(gm: GaussianMixture, indices) -> GaussianMixture:
    """Closed-form marginal on coordinates ``indices`` (a list/array of ints)."""
    idx = jnp.asarray(indices, dtype=jnp.int32)
    return GaussianMixture(gm.weights, gm.means[:, idx], gm.covs[:, idx][:, :, idx])


def sample(gm: GaussianMixture, key, n: int):
    """``n`` exact samples ``[n, d]``; ``key`` one JAX PRNG key (``TypeError`` otherwise)."""
    from numerics.keys import check_key

    check_key(key)
    key_c, key_z = jax.random.split(key)
    comp = jax.random.choice(key_c, gm.weights.shape[0], shape=(n,), p=gm.weights)
    chol = jnp.linalg.cholesky(gm.covs)
    z = jax.random.normal(key_z, (n, gm.means.shape[-1]), dtype=jnp.float64)
    return gm.means[comp] + jnp.einsum("nij,nj->ni", chol[comp], z)


