"""Hypothesis strategies for user property tests: mask systems, CPC families, perturbations.

* ``mask_systems()`` -> ``(pixels, masks)``: disjoint masks on a small 1-channel image,
  at least two pixels left as background.
* ``cpc_families()`` -> an exactly CPC ``ConditionalFamily`` (block products, every subset of
  conditioners admissible), 2 components per block with well separated means.
* ``perturbations(min_strength)`` -> ``(kind, strength)`` with ``kind`` in ``PIXEL_KINDS`` (must
  be caught by the pixel-locality measure) or ``CONDITIONAL_KINDS`` (pixel-local, caught by the
  conditional measure); ``apply_perturbation(family, kind, strength)`` builds the variant.

Sizes are fixed per draw structure (2-3 conditioners, 1-2 pixels each) so jit compilations
are shared between examples.

Each example compiles and runs JAX code, so Hypothesis' default 200 ms deadline fails spuriously:
``settings.load_profile(PROFILE)`` (or ``@settings(parent=settings.get_profile(PROFILE))``) uses
the ``localcomp`` profile registered here: no deadline, 20 examples, no too-slow health check.
Families print short (``ConditionalFamily.__repr__``), so falsifying examples stay readable.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from numerics import families as F
from numerics.gmm import isotropic_mixture

PROFILE = "localcomp"
settings.register_profile(PROFILE, deadline=None, max_examples=20, suppress_health_check=[HealthCheck.too_slow])

PIXEL_KINDS = ("correlated_weights",)
CONDITIONAL_KINDS = ("conditioner_shift", "background_shift")


@st.composite
def mask_systems(draw, max_conditioners: int = 3):
    """``(pixels, {id: pixel tuple})`` with disjoint masks and >= 2 background pixels."""
    k = draw(st.integers(2, max_conditioners))
    sizes = [draw(st.integers(1, 2)) for _ in range(k)]
    pixels = sum(sizes) + 2
    order = draw(st.permutations(range(pixels)))
    masks, start = {}, 0
    for i, size in enumerate(sizes):
        masks[f"c{i}"] = tuple(sorted(order[start:start + size]))
        start += size
    return pixels, masks


def _block_mixture(rng: np.random.Generator, d: int, spread: float):
    means = rng.normal(size=(2, d)) * spread
    weights = rng.uniform(0.3, 0.7)
    return isotropic_mixture(np.array([weights, 1 - weights]), means, rng.uniform(0.05, 0.3))


@st.composite
def cpc_families(draw, max_conditioners: int = 3):
    """An exactly CPC family over a random mask system (1 channel)."""
    pixels, masks = draw(mask_systems(max_conditioners))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    spread = draw(st.floats(0.5, 2.0))
    rest = pixels - sum(len(m) for m in masks.values())
    return F.cpc_family(
        pixels, 1, masks,
        null_blocks={c: _block_mixture(rng, len(m), spread) for c, m in masks.items()},
        singletons={c: _block_mixture(rng, len(m), spread) for c, m in masks.items()},
        background=_block_mixture(rng, rest, spread))


def perturbations(min_strength: float = 0.3, max_strength: float = 0.9):
    """``(kind, strength)``; ``strength`` in ``[min_strength, max_strength]``."""
    if not 0 < min_strength <= max_strength < 1:
        raise ValueError(f"perturbations needs 0 < min_strength <= max_strength < 1 (strength >= 1 "
                         f"makes correlated weights negative), got {min_strength}, {max_strength}")
    return st.tuples(st.sampled_from(PIXEL_KINDS + CONDITIONAL_KINDS),
                     st.floats(min_strength, max_strength))


def apply_perturbation(family: F.ConditionalFamily, kind: str, strength: float):
    """The perturbed family; the perturbation acts on the set of the first two conditioners.
    ``strength`` must be finite with ``0 < strength < 1`` (``ValueError``), as for the JSON
    path, whose weights must stay positive."""
    if not (np.isfinite(strength) and 0 < strength < 1):
        raise ValueError(f"perturbation strength must satisfy 0 < strength < 1, got {strength!r}")
    ids = sorted(family.masks)
    J = frozenset(ids[:2])
    if kind == "correlated_weights":
        return F.with_correlated_weights(family, J, strength)
    if kind == "conditioner_shift":
        return F.with_conditioner_shift(family, J, ids[1], strength)
    if kind == "background_shift":
        return F.with_background_shift(family, J, strength)
    raise ValueError(f"unknown perturbation kind {kind!r}")
