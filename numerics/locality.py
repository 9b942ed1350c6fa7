"""Locality measures of a conditional family, at points drawn from ``p_sigma(.|c_J)``.

For each noise level sigma and each admissible set ``J`` we draw ``n`` points from the noised
model and measure (all relative, dimensionless, 0 for an exactly CPC family up to rounding):

* pixel-locality violation: ``max_b ||H_b * X||_F / rms_b ||H_b||_F`` where ``H_b`` is the
  score Jacobian at point ``b`` and ``X`` masks the entries whose pixels lie in different
  blocks of ``family.partition(J)``;
* conditional-locality violation: ``max_b ||s(x_b|c_J) - s_ref(x_b)|| / rms_b ||s(x_b|c_J)||``
  where ``s_ref`` is ``s(.|{c_j})`` on ``M(c_j)`` (every ``j`` whose mask holds the pixel) and
  ``s(.|{})`` on ``B_J`` (the background must not depend on the conditioners);
* CPC gap: ``max_b |log p(x_b|c_J) - log p_null(x_{B_J}) - sum_j log p_{c_j}(x_{M(c_j)})|
  / (1 + rms_b |log p(x_b|c_J)|)`` with the closed-form marginals of the noised models
  (for ``J = {}``: the null model against the product of its own block marginals).

The score of a mixture is locally a single Gaussian's where one component dominates, so
points come from ``p_sigma`` itself and sigma is swept (SCIENCE.md pitfall).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from numerics import blocks
from numerics.families import EMPTY, ConditionalFamily, pixel_coords

DEFAULT_SIGMAS = (0.01, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0)
# float64 rounding in the closed forms is ~1e-13 relative (docs/numerics.md); any real
# violation we build or detect is >= 1e-4. The tolerance sits between, with margin both ways.
TOLERANCE = 1e-8


def _max(values) -> float:
    """Max that never drops a ``nan`` (Python's ``max`` does, depending on the order): a
    measure that came out ``nan`` must count as a failure, never as "local"."""
    values = [float(v) for v in values]
    return float("nan") if any(np.isnan(v) for v in values) else max(values)


def within(value: float, tolerance: float) -> bool:
    """``value <= tolerance`` with ``nan`` (or inf) counted as *not* within."""
    return bool(np.isfinite(value) and value <= tolerance)


def check_sigma(sigma, allow_zero: bool = False) -> float:
    """``sigma`` as a float; ``ValueError`` unless finite and > 0 (>= 0 with ``allow_zero``)."""
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        raise ValueError(f"sigma must be a number, got {sigma!r}") from None
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"sigma must be finite and {bound}, got {sigma!r}")
    return value


def _rms(values) -> float:
    return float(jnp.sqrt(jnp.mean(values ** 2)))


def cross_block_mask(partition, d: int) -> np.ndarray:
    """``[d, d]`` boolean: True where the two coordinates lie in different blocks."""
    label = np.empty(d, dtype=np.int64)
    for b, coords in enumerate(partition):
        label[coords] = b
    return label[:, None] != label[None, :]


def pixel_locality_violation(model, x, partition) -> float:
    """Relative cross-block Jacobian norm of ``model``'s score at points ``x [B, d]``."""
    H = blocks.batch_hessian(model, x)
    cross = jnp.asarray(cross_block_mask(partition, x.shape[-1]))
    cross_norm = jnp.sqrt(jnp.sum(jnp.where(cross, H, 0.0) ** 2, axis=(1, 2)))
    full_norm = jnp.sqrt(jnp.sum(H ** 2, axis=(1, 2)))
    return float(jnp.max(cross_norm)) / max(_rms(full_norm), 1e-300)


def conditional_locality_violation(family: ConditionalFamily, noised_models: dict, J, x) -> float:
    """Relative deviation of ``s(x|c_J)`` from the singleton / null scores on masks / background."""
    J = frozenset(J)
    if not J:
        return 0.0
    s = blocks.batch_score(noised_models[J], x)
    diffs = []
    for c in sorted(J):
        coords = family.mask_coords(c)
        s_single = blocks.batch_score(noised_models[frozenset([c])], x)
        diffs.append(s[:, coords] - s_single[:, coords])
    background = pixel_coords(family.background_pixels(J), family.channels)
    if len(background):
        s_null = blocks.batch_score(noised_models[EMPTY], x)
        diffs.append(s[:, background] - s_null[:, background])
    deviation = jnp.sqrt(sum(jnp.sum(d ** 2, axis=1) for d in diffs))
    return float(jnp.max(deviation)) / max(_rms(jnp.linalg.norm(s, axis=1)), 1e-300)


def _block_terms(family: ConditionalFamily, noised_models: dict, J):
    """(model, coordinates) pairs whose marginal log-densities CPC says sum to ``log p(.|c_J)``."""
    J = frozenset(J)
    if not J:
        return [(noised_models[EMPTY], coords) for coords in family.partition(EMPTY)]
    terms = [(noised_models[frozenset([c])], family.mask_coords(c)) for c in sorted(J)]
    background = pixel_coords(family.background_pixels(J), family.channels)
    if len(background):
        terms.append((noised_models[EMPTY], background))
    return terms


def cpc_gap(family: ConditionalFamily, noised_models: dict, J, x) -> float:
    """Relative gap between ``log p(x|c_J)`` and the sum of CPC block marginal log-densities."""
    logp = blocks.batch_log_prob(noised_models[frozenset(J)], x)
    total = sum(blocks.batch_log_prob(blocks.marginal(m, coords), x[:, coords])
                for m, coords in _block_terms(family, noised_models, J))
    return float(jnp.max(jnp.abs(logp - total))) / (1.0 + _rms(logp))


def required_sets(family: ConditionalFamily) -> None:
    """The measures need the null model and every singleton of a conditioner that appears,
    admissible sets (pairwise disjoint masks) and mixtures with weights that are positive
    and sum to 1 (unnormalized weights shift ``log p`` and so the CPC gap); ``ValueError``
    naming the set otherwise."""
    needed = {EMPTY} | {frozenset([c]) for J in family.models for c in J}
    missing = [sorted(J) for J in needed if J not in family.models]
    if missing:
        raise ValueError(f"models missing for conditioner sets {missing}")
    for J, model in family.models.items():
        seen: dict[int, str] = {}
        for c in sorted(J):
            for p in family.masks[c]:
                if p in seen:
                    raise ValueError(f"conditioner set {sorted(J)} is not admissible: the masks of "
                                     f"{seen[p]!r} and {c!r} overlap (pixel {p})")
                seen[p] = c
        for m in (model.mixtures if isinstance(model, blocks.BlockProduct) else (model,)):
            w = np.asarray(m.weights, dtype=float)
            if not (np.all(np.isfinite(w)) and np.all(w > 0) and abs(w.sum() - 1.0) <= 1e-9):
                raise ValueError(f"model of conditioner set {sorted(J)}: mixture weights must be "
                                 f"positive and sum to 1, got {w.tolist()}")


def measure_at_sigma(family: ConditionalFamily, sigma: float, key, n_points: int = 64) -> dict:
    """All three measures at one sigma: the max over admissible sets (``nan`` if any set's
    measure is ``nan``), plus the per-set values. ``sigma >= 0`` (0: the clean models);
    ``key`` a JAX PRNG key."""
    from numerics.keys import check_key

    sigma = check_sigma(sigma, allow_zero=True)
    check_key(key)
    noised_models = {J: blocks.noised(m, sigma) for J, m in family.models.items()}
    per_set = {}
    for J, k in zip(family.sets(), jax.random.split(key, len(family.models))):
        x = blocks.sample(noised_models[J], k, n_points)
        per_set[",".join(sorted(J)) or "{}"] = {
            "pixel_locality_violation": pixel_locality_violation(noised_models[J], x, family.partition(J)),
            "conditional_locality_violation": conditional_locality_violation(family, noised_models, J, x),
            "cpc_gap": cpc_gap(family, noised_models, J, x),
        }
    summary = {name: _max(v[name] for v in per_set.values())
               for name in ("pixel_locality_violation", "conditional_locality_violation", "cpc_gap")}
    return {"sigma": float(sigma), **summary, "per_set": per_set}


def classify(family: ConditionalFamily, sigmas=DEFAULT_SIGMAS, seed: int = 0, n_points: int = 64,
             tolerance: float | None = None, progress: bool = False) -> dict:
    """Measures over a sigma sweep and the overall booleans ``pixel_local``,
    ``conditionally_local`` (violation <= tolerance at every sigma; a ``nan`` violation is a
    failure) and ``cpc``. ``tolerance`` defaults to ``TOLERANCE`` (read at call time);
    every sigma must be finite and > 0."""
    tolerance = TOLERANCE if tolerance is None else float(tolerance)
    sigmas = [check_sigma(s) for s in sigmas]
    if not sigmas:
        raise ValueError("classify needs at least one sigma")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int (classify makes the PRNG key), got {seed!r}")
    required_sets(family)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(sigmas))
    iterator = zip(sigmas, keys)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(list(iterator), desc="sigma", leave=False)
    per_sigma = [measure_at_sigma(family, s, k, n_points) for s, k in iterator]
    ok = lambda name: all(within(r[name], tolerance) for r in per_sigma)  # noqa: E731
    return {
        "per_sigma": per_sigma,
        "pixel_local": ok("pixel_locality_violation"),
        "conditionally_local": ok("conditional_locality_violation"),
        "cpc": ok("cpc_gap"),
        "tolerance": tolerance,
        "n_points": n_points,
        "seed": seed,
    }
