"""Planted bugs (issue 16 item 2): each wrong piece of mathematics must fail a check of
``localcomp verify``. A bug is planted by editing the source of the real function (the
edited text must still be found, so the test notices when the code moves) and swapping the
edited function in with ``monkeypatch`` for one test; the check that must catch it is run
through the registry, exactly as ``verify`` runs it."""

from __future__ import annotations

import functools
import inspect
import textwrap

import jax
import pytest

from numerics import blocks, checks, composition, families, gmm, locality
from numerics.checks import NUMERIC_CHECKS


def plant(monkeypatch, owner, name: str, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in the source of ``owner.name`` and install the result."""
    function = getattr(owner, name)
    source = textwrap.dedent(inspect.getsource(function))
    assert source.count(old) == 1, f"{old!r} not found once in {owner.__name__}.{name}"
    namespace = dict(inspect.getmodule(function).__dict__)
    exec(compile(source.replace(old, new), f"<planted {name}>", "exec"), namespace)
    monkeypatch.setattr(owner, name, namespace[name])


def run(name: str):
    result = NUMERIC_CHECKS.get(name).run()
    return result.passed, result.details


@pytest.fixture
def fresh_jit(monkeypatch):
    """The jitted batch functions of ``numerics.blocks`` trace ``gmm.score`` once per model
    structure: install fresh jitted copies for this test (traced with the planted function)
    and leave the originals' caches untouched, so no other test sees the bug or recompiles."""
    for name, function in (("batch_log_prob", blocks.log_prob), ("batch_score", blocks.score),
                           ("batch_hessian", blocks.hessian)):
        monkeypatch.setattr(blocks, name, jax.jit(jax.vmap(function, in_axes=(None, 0))))
    monkeypatch.setattr(checks, "_autodiff_and_denoisers",
                        functools.lru_cache(maxsize=None)(checks._autodiff_and_denoisers.__wrapped__))


def test_score_sign_flipped(monkeypatch, fresh_jit):
    plant(monkeypatch, gmm, "score", 'return -jnp.einsum("k,kd->d", r, prec_diff)',
          'return jnp.einsum("k,kd->d", r, prec_diff)')
    passed, details = run("t1_exact_scores_match_autodiff")
    assert not passed, details


def test_noise_variance_sigma_instead_of_sigma_squared(monkeypatch):
    plant(monkeypatch, gmm, "noised", "(sigma ** 2) * jnp.eye(d)", "sigma * jnp.eye(d)")
    passed, details = run("t3_noising_matches_gaussian_convolution")
    assert not passed, details


def test_locality_tolerance_loosened_a_million_times(monkeypatch):
    monkeypatch.setattr(locality, "TOLERANCE", locality.TOLERANCE * 1e6)
    passed, details = run("t1_measures_flag_violations_just_above_tolerance")
    assert not passed, details


@pytest.mark.parametrize("where", ["cross_block_mask", "partition"])
def test_pixel_locality_treats_two_blocks_as_one(monkeypatch, where):
    if where == "cross_block_mask":  # the measure's mask labels blocks 0 and 1 alike
        plant(monkeypatch, locality, "cross_block_mask", "label[coords] = b", "label[coords] = max(b - 1, 0)")
    else:  # the family's partition merges the first two blocks
        plant(monkeypatch, families.ConditionalFamily, "partition", "        if own:\n",
              "        if own and len(parts) == 1:\n            parts[0] = np.concatenate([parts[0], "
              "pixel_coords(own, self.channels)])\n        elif own:\n")
    passed, details = run("t1_pixel_measure_separates_every_pair_of_blocks")
    assert not passed, details


def test_t6_background_power(monkeypatch):
    plant(monkeypatch, checks, "_compose_gaussians", "prec = sum(P) - (k - 1) * Pb", "prec = sum(P) - k * Pb")
    passed, details = run("t6_gaussian_composition_matches_composed_score")
    assert not passed, details


def test_t7_pushforward_uses_a_instead_of_its_inverse(monkeypatch):
    plant(monkeypatch, checks, "pushforward_family", "Ainv = np.linalg.inv(A)", "Ainv = np.asarray(A)")
    passed, details = run("t7_pushforward_breaks_conditional_locality")
    assert not passed, details


def test_t5_checks_the_composition_operator_the_experiments_use(monkeypatch):
    plant(monkeypatch, composition, "compose_scores", "- (k - 1) * background_score", "- k * background_score")
    passed, details = run("t5_composition_operator")
    assert not passed, details
