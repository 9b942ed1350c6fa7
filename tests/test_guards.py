"""Guards that keep wrong input from changing a verdict silently (issue 16 item 5, issue 15
items 1 and 4): admissible sets, disjoint masks, weight normalization, perturbation strength,
``nan`` measures, sigma and PRNG-key validation."""

import json
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from localcomp.cli import main
from numerics import blocks, gmm, locality
from numerics import families as F
from numerics.gmm import isotropic_mixture
from numerics.spec import family_to_spec, parse_spec
from numerics.strategies import apply_perturbation, perturbations
from theory import cpc as theory_cpc
from theory.blocks import MaskSystem, validate_blocks

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def small():
    """CPC family on 4 pixels: a={0}, b={1}, background {2, 3}; every subset admissible."""
    rng = np.random.default_rng(0)

    def mix(d):
        return isotropic_mixture(np.array([0.4, 0.6]), rng.normal(size=(2, d)), 0.1)

    masks = {"a": (0,), "b": (1,)}
    return F.cpc_family(4, 1, masks, {c: mix(1) for c in masks}, {c: mix(1) for c in masks}, mix(2))


# ------------------------------------------------------------------ theory/blocks, cpc_family
def test_theory_admissible_sets_are_those_with_disjoint_masks():
    masks = MaskSystem(5, ((0, 1), (1, 2), (3,)))
    assert masks.admissible(()) and masks.admissible((0,)) and masks.admissible((0, 2))
    assert masks.admissible((1, 2))
    assert not masks.admissible((0, 1)) and not masks.admissible((2, 0, 1))
    assert masks.partition((0, 2)) == ((0, 1), (3,), (2, 4))
    with pytest.raises(ValueError, match="not admissible"):
        masks.partition((0, 1))
    with pytest.raises(ValueError, match="not admissible"):
        theory_cpc.cpc_family(masks).log_density((0, 1))
    with pytest.raises(ValueError):
        MaskSystem(3, ((0,), ()))
    with pytest.raises(ValueError):
        MaskSystem(3, ((0, 3),))
    with pytest.raises(ValueError, match="partition"):
        validate_blocks(((0, 1), (1, 2)), 3)
    with pytest.raises(ValueError, match="partition"):
        validate_blocks(((0,), (2,)), 3)


def test_numeric_cpc_family_rejects_overlapping_masks():
    m1 = isotropic_mixture(np.ones(1), np.zeros((1, 2)), 0.1)
    with pytest.raises(ValueError, match="disjoint"):
        F.cpc_family(4, 1, {"a": (0, 1), "b": (1, 2)}, {"a": m1, "b": m1}, {"a": m1, "b": m1},
                     isotropic_mixture(np.ones(1), np.zeros((1, 1)), 0.1))


def test_classify_rejects_a_set_whose_masks_overlap(small):
    overlapping = replace(small, masks={"a": (0,), "b": (0, 1)})
    with pytest.raises(ValueError, match="not admissible.*overlap"):
        locality.classify(overlapping, sigmas=(0.5,), n_points=4)
    with pytest.raises(ValueError, match=r"\['a', 'b'\] is not admissible"):
        locality.classify(F.with_overlapping_masks(small, "a", "b"), sigmas=(0.5,), n_points=4)


# ----------------------------------------------------------------------- weight normalization
def test_spec_weights_are_normalized_so_scaling_them_changes_nothing(small):
    spec = family_to_spec(small)
    scaled = json.loads(json.dumps(spec))
    for model in scaled["models"]:
        for comp in model["components"]:
            comp["weight"] *= 7.0
    plain, big = parse_spec(spec), parse_spec(scaled)
    for J in plain.models:
        assert np.allclose(big.models[J].weights, plain.models[J].weights, rtol=1e-13)
        assert abs(float(np.sum(big.models[J].weights)) - 1) < 1e-12
    a = locality.classify(plain, sigmas=(0.3,), n_points=8)
    b = locality.classify(big, sigmas=(0.3,), n_points=8)
    assert (a["pixel_local"], a["conditionally_local"], a["cpc"]) == (True, True, True)
    for name in ("pixel_locality_violation", "conditional_locality_violation", "cpc_gap"):
        assert b["per_sigma"][0][name] == pytest.approx(a["per_sigma"][0][name], abs=1e-12)


def test_classify_rejects_unnormalized_weights_in_the_python_path(small):
    flat = blocks.expand(small.models[frozenset("ab")])
    family = F._replace_model(small, frozenset("ab"), flat._replace(weights=3 * flat.weights), "x3")
    with pytest.raises(ValueError, match="sum to 1"):
        locality.classify(family, sigmas=(0.5,), n_points=4)


