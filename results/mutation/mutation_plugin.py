"""pytest plugin for the numerics mutation stage (loaded with ``-p mutation_plugin``).

mutmut forks every mutant's test run from a process that has already run the clean tests, so
JAX's in-memory trace and compilation caches would hand a mutant the traces of the unmutated
code. Clearing them at session start makes each mutant's tests trace its own code.
"""

import functools
import gc
import sys


def pytest_sessionstart(session):
    if "jax" in sys.modules:
        import jax

        jax.clear_caches()
    # functools caches of the package's own functions hold results computed by unmutated code
    for obj in gc.get_objects():
        if isinstance(obj, functools._lru_cache_wrapper) and getattr(obj, "__module__", "").startswith(
                ("numerics", "theory")):
            obj.cache_clear()
