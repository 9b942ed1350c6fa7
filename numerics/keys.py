"""Validation of JAX PRNG keys taken by the numerics functions (clear errors for a seed or a
batch of keys passed where one key is expected)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def check_key(key, name: str = "key"):
    """Return ``key`` if it is one JAX PRNG key (``jax.random.PRNGKey(seed)``, a ``uint32 [2]``
    array, or a typed ``jax.random.key(seed)``); ``TypeError`` otherwise. Works on traced
    keys (only the dtype and shape are inspected)."""
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == ():
            return key
        problem = f"a batch of {shape} typed keys"
    elif dtype is not None and dtype == jnp.uint32 and tuple(shape) == (2,):
        return key
    elif dtype is None:
        problem = f"{type(key).__name__} {key!r}"
    else:
        problem = f"an array of dtype {dtype} and shape {tuple(shape)}"
    raise TypeError(f"{name} must be one JAX PRNG key, e.g. jax.random.PRNGKey(seed) or "
                    f"jax.random.key(seed) (a seed is not a key); got {problem}")
