"""Assertions added to kill meaningful surviving mutants of the numerics mutation stage
(issue 14 item 4, issue 16): each names a behaviour of a numeric check's helper that a
mutant changed without any check noticing. ``results/mutation/README.md`` lists the
survivors left (equivalent mutants, one line each on why)."""

from __future__ import annotations

import itertools

import numpy as np

from numerics import checks
from numerics import families as F


def test_mean_shift_cosines_are_cosines_on_a_family_with_coupled_shifts():
    """On the T8 counter-example (both singletons shift the background), the values are the
    |cos| of the two mean shifts, computed here from the means themselves: a product or a ratio
    of the norms in place of their product's inverse would pass T8 on orthogonal families (all
    zeros) but not here."""
    family = F.with_background_shift(F.with_background_shift(checks.base_family(10), frozenset("a"), 0.5),
                                     frozenset("b"), 0.5)
    mu0 = checks._mean(family.models[F.EMPTY])
    shifts = {c: checks._mean(family.models[frozenset([c])]) - mu0 for c in sorted(family.masks)}
    expected = [abs(np.dot(shifts[i], shifts[j])) / np.sqrt(np.dot(shifts[i], shifts[i]) * np.dot(shifts[j], shifts[j]))
                for i, j in itertools.combinations(sorted(shifts), 2)]
    got = checks.mean_shift_cosines(family)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert all(0.0 <= c <= 1.0 + 1e-12 for c in got) and max(got) > 0.01


def test_expected_partition_has_no_empty_background_block_when_the_masks_cover_the_image():
    family = F.ConditionalFamily(pixels=3, channels=2, masks={"a": (0,), "b": (1, 2)}, models={})
    for J in (frozenset(), frozenset("ab")):
        parts = checks.expected_partition(family, J)
        assert parts == [{0, 1}, {2, 3, 4, 5}], (J, parts)
    assert checks.expected_partition(family, frozenset("a")) == [{0, 1}, {2, 3, 4, 5}]
    assert checks.expected_partition(family, frozenset("b")) == [{2, 3, 4, 5}, {0, 1}]


# ------------------------------------------------------------- numerics.composition
def _two_gaussian_mixtures(seed: int = 0):
    from numerics import gmm

    rng = np.random.default_rng(seed)
    return [gmm.diagonal_mixture(np.array([0.3, 0.7]), rng.normal(size=(2, 3)), rng.uniform(0.2, 1.0, (2, 3)))
            for _ in range(2)]


def test_spectral_log_prob_is_the_noised_mixture_log_density_at_every_point_of_a_batch():
    """The log-density ``compose``'s mixture posteriors use, against ``gmm.log_prob`` of the
    noised mixture (absolute: a constant offset cancels in every denoiser, not here)."""
    import jax

    from numerics import composition, gmm

    mixture = _two_gaussian_mixtures()[0]
    x = np.random.default_rng(1).normal(size=(4, 3))
    sigma = 0.5
    log_p, _ = composition.spectral_log_prob_and_denoise(composition.spectral_form(mixture), x, sigma)
    expected = jax.vmap(lambda y: gmm.log_prob(gmm.noised(mixture, sigma), y))(x)
    assert log_p.shape == (4,)
    np.testing.assert_allclose(log_p, expected, rtol=1e-10)


def test_mixture_of_models_denoiser_weighs_each_point_by_its_own_model_posterior():
    """``D(x) = Σ_m r_m(x) D_m(x)``, ``r_m(x) ∝ w_m p_m,σ(x)`` normalized over models, per point."""
    import jax
    import jax.numpy as jnp

    from numerics import composition, gmm

    models = _two_gaussian_mixtures(2)
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *models)
    log_weights = jnp.log(jnp.array([0.25, 0.75]))
    x = np.random.default_rng(3).normal(size=(5, 3)) * 2
    sigma = 0.3
    got = composition.mixture_of_models_denoiser(stacked, log_weights)(x, sigma)
    log_p = np.stack([jax.vmap(lambda y, m=m: gmm.log_prob(gmm.noised(m, sigma), y))(x) for m in models])
    posterior = np.exp(log_p + np.asarray(log_weights)[:, None])
    posterior /= posterior.sum(axis=0, keepdims=True)
    denoised = np.stack([composition.mixture_denoiser(m)(x, sigma) for m in models])
    np.testing.assert_allclose(got, np.einsum("mb,mbd->bd", posterior, denoised), rtol=1e-9)


def test_compose_scores_refuses_an_empty_composition_with_its_reason():
    import pytest

    from numerics import composition

    with pytest.raises(ValueError, match=r"^compose at least one distribution$"):
        composition.compose_scores(np.zeros(2), [])


