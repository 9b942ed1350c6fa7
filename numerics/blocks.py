"""Block-product densities ``p(x) = prod_b p_b(x[I_b])`` kept as products.

A ``BlockProduct(indices, mixtures)`` holds disjoint coordinate index arrays ``I_b`` (covering
``0..d-1``) and one ``GaussianMixture`` per block. Its density, score, Hessian, noising and
sampling cost ``sum_b K_b`` component evaluations, never ``prod_b K_b``: a product of 10 blocks
of 5 components stays cheap. The functions here dispatch on the model type, so every
measure accepts either a ``GaussianMixture`` or a ``BlockProduct`` (a "model").
"""

from __future__ import annotations

import itertools
from typing import NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from numerics import gmm
from numerics.gmm import GaussianMixture


class BlockProduct(NamedTuple):
    """``indices``: tuple of int arrays ``[d_b]`` (disjoint, cover 0..d-1); ``mixtures``: one per block."""

    indices: tuple
    mixtures: tuple

    @property
    def dim(self) -> int:
        return int(sum(len(i) for i in self.indices))


Model = Union[GaussianMixture, BlockProduct]


def block_product(blocks) -> BlockProduct:
    """``blocks``: iterable of ``(coordinate indices, GaussianMixture on those coordinates)``."""
    indices, mixtures = zip(*[(np.asarray(i, dtype=np.int32), m) for i, m in blocks])
    flat = np.concatenate(indices)
    if len(np.unique(flat)) != len(flat) or set(flat.tolist()) != set(range(len(flat))):
        raise ValueError("block indices must be disjoint and cover 0..d-1")
    for i, m in zip(indices, mixtures):
        if m.means.shape[-1] != len(i):
            raise ValueError(f"block of {len(i)} coordinates got a mixture of dim {m.means.shape[-1]}")
    return BlockProduct(tuple(indices), tuple(mixtures))


def dim(model: Model) -> int:
    return model.dim if isinstance(model, BlockProduct) else int(model.means.shape[-1])


def log_prob(model: Model, x):
    """``log p(x)``, scalar, for ``x [d]``."""
    if isinstance(model, BlockProduct):
        return sum(gmm.log_prob(m, x[i]) for i, m in zip(model.indices, model.mixtures))
    return gmm.log_prob(model, x)


def score(model: Model, x):
    """``grad log p(x) [d]``; block-wise for products."""
    if isinstance(model, BlockProduct):
        out = jnp.zeros_like(x)
        for i, m in zip(model.indices, model.mixtures):
            out = out.at[i].set(gmm.score(m, x[i]))
        return out
    return gmm.score(model, x)


def hessian(model: Model, x):
    """Score Jacobian ``[d, d]``; block diagonal (exact zeros off the blocks) for products."""
    if isinstance(model, BlockProduct):
        out = jnp.zeros((x.shape[0], x.shape[0]), dtype=x.dtype)
        for i, m in zip(model.indices, model.mixtures):
            out = out.at[jnp.ix_(i, i)].set(gmm.hessian(m, x[i]))
        return out
    return gmm.hessian(model, x)


def noised(model: Model, sigma) -> Model:
    """Exact ``p * N(0, sigma^2 I)``; a product stays a product (noise factorizes over pixels)."""
    if isinstance(model, BlockProduct):
        return model._replace(mixtures=tuple(gmm.noised(m, sigma) for m in model.mixtures))
    return gmm.noised(model, sigma)


def denoise(model: Model, x, sigma):
    """Tweedie denoiser ``x + sigma^2 score(p_sigma, x)``, ``[d]``."""
    return x + sigma ** 2 * score(noised(model, sigma), x)


def sample(model: Model, key, n: int):
    """``n`` exact samples ``[n, d]`` (blocks sampled independently for products); ``key`` one
    JAX PRNG key (``TypeError`` otherwise)."""
    from numerics.keys import check_key

    check_key(key)
    if isinstance(model, BlockProduct):
        out = jnp.zeros((n, model.dim))
        keys = jax.random.split(key, len(model.mixtures))
        for k, i, m in zip(keys, model.indices, model.mixtures):
            out = out.at[:, i].set(gmm.sample(m, k, n))
        return out
    return gmm.sample(model, key, n)


def expand(model: Model) -> GaussianMixture:
    """The equivalent flat mixture (Cartesian product of components; for small models only)."""
    if isinstance(model, GaussianMixture):
        return model
    d = model.dim
    weights, means, covs = [], [], []
    mixtures = [jax.tree_util.tree_map(np.asarray, m) for m in model.mixtures]
    for combo in itertools.product(*[range(len(m.weights)) for m in mixtures]):
        w, mu, cov = 1.0, np.zeros(d), np.zeros((d, d))
        for k, i, m in zip(combo, model.indices, mixtures):
            w *= m.weights[k]
            mu[i] = m.means[k]
            cov[np.ix_(i, i)] = m.covs[k]
        weights.append(w), means.append(mu), covs.append(cov)
    return GaussianMixture(jnp.asarray(weights), jnp.asarray(np.array(means)), jnp.asarray(np.array(covs)))


def marginal(model: Model, indices) -> Model:
    """Closed-form marginal on ``indices``; stays a product when they are a union of whole blocks."""
    indices = np.asarray(indices, dtype=np.int32)
    if isinstance(model, BlockProduct):
        wanted = set(indices.tolist())
        whole = [b for b, i in enumerate(model.indices) if set(i.tolist()) <= wanted]
        if sum(len(model.indices[b]) for b in whole) == len(wanted):
            position = {int(c): p for p, c in enumerate(indices)}
            return BlockProduct(
                tuple(np.array([position[int(c)] for c in model.indices[b]], dtype=np.int32) for b in whole),
                tuple(model.mixtures[b] for b in whole))
        model = expand(model)
    return gmm.marginal(model, indices)


# Batched, jitted versions: x [B, d]. The model is a pytree argument, so one compile per
# model *structure* (block sizes, component counts), not per parameter value.
batch_log_prob = jax.jit(jax.vmap(log_prob, in_axes=(None, 0)))
batch_score = jax.jit(jax.vmap(score, in_axes=(None, 0)))
batch_hessian = jax.jit(jax.vmap(hessian, in_axes=(None, 0)))
