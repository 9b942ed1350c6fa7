"""Toy experiments on tiny settings: outputs exist with the expected fields, robust outcomes hold."""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from localcomp.errors import UserError
from numerics.experiments import EXPERIMENTS
from numerics.experiments import appendix_g, colours, feature_space


def test_experiments_registered():
    assert {"appendix_g", "colours", "feature_space"} <= set(EXPERIMENTS)


def test_appendix_g_eq17_and_eq18(tmp_path):
    args = argparse.Namespace(seed=1, out=tmp_path, dim=8, component_std=0.1, num_samples=64,
                              num_steps=24, sigma_max=80.0, equations=["eq17", "eq18"])
    assert appendix_g.run(args) == 0
    for name in ("run.json", "appendix_g.json", "appendix_g.png"):
        assert (tmp_path / name).exists()
    result = json.loads((tmp_path / "appendix_g.json").read_text())
    rates = result["main_set_success"]
    # measured rates, with a margin: the exact empty-background composition is N(1_S, s^2 I)
    assert rates["eq17"]["empty"] > 0.9
    assert rates["eq17"]["bayes"] < 0.5
    # eq. 18: the cluttered product background composes, and leaves the clutter a fair coin
    assert rates["eq18"]["cluttered"] > 0.9
    main = next(r for r in result["equations"]["eq18"]["cluttered"] if r["set"] == [0, 2, 4, 6])
    assert 0.35 < main["off_set_on_rate"] < 0.65
    rows = result["equations"]["eq17"]["empty"]
    assert {"k", "set", "success_rate", "success_stderr", "off_set_on_rate"} <= set(rows[0])


def test_appendix_g_factorized_denoisers_equal_flat_expansion():
    """eq. 18's backgrounds kept as products / a mixture of products give the same denoiser
    as their flat expansions (2^d patterns; Bayes weights proportional to |b|)."""
    from numerics import blocks
    from numerics.composition import mixture_denoiser

    config = appendix_g.Config(dim=5)
    family = appendix_g.families(config)["eq18"]
    d, var = config.dim, config.component_std ** 2
    patterns = np.array(np.meshgrid(*[[0.0, 1.0]] * d, indexing="ij")).reshape(d, -1).T
    counts = patterns.sum(axis=1)
    flat = {"cluttered": blocks.expand(family["background"]),
            "bayes": blocks.expand(family["background"])._replace(
                weights=jnp.asarray(counts / counts.sum()))}
    # the expansion's component order is itertools.product over blocks, as `patterns`
    np.testing.assert_allclose(flat["cluttered"].means, patterns)
    x = jax.random.normal(jax.random.PRNGKey(0), (16, d)) + 0.5
    for name in ("cluttered", "bayes"):
        ours = jax.jit(appendix_g.background_denoiser(family, name, d))
        reference = jax.jit(mixture_denoiser(flat[name]))
        for sigma in (0.05, 0.3, 2.0):
            np.testing.assert_allclose(ours(x, sigma), reference(x, sigma),
                                       atol=1e-10, err_msg=f"{name} sigma={sigma}")
    assert np.allclose(flat["cluttered"].covs[0], var * np.eye(d))


def test_appendix_g_bad_config_names_field():
    with pytest.raises(UserError, match="--dim"):
        appendix_g.validate(appendix_g.Config(dim=2))
    with pytest.raises(UserError, match="--equations"):
        appendix_g.validate(appendix_g.Config(equations=("eq19",)))


def test_colour_leakage_is_zero_iff_shifts_use_disjoint_channels():
    grey = 0.5
    base = np.array([0.5, 0.5, 0.9])
    assert colours.leakage(base, np.array([0.1, 0.8, 0.5]), grey) == 0.0
    other = np.array([0.1, 0.8, 0.6])
    assert colours.leakage(base, other, grey) == pytest.approx(0.1)
    np.testing.assert_allclose(colours.composition_target(base, other, grey), [0.1, 0.8, 0.9])


def test_colours_run(tmp_path):
    args = argparse.Namespace(seed=0, out=tmp_path, colour_std=0.03, tolerance=0.15, levels=5,
                              num_samples=64, num_steps=16)
    assert colours.run(args) == 0
    result = json.loads((tmp_path / "colours.json").read_text())
    assert (tmp_path / "colours.png").exists() and (tmp_path / "run.json").exists()
    assert set(result["colours"]) == set(colours.CLEVR_COLOURS) - {"yellow"}
    # the sampler reaches the closed-form composed mean yellow + c - grey (5 standard errors)
    assert result["max_sampler_mean_error"] < 5 * 0.03 / np.sqrt(64)
    # consistency: a colour with leakage far above the tolerance never composes
    for row in result["colours"].values():
        for rate, leak in zip(row["success_rate"], row["leakage"]):
            if leak > 0.15 + 5 * 0.03:
                assert rate < 0.05


def test_colours_bad_config_names_field():
    with pytest.raises(UserError, match="--tolerance"):
        colours.validate(colours.Config(tolerance=0.0))


def test_feature_space_orthogonal_vs_shear(tmp_path):
    args = argparse.Namespace(seed=0, out=tmp_path, shears=[1.0], sigmas=[0.01, 0.3], points=8,
                              component_scales=[1.0, 0.01],
                              num_samples=64, num_steps=8)
    assert feature_space.run(args) == 0
    result = json.loads((tmp_path / "feature_space.json").read_text())
    tol = result["tolerance"]
    for name in ("identity", "orthogonal"):
        tr = result["transforms"][name]
        for row in tr["per_sigma"]:  # noise commutes with A: exact at every sigma
            assert row["composition_error"] <= tol
            assert row["feature_view"]["conditional_locality_violation"] <= tol
            assert row["feature_view"]["pixel_locality_violation"] <= tol
    # T7: an orthogonal A that mixes blocks makes the pixel-space score non-local
    assert result["transforms"]["orthogonal"]["per_sigma"][-1]["pixel_space"][
        "conditional_locality_violation"] > 1e-4
    shear = result["transforms"]["shear 1"]
    assert shear["composition_error_sigma0"] <= 1e-8  # T6 equivariance without noise
    assert shear["per_sigma"][-1]["composition_error"] > 1e-4
    assert shear["per_sigma"][-1]["feature_view"]["conditional_locality_violation"] > 1e-4
    curves = result["narrowing"]["curves"]
    assert set(curves) == {"1.0", "0.01"}
    assert all(np.isfinite(c["composition_error"]).all() for c in curves.values())


def test_feature_space_bad_config_names_field():
    with pytest.raises(UserError, match="--shears"):
        feature_space.validate(feature_space.Config(shears=(-1.0,)))
