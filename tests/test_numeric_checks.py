"""Each numeric check of ``localcomp verify``, one test per check.

``tests/test_proofs.py`` runs them all through the CLI report; this file runs them one at a
time, so a failure names its check and a mutation of one check's code (the numerics mutation
stage, ``results/mutation/``) re-runs only the check that reaches it.
"""

from __future__ import annotations

import pytest

from numerics.checks import NUMERIC_CHECKS


@pytest.mark.parametrize("name", [c.name for c in NUMERIC_CHECKS.checks()])
def test_numeric_check_passes(name):
    result = NUMERIC_CHECKS.get(name).run()
    assert result.passed, f"{name}: {result.details}"
    assert result.details.strip(), f"{name} reports no measured numbers"
