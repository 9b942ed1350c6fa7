"""Named symbolic checks of T1-T8 (filled by the theory layer)."""

from localcomp.checking import CheckRegistry

SYMBOLIC_CHECKS = CheckRegistry("symbolic")