# ------------------------------------------------------------------ numerics.checks
def test_nan_max_keeps_a_nan_from_either_side():
    assert np.isnan(checks._nan_max(float("nan"), 1.0)) and np.isnan(checks._nan_max(1.0, float("nan")))
    assert checks._nan_max(1.0, 2.0) == 2.0


def test_decreasing_allows_a_rise_of_exactly_ten_percent_and_no_more():
    curve = [1.0, 0.9, 0.5, 0.5 * 1.1, 0.1]
    assert checks._decreasing(curve)[0]
    assert not checks._decreasing([1.0, 0.9, 0.5, 0.5 * 1.1 * (1 + 1e-9), 0.1])[0]


def test_fmt_lists_every_sigma_with_its_three_measures():
    rows = [{"sigma": s, "pixel_locality_violation": 1e-3 * s, "conditional_locality_violation": 2e-3,
             "cpc_gap": 0.0} for s in (0.1, 1.0)]
    assert checks._fmt({"per_sigma": rows}) == ("sigma=0.1: pix=1.00e-04 cond=2.00e-03 gap=0.00e+00; "
                                                "sigma=1: pix=1.00e-03 cond=2.00e-03 gap=0.00e+00")


def test_spectral_log_prob_of_a_block_product_is_the_sum_over_blocks():
    import jax

    from numerics import blocks, composition

    model = checks.base_family(0).models[frozenset("ab")]
    assert isinstance(model, blocks.BlockProduct)
    x = np.random.default_rng(4).normal(size=(3, model_dim(model)))
    sigma = 0.4
    log_p, _ = composition.spectral_log_prob_and_denoise(composition.spectral_form(model), x, sigma)
    expected = jax.vmap(lambda y: blocks.log_prob(blocks.noised(model, sigma), y))(x)
    np.testing.assert_allclose(log_p, expected, rtol=1e-10)


def model_dim(model) -> int:
    return int(sum(len(i) for i in model.indices))


# ------------------------------------------------------------------ numerics.locality / gmm
def test_within_includes_the_tolerance_itself():
    from numerics.locality import TOLERANCE, within

    assert within(TOLERANCE, TOLERANCE) and not within(TOLERANCE * (1 + 1e-12), TOLERANCE)


def test_diagonal_mixture_is_float64_whatever_the_input_precision():
    from numerics import gmm

    gm = gmm.diagonal_mixture(np.ones(2, np.float32), np.zeros((2, 3), np.float32), np.full((2, 3), 0.1, np.float32))
    assert gm.weights.dtype == gm.means.dtype == gm.covs.dtype == np.float64
    np.testing.assert_array_equal(np.diagonal(gm.covs, axis1=1, axis2=2), np.full((2, 3), np.float64(np.float32(0.1))))


def test_classify_refuses_an_empty_sigma_sweep_with_its_reason():
    import pytest

    from numerics.locality import classify

    with pytest.raises(ValueError, match=r"^classify needs at least one sigma$"):
        classify(checks.base_family(0), sigmas=())


def test_cpc_gap_is_the_closed_form_gap_relative_to_one_plus_the_rms_log_density():
    """2 pixels, ``M(a) = {0}``: null ``N(0, I)``, ``p(.|a) = N(0, [[1, r], [r, 1]])``. CPC's
    sum for ``{a}`` is ``log N(x0; 0, 1) + log N(x1; 0, 1)``; the gap is
    ``max |log p - sum| / (1 + rms log p)`` over the points, here from scipy's densities."""
    from scipy.stats import multivariate_normal, norm

    from numerics import gmm
    from numerics.locality import cpc_gap

    r = 0.6
    cov = np.array([[1.0, r], [r, 1.0]])
    models = {F.EMPTY: gmm.GaussianMixture(np.ones(1), np.zeros((1, 2)), np.eye(2)[None]),
              frozenset("a"): gmm.GaussianMixture(np.ones(1), np.zeros((1, 2)), cov[None])}
    family = F.ConditionalFamily(pixels=2, channels=1, masks={"a": (0,)}, models=models)
    x = np.array([[0.3, -1.2], [1.5, 0.7], [-0.4, 0.1]])
    logp = multivariate_normal(np.zeros(2), cov).logpdf(x)
    gap = np.abs(logp - norm.logpdf(x[:, 0]) - norm.logpdf(x[:, 1]))
    expected = gap.max() / (1.0 + np.sqrt(np.mean(logp ** 2)))
    np.testing.assert_allclose(cpc_gap(family, models, frozenset("a"), x), expected, rtol=1e-10)
