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
