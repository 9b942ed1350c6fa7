"""No LAPACK call inside the samplers' ``lax.scan`` (such loops froze XLA:CPU here, see
docs/toy-experiments.md "Why eq. 18 used to hang"); ``toy bumps`` on tiny settings; the T9
overlap family's strength controls its violation."""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from localcomp.errors import UserError
from numerics.experiments import appendix_g, bumps, feature_space

# factorizations and solves (names of the JAX primitives)
LAPACK_PRIMITIVES = {"cholesky", "triangular_solve", "eigh", "lu", "qr", "svd", "householder_product",
                     "schur", "eig", "tridiagonal_solve"}


def _sub_jaxprs(value):
    """Jaxprs held by one equation parameter (a jaxpr, a closed jaxpr, or a tuple of them)."""
    if hasattr(value, "eqns"):                                   # Jaxpr
        return [value]
    if hasattr(getattr(value, "jaxpr", None), "eqns"):           # ClosedJaxpr
        return [value.jaxpr]
    if isinstance(value, (tuple, list)):
        return [j for v in value for j in _sub_jaxprs(v)]
    return []


def lapack_in_loops(jaxpr, inside_loop: bool = False) -> set:
    """Names of LAPACK primitives that sit (at any depth) inside a ``scan`` / ``while``."""
    found = set()
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if inside_loop and name in LAPACK_PRIMITIVES:
            found.add(name)
        loop = inside_loop or name in ("scan", "while")
        for value in eqn.params.values():
            for sub in _sub_jaxprs(value):
                found |= lapack_in_loops(sub, loop)
    return found


def _bumps_parts(size: int = 4):
    from numerics import families as F
    from numerics.sampling import edm_sigmas

    masks, null, bump = bumps.bump_blocks(size)
    ids = sorted(masks)
    J = frozenset(ids[:2])
    model = F.cpc_family(size ** 2, 1, masks, {c: null for c in ids}, {c: bump for c in ids},
                         None, sets=[J]).models[J]
    return masks, null, bump, model, edm_sigmas(4)


def test_detector_flags_cholesky_in_a_heun_loop():
    """Control: the old bumps sampler (``blocks.denoise``, Cholesky per step) is flagged."""
    from numerics import blocks
    from numerics.sampling import heun_sample

    _, _, _, model, sigmas = _bumps_parts()
    denoise = jax.vmap(blocks.denoise, in_axes=(None, 0, None))
    old = jax.jit(lambda m, x: heun_sample(lambda y, s: denoise(m, y, s), x, sigmas))
    x0 = jnp.zeros((2, blocks.dim(model)))
    assert "cholesky" in lapack_in_loops(jax.make_jaxpr(old)(model, x0).jaxpr)


def test_bumps_samplers_have_no_lapack_in_loop():
    from numerics.composition import spectral_form

    masks, null, bump, model, sigmas = _bumps_parts()
    sample_null, sample_bayes = bumps.make_samplers(masks, null, bump, 16, sigmas)
    x0 = jnp.zeros((2, 16))
    assert lapack_in_loops(jax.make_jaxpr(sample_null)(spectral_form(model), x0).jaxpr) == set()
    assert lapack_in_loops(jax.make_jaxpr(sample_bayes)(jnp.ones(len(masks)), x0).jaxpr) == set()


def test_appendix_g_and_feature_space_samplers_have_no_lapack_in_loop():
    from numerics import gmm
    from numerics.composition import spectral_form

    config = appendix_g.Config(dim=4, num_steps=4)
    family = appendix_g.families(config)["eq18"]
    for background in ("cluttered", "bayes"):
        sampler = appendix_g.make_sampler(family, background, config)
        jaxpr = jax.make_jaxpr(sampler)(jnp.ones(4), jnp.zeros((2, 4))).jaxpr
        assert lapack_in_loops(jaxpr) == set(), background
    spec = spectral_form(gmm.gaussian(jnp.zeros(3), jnp.eye(3)))
    jaxpr = jax.make_jaxpr(feature_space._heun())(spec, (spec, spec), jnp.zeros((2, 3)),
                                                   jnp.linspace(1.0, 0.0, 5)).jaxpr
    assert lapack_in_loops(jaxpr) == set()


def test_bumps_tiny_run(tmp_path):
    args = argparse.Namespace(seed=0, out=tmp_path, size=4, max_objects=2, samples=8, steps=18,
                              sigma_max=80.0)
    assert bumps.run(args) == 0
    result = json.loads((tmp_path / "bumps.json").read_text())
    assert [r["K"] for r in result["rows"]] == [0, 1, 2]
    assert json.loads((tmp_path / "run.json").read_text())["config"]["sigma_max"] == 80.0
    # exact CPC score, separated bumps (std 0.1 vs brightness 1): the counts come out right
    assert all(r["success_rate"] >= 0.75 for r in result["rows"])


@pytest.mark.parametrize("field, value", [("sigma_max", 0.001), ("size", 5), ("samples", 0)])
def test_bumps_bad_config_names_field(tmp_path, field, value):
    settings = dict(seed=0, out=tmp_path / "out", size=4, max_objects=2, samples=2, steps=4,
                    sigma_max=80.0)
    settings[field] = value
    with pytest.raises(UserError, match="--" + field.replace("_", "-")):
        bumps.run(argparse.Namespace(**settings))
    assert not (tmp_path / "out").exists()


def test_overlap_family_violation_grows_with_strength_and_vanishes_at_zero():
    from numerics.checks import overlap_family
    from numerics.locality import TOLERANCE, measure_at_sigma

    key = jax.random.PRNGKey(0)
    violation = {}
    for strength in (0.0, 0.25, 1.0):
        r = measure_at_sigma(overlap_family(strength), 0.2, key, 16)
        violation[strength] = max(r["pixel_locality_violation"], r["conditional_locality_violation"])
    assert violation[0.0] <= TOLERANCE          # strength 0 is exactly CPC
    assert 1e-4 < violation[0.25] < violation[1.0]
