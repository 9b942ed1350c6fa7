"""Feature-space families (T7): a CPC family in features ``z = A x`` seen in pixel space.

``p_x(x | c_J) = q(A x | c_J) · |det A|`` for an invertible linear ``A``; the pixel-space score is
``Aᵀ ∇_z log q(Ax | c_J)``.
"""

from __future__ import annotations

from typing import Sequence

import sympy as sp

from theory.blocks import score
from theory.cpc import Family


def pixel_space_family(feature_family: Family, A: sp.Matrix, name: str = "y") -> Family:
    """The family ``x ↦ log q(Ax | c_J) + log|det A|`` of a feature-space family ``q``."""
    A = sp.Matrix(A)
    n = len(feature_family.symbols)
    if A.shape != (n, n) or A.det() == 0:
        raise ValueError(f"A must be an invertible {n}x{n} matrix")
    x = tuple(sp.symbols(f"{name}0:{n}", real=True))
    z_of_x = dict(zip(feature_family.symbols, list(A * sp.Matrix(x))))

    def log_density(J: tuple[int, ...]) -> sp.Expr:
        return feature_family.log_density(J).subs(z_of_x, simultaneous=True) + sp.log(abs(A.det()))

    return Family(feature_family.masks, x, feature_family.params, log_density)


def conditional_score_difference(family: Family, j: int) -> list[sp.Expr]:
    """``s(x | {c_j}) − s(x | ∅)``: what conditioner ``j`` adds to the score."""
    return [sp.simplify(a - b) for a, b in zip(score(family.log_density((j,)), family.symbols),
                                               score(family.log_density(()), family.symbols))]


def support_outside(vector: Sequence[sp.Expr], block: Sequence[int]) -> list[int]:
    """Indices outside ``block`` where ``vector`` is not identically 0."""
    return [i for i, v in enumerate(vector) if i not in set(block) and v != 0]