# ----------------------------------------------------------------- perturbation strength, nan
def test_correlated_weights_and_apply_perturbation_reject_strength_at_least_one(small):
    with pytest.raises(ValueError, match="strength"):
        F.with_correlated_weights(small, frozenset("ab"), 1.0)
    with pytest.raises(ValueError, match="strength"):
        F.with_correlated_weights(small, frozenset("ab"), -1.5)
    for strength in (1.0, 1.5, float("nan"), 0.0):
        with pytest.raises(ValueError, match="strength"):
            apply_perturbation(small, "correlated_weights", strength)
    with pytest.raises(ValueError, match="strength"):
        perturbations(0.3, 1.0)
    w = F.with_correlated_weights(small, frozenset("ab"), 0.9).models[frozenset("ab")].weights
    assert np.all(np.asarray(w) > 0)


def test_a_nan_measure_is_never_local(small, monkeypatch):
    # negative weights (what strength >= 1 used to produce) make the measures nan
    flat = blocks.expand(small.models[frozenset("ab")])
    w = np.asarray(flat.weights).copy()
    w[0] = -w[0]
    bad = F._replace_model(small, frozenset("ab"), flat._replace(weights=jnp.asarray(w)), "neg")
    r = locality.measure_at_sigma(bad, 0.5, KEY, 8)
    assert np.isnan(r["per_set"]["a,b"]["cpc_gap"])
    assert np.isnan(r["cpc_gap"])  # the max over sets keeps the nan
    assert not locality.within(float("nan"), 1.0) and not locality.within(float("inf"), 1.0)

    real = locality.measure_at_sigma

    def nan_measures(*args, **kwargs):
        out = real(*args, **kwargs)
        return {**out, **{k: float("nan") for k in
                          ("pixel_locality_violation", "conditional_locality_violation", "cpc_gap")}}

    monkeypatch.setattr(locality, "measure_at_sigma", nan_measures)
    result = locality.classify(small, sigmas=(0.5,), n_points=4)
    assert not (result["pixel_local"] or result["conditionally_local"] or result["cpc"])


# --------------------------------------------------------------------------- sigma and keys
@pytest.mark.parametrize("sigma", [0.0, -0.5, float("inf"), float("nan")])
def test_classify_rejects_sigma_not_finite_positive(small, sigma):
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        locality.classify(small, sigmas=(0.5, sigma), n_points=4)


def test_measure_at_sigma_accepts_zero_rejects_negative(small):
    assert locality.measure_at_sigma(small, 0.0, KEY, 4)["sigma"] == 0.0
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        locality.measure_at_sigma(small, -0.1, KEY, 4)


@pytest.mark.parametrize("sigma", ["inf", "nan", "0", "-1", "x"])
def test_cli_rejects_bad_sigmas(tmp_path, capsys, small, sigma):
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps(family_to_spec(small)))
    with pytest.raises(SystemExit) as exit_info:
        main(["toy", "locality", str(spec), "--sigmas", "0.5", sigma])
    assert exit_info.value.code == 2
    assert "sigma must be" in capsys.readouterr().err


def test_cli_rejects_a_spec_set_with_overlapping_masks(tmp_path, capsys, small):
    spec = family_to_spec(small)
    spec["masks"]["b"] = [0, 1]
    path = tmp_path / "overlap.json"
    path.write_text(json.dumps(spec))
    assert main(["toy", "locality", str(path), "--json", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert "not admissible" in err and "overlap" in err and "conditioners" in err
    assert not (tmp_path / "o.json").exists()
    # overlapping masks are fine as long as no model conditions on both
    spec["models"] = [m for m in spec["models"] if len(m["conditioners"]) < 2]
    assert set(parse_spec(spec).masks["b"]) == {0, 1}


@pytest.mark.parametrize("bad", [0, 7, np.array([1.0, 2.0]), jnp.zeros(3, dtype=jnp.uint32),
                                 jax.random.split(KEY, 4), jax.random.split(jax.random.key(0), 2)])
def test_functions_taking_keys_reject_anything_but_one_key(small, bad):
    g = gmm.gaussian(jnp.zeros(2), jnp.eye(2))
    for call in (lambda: gmm.sample(g, bad, 2), lambda: blocks.sample(small.models[F.EMPTY], bad, 2),
                 lambda: locality.measure_at_sigma(small, 0.5, bad, 4)):
        with pytest.raises(TypeError, match="one JAX PRNG key"):
            call()


def test_keys_of_both_styles_and_int_seeds_work(small):
    g = gmm.gaussian(jnp.zeros(2), jnp.eye(2))
    assert gmm.sample(g, jax.random.key(1), 3).shape == (3, 2)
    assert gmm.sample(g, jax.random.PRNGKey(1), 3).shape == (3, 2)
    with pytest.raises(TypeError, match="seed must be an int"):
        locality.classify(small, sigmas=(0.5,), seed=KEY, n_points=4)
