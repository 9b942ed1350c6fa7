"""localcomp: theory verification for local mechanisms of compositional generalization.

The three layers are separate packages: ``theory`` (sympy), ``numerics`` (JAX) and
``empirical`` (PyTorch). This package holds the console script (``localcomp.cli``), the
``verify`` report and two leaf utilities every layer may import: ``localcomp.checking``
(named checks and their results) and ``localcomp.provenance`` (run metadata, atomic JSON).
Nothing here imports a layer at import time.
"""

__version__ = "0.1.0"
