"""Conditional projective composition (CPC) families and the LCS predicate (SCIENCE.md §3).

A *family* maps a conditioning set ``J`` (indices into a :class:`MaskSystem`) to a log-density
``log p(x | c_J)``. :func:`cpc_family` builds the canonical CPC family from generic sympy
functions; :func:`coupled_family` is a deliberately non-CPC one for negative tests. The
predicates (:func:`lcs_violations`, :func:`cpc_residual`, :func:`score_identity_residual`) take
any family.

Background assumption (our choice, SCIENCE.md §3): the null distribution ``p(·|∅)`` factorizes
across every admissible partition. We realise it as a product over the *atoms* of the mask
system (maximal pixel sets on which every mask is constant), so ``B_J`` and every ``M(c_j)`` is a
union of atoms and the null marginal on it is the product of its atoms' factors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import sympy as sp

from theory.blocks import (MaskSystem, block_function, cross_block_mixed_partials, dependent_on,
                           nonzero_differences, product_marginal, score)


def atoms(masks: MaskSystem) -> tuple[tuple[int, ...], ...]:
    """Pixels grouped by the set of masks containing them (the common refinement)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i in range(masks.n):
        signature = tuple(j for j, m in enumerate(masks.masks) if i in m)
        groups.setdefault(signature, []).append(i)
    return tuple(tuple(g) for g in groups.values())


@dataclass(frozen=True)
class Family:
    """A conditional family: ``log_density(J)`` is ``log p(x | c_J)`` in ``symbols``.

    ``params[j]`` is the value symbol of conditioner ``j`` (e.g. its colour): conditional locality
    asks that background scores not depend on it.
    """

    masks: MaskSystem
    symbols: tuple[sp.Symbol, ...]
    params: tuple[sp.Symbol, ...]
    log_density: Callable[[tuple[int, ...]], sp.Expr]

    def score(self, J: Sequence[int]) -> list[sp.Expr]:
        return score(self.log_density(tuple(J)), self.symbols)


def _null_log_density(masks: MaskSystem, symbols, pixels: Sequence[int]) -> sp.Expr:
    """Σ over atoms inside ``pixels`` of the generic null factor ``g_a``."""
    inside = set(pixels)
    return sp.Add(*[block_function(f"g{a}", symbols, atom)
                    for a, atom in enumerate(atoms(masks)) if set(atom) <= inside])


def cpc_family(masks: MaskSystem) -> Family:
    """``log p(x|c_J) = Σ_a⊂B_J g_a(x_a) + Σ_j h_j(x_{M(c_j)}; θ_j)`` with generic ``g, h``."""
    symbols = tuple(sp.symbols(f"x0:{masks.n}", real=True))
    params = tuple(sp.symbols(f"theta0:{len(masks.masks)}", real=True))

    def log_density(J: tuple[int, ...]) -> sp.Expr:
        masks.partition(J)  # raises on an inadmissible set
        objects = [block_function(f"h{j}", symbols, masks.masks[j], (params[j],)) for j in J]
        return _null_log_density(masks, symbols, masks.background(J)) + sp.Add(*objects)

    return Family(masks, symbols, params, log_density)


def coupled_family(masks: MaskSystem, strength: sp.Expr = sp.Rational(1, 3)) -> Family:
    """A non-CPC family: the CPC one plus ``strength·x_i·x_k·θ_j`` coupling the first pixel of
    each object's mask to the first background pixel (present only when ``|J| >= 1``)."""
    base = cpc_family(masks)

    def log_density(J: tuple[int, ...]) -> sp.Expr:
        extra = 0
        bg = masks.background(J)
        for j in J:
            if bg:
                extra += strength * base.symbols[masks.masks[j][0]] * base.symbols[bg[0]] * base.params[j]
        return base.log_density(J) + extra

    return Family(masks, base.symbols, base.params, log_density)


def lcs_violations(family: Family, J: Sequence[int]) -> list[str]:
    """Every way the scores of ``family`` at ``c_J`` fail LCS (empty list: LCS holds).

    Pixel locality: no cross-block mixed partials. Conditional locality: for ``i ∈ M(c_j)``,
    ``s_i(x|c_J) = s_i(x|{c_j})``; for ``i ∈ B_J``, ``s_i(x|c_J)`` is free of every ``θ_j``.
    """
    J = tuple(J)
    blocks = family.masks.partition(J)
    s_J = family.score(J)
    problems = [f"∂²/∂x{i}∂x{k} = {d}" for i, k, d in
                cross_block_mixed_partials(family.log_density(J), family.symbols, blocks)]
    for j in J:
        for i, d in nonzero_differences(s_J, family.score((j,)), family.masks.masks[j]):
            problems.append(f"s_{i}(x|c_J) − s_{i}(x|{{c_{j}}}) = {d}")
    bg = family.masks.background(J)
    dependent = dependent_on([s_J[i] for i in bg], [family.params[j] for j in J])
    problems += [f"background score s_{bg[i]} depends on a conditioner" for i in dependent]
    return problems


def cpc_residual(family: Family, J: Sequence[int]) -> sp.Expr:
    """``log p(x|c_J) − [log p_∅(x_{B_J}) + Σ_j log p_{c_j}(x_{M(c_j)})]``, simplified.

    Marginals are taken with :func:`product_marginal` (factors assumed normalized); a density
    that is not a product across the needed set is reported as ``sp.nan`` (not CPC).
    """
    J = tuple(J)
    try:
        target = product_marginal(family.log_density(()), family.symbols, family.masks.background(J))
        for j in J:
            target += product_marginal(family.log_density((j,)), family.symbols, family.masks.masks[j])
    except ValueError:
        return sp.nan
    return sp.simplify(family.log_density(J) - target)


def score_identity_residual(family: Family, J: Sequence[int]) -> list[tuple[int, sp.Expr]]:
    """Nonzero entries of ``s(x|c_J) − s(x|∅) − Σ_j [s(x|{c_j}) − s(x|∅)]`` (T4)."""
    s_null = family.score(())
    predicted = list(s_null)
    for j in J:
        s_j = family.score((j,))
        predicted = [p + a - b for p, a, b in zip(predicted, s_j, s_null)]
    return nonzero_differences(family.score(tuple(J)), predicted, range(len(family.symbols)))
