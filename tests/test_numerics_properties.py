"""Property tests with the user-facing strategies in numerics.strategies."""

import jax
from hypothesis import given, settings

from numerics import checks, locality
from numerics.strategies import (CONDITIONAL_KINDS, PIXEL_KINDS, apply_perturbation,
                                 cpc_families, perturbations)

SIGMAS = (0.02, 0.3, 2.0)
# Every perturbation of strength >= MIN_STRENGTH must be detected.
MIN_STRENGTH = 0.3


@given(cpc_families())
@settings(max_examples=5)
def test_cpc_implies_lcs_at_every_sigma(family):
    result = locality.classify(checks.flat(family), sigmas=SIGMAS, n_points=16)
    assert result["pixel_local"] and result["conditionally_local"] and result["cpc"], result


@given(cpc_families(), perturbations(MIN_STRENGTH))
@settings(max_examples=6)
def test_perturbations_are_detected_by_the_right_measure(family, perturbation):
    kind, strength = perturbation
    result = locality.classify(apply_perturbation(family, kind, strength), sigmas=SIGMAS, n_points=16)
    assert not result["cpc"]
    if kind in PIXEL_KINDS:
        assert not result["pixel_local"]
    else:
        assert kind in CONDITIONAL_KINDS
        assert result["pixel_local"] and not result["conditionally_local"]


@given(cpc_families())
@settings(max_examples=4)
def test_t3_cpc_stays_cpc_under_noise(family):
    # noising is exact (cov + sigma^2 I); the gap is measured on the flat, noised mixtures
    result = locality.classify(checks.flat(family), sigmas=(0.01, 1.0, 10.0), n_points=16)
    assert result["cpc"]


@given(cpc_families())
@settings(max_examples=4)
def test_t4_all_sizes_from_singletons(family):
    flat = checks.flat(family)
    J = max(flat.sets(), key=len)
    for sigma in SIGMAS:
        err = checks._singleton_formula_error(flat, J, sigma, jax.random.PRNGKey(0), n=16)
        assert err <= locality.TOLERANCE


@given(cpc_families())
@settings(max_examples=5)
def test_t8_mean_shifts_orthogonal(family):
    assert max(checks.mean_shift_cosines(family)) <= 1e-12
