"""Named numeric checks of T1-T9 (filled by the numerics layer)."""

from localcomp.checking import CheckRegistry

NUMERIC_CHECKS = CheckRegistry("numeric")
