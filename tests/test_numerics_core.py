"""Closed forms of numerics.gmm / numerics.blocks against autodiff and brute force."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from numerics import blocks, gmm


@pytest.fixture(scope="module")
def mixture():
    rng = np.random.default_rng(0)
    covs = []
    for _ in range(3):
        a = rng.normal(size=(4, 4))
        covs.append(a @ a.T + 0.2 * np.eye(4))
    return gmm.GaussianMixture(jnp.array([0.2, 0.5, 0.3]), jnp.array(rng.normal(size=(3, 4))),
                               jnp.array(np.stack(covs)))


def test_log_prob_matches_scipy(mixture):
    x = np.random.default_rng(1).normal(size=4)
    expected = np.log(sum(w * stats.multivariate_normal(m, c).pdf(x)
                          for w, m, c in zip(*(np.asarray(t) for t in mixture))))
    assert abs(float(gmm.log_prob(mixture, jnp.array(x))) - expected) < 1e-12


def test_score_and_hessian_match_autodiff(mixture):
    x = jnp.array(np.random.default_rng(2).normal(size=4))
    assert np.allclose(gmm.score(mixture, x), jax.grad(gmm.log_prob, 1)(mixture, x), atol=1e-12)
    assert np.allclose(gmm.hessian(mixture, x), jax.hessian(gmm.log_prob, 1)(mixture, x), atol=1e-10)


def test_score_is_finite_far_from_all_components(mixture):
    x = jnp.full(4, 1e3)
    assert np.all(np.isfinite(gmm.score(mixture, x)))


def test_denoise_is_tweedie_posterior_mean_of_a_gaussian():
    g = gmm.gaussian(jnp.array([1.0, -1.0]), jnp.array([[1.0, 0.3], [0.3, 0.5]]))
    x, sigma = jnp.array([0.2, 0.7]), 0.8
    S = np.asarray(g.covs[0])
    expected = np.asarray(g.means[0]) + S @ np.linalg.solve(S + sigma ** 2 * np.eye(2),
                                                            np.asarray(x - g.means[0]))
    assert np.allclose(gmm.denoise(g, x, sigma), expected, atol=1e-12)


def test_marginal_and_sample_moments(mixture):
    sub = gmm.marginal(mixture, [1, 3])
    x = gmm.sample(mixture, jax.random.PRNGKey(0), 20000)
    mean = np.asarray(mixture.weights @ mixture.means)
    assert np.allclose(x.mean(0), mean, atol=0.1)
    assert np.allclose(sub.means, mixture.means[:, [1, 3]])


def test_block_product_matches_expanded_and_stays_cheap():
    rng = np.random.default_rng(3)
    parts = [(np.arange(2 * b, 2 * b + 2), gmm.isotropic_mixture(np.ones(2) / 2, rng.normal(size=(2, 2)), 0.3))
             for b in range(3)]
    bp = blocks.block_product(parts)
    flat = blocks.expand(bp)
    x = jnp.array(rng.normal(size=(5, 6)))
    assert np.allclose(blocks.batch_log_prob(bp, x), blocks.batch_log_prob(flat, x), atol=1e-12)
    assert np.allclose(blocks.batch_hessian(bp, x), blocks.batch_hessian(flat, x), atol=1e-10)
    # 10 blocks of 5 components (5**10 expanded components) evaluated as a product:
    big = blocks.block_product([(np.arange(b, b + 1), gmm.isotropic_mixture(
        np.ones(5) / 5, rng.normal(size=(5, 1)), 0.1)) for b in range(10)])
    assert np.isfinite(float(blocks.log_prob(big, jnp.zeros(10))))
    assert blocks.marginal(big, [0, 1]).dim == 2
