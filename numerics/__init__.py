"""Numerics layer (JAX, float64): Gaussian-mixture families with exact scores at every noise
level, Jacobian-based locality measures, exact-score sampling and the toy experiments."""

import jax

jax.config.update("jax_enable_x64", True)
