"""EDM samplers and the composition operator, checked against exact targets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numerics  # noqa: F401  (float64)
from numerics import gmm
from numerics.composition import composed_denoiser, compose_scores, mixture_denoiser, score_from_denoiser
from numerics.sampling import edm_sigmas, heun_sample, stochastic_sample

N = 4000


def test_edm_sigmas_shape_and_ends():
    s = np.asarray(edm_sigmas(10, 0.002, 80.0))
    assert s.shape == (11,) and s[-1] == 0.0
    assert np.isclose(s[0], 80.0) and np.isclose(s[-2], 0.002)
    assert np.all(np.diff(s) < 0)


def _gaussian_case():
    mean = jnp.array([1.0, -2.0, 0.5])
    var = jnp.array([0.5, 2.0, 0.1])
    denoise = mixture_denoiser(gmm.diagonal_mixture(jnp.ones(1), mean[None], var[None]))
    return mean, var, denoise


@pytest.mark.parametrize("sampler", ["heun", "stochastic"])
def test_sampler_matches_gaussian_moments(sampler):
    mean, var, denoise = _gaussian_case()
    sigmas = edm_sigmas(40, 0.002, 20.0)
    key = jax.random.PRNGKey(0)
    # start from the exact p_{sigma_max}, so only the integrator can bias the result
    x0 = mean + jnp.sqrt(var + sigmas[0] ** 2) * jax.random.normal(key, (N, 3))
    if sampler == "heun":
        x = heun_sample(denoise, x0, sigmas)
    else:
        x = stochastic_sample(denoise, x0, sigmas, jax.random.PRNGKey(1), churn=10.0)
    x = np.asarray(x)
    # Monte-Carlo standard errors: mean sqrt(v/N); variance v sqrt(2/N); allow 5 of them
    assert np.all(np.abs(x.mean(0) - mean) < 5 * np.sqrt(var / N))
    assert np.all(np.abs(x.var(0) - var) < 5 * var * np.sqrt(2 / N))


def test_heun_two_component_mixture_1d():
    gm = gmm.isotropic_mixture(jnp.array([0.3, 0.7]), jnp.array([[-2.0], [2.0]]), 0.05)
    sigmas = edm_sigmas(64, 0.002, 20.0)
    x0 = sigmas[0] * jax.random.normal(jax.random.PRNGKey(2), (N, 1))
    x = np.asarray(heun_sample(mixture_denoiser(gm), x0, sigmas))[:, 0]
    frac_right = np.mean(x > 0)
    assert abs(frac_right - 0.7) < 5 * np.sqrt(0.21 / N)
    right = x[x > 0]
    assert abs(right.mean() - 2.0) < 0.05 and abs(right.std() - np.sqrt(0.05)) < 0.05


def test_mixture_denoiser_equals_pointwise_gmm_denoise():
    key = jax.random.PRNGKey(3)
    a = jax.random.normal(key, (4, 3, 3))
    gm = gmm.GaussianMixture(jnp.array([0.1, 0.2, 0.3, 0.4]), jax.random.normal(key, (4, 3)),
                             a @ jnp.swapaxes(a, 1, 2) + 0.1 * jnp.eye(3))
    x = 2 * jax.random.normal(jax.random.PRNGKey(4), (9, 3))
    for sigma in (0.01, 0.7, 5.0):
        expected = jax.vmap(lambda xi: gmm.denoise(gm, xi, sigma))(x)
        np.testing.assert_allclose(mixture_denoiser(gm)(x, sigma), expected, atol=1e-10)


def test_composition_score_identity():
    """Score of the composed denoiser = sum_i s_i - (k-1) s_b, each from gmm.score of p_sigma."""
    key = jax.random.PRNGKey(5)
    mixtures = [gmm.isotropic_mixture(jnp.array([0.5, 0.5]), jax.random.normal(k, (2, 3)), 0.3)
                for k in jax.random.split(key, 4)]
    background, components = mixtures[0], mixtures[1:]
    x = jax.random.normal(jax.random.PRNGKey(6), (5, 3))
    sigma = 0.8
    composed = score_from_denoiser(composed_denoiser(mixture_denoiser(background),
                                                     [mixture_denoiser(m) for m in components]))(x, sigma)

    def exact(m):
        return jax.vmap(lambda xi: gmm.score(gmm.noised(m, sigma), xi))(x)

    expected = compose_scores(exact(background), [exact(m) for m in components])
    np.testing.assert_allclose(composed, expected, atol=1e-9)
    # and it is not just the average: with k=3 the background enters with weight -2
    assert not np.allclose(composed, sum(exact(m) for m in components) / 3)
