"""Mask systems and block partitions; block-product log-densities with generic factors.

A *block partition* of ``n`` coordinates ``x_0..x_{n-1}`` is a tuple of disjoint, non-empty,
sorted index tuples covering ``range(n)``. Under CPC (SCIENCE.md §3) the blocks of an admissible
conditioning set ``c_J`` are the masks ``M(c_j)`` and the background ``B_J``.

A *log-density* is a sympy expression in the coordinate symbols; the verifying functions here
(:func:`cross_block_mixed_partials`, :func:`separable_reconstruction_residual`) take any such
expression, so a test can hand them a deliberately coupled density and see them fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import sympy as sp

Blocks = tuple[tuple[int, ...], ...]


def coordinate_symbols(n: int, name: str = "x") -> tuple[sp.Symbol, ...]:
    """``n`` real symbols ``x0..x{n-1}``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return tuple(sp.symbols(f"{name}0:{n}", real=True))


def validate_blocks(blocks: Sequence[Sequence[int]], n: int) -> Blocks:
    """Return ``blocks`` as sorted tuples; raise ``ValueError`` unless they partition ``range(n)``."""
    out = tuple(tuple(sorted(b)) for b in blocks)
    flat = [i for b in out for i in b]
    if any(len(b) == 0 for b in out):
        raise ValueError("blocks must be non-empty")
    if sorted(flat) != list(range(n)):
        raise ValueError(f"blocks {out} do not partition range({n}) (disjoint, covering)")
    return out


@dataclass(frozen=True)
class MaskSystem:
    """Conditioner labels with masks (pixel index sets) on ``n`` pixels.

    ``masks[j]`` is ``M(c_j)``; a subset ``J`` of labels is admissible when its masks are
    pairwise disjoint; its partition is ``(M(c_j) for j in J) + (B_J,)`` with the background
    ``B_J = [n] \\ ∪ M(c_j)`` (omitted when empty).
    """

    n: int
    masks: tuple[tuple[int, ...], ...]

    def __post_init__(self):
        for m in self.masks:
            if not m or any(not 0 <= i < self.n for i in m):
                raise ValueError(f"mask {m} is empty or outside range({self.n})")

    def admissible(self, J: Sequence[int]) -> bool:
        seen: set[int] = set()
        for j in J:
            if seen & set(self.masks[j]):
                return False
            seen |= set(self.masks[j])
        return True

    def background(self, J: Sequence[int]) -> tuple[int, ...]:
        used = {i for j in J for i in self.masks[j]}
        return tuple(i for i in range(self.n) if i not in used)

    def partition(self, J: Sequence[int]) -> Blocks:
        if not self.admissible(J):
            raise ValueError(f"conditioning set {tuple(J)} is not admissible (masks overlap)")
        blocks = [tuple(sorted(self.masks[j])) for j in J]
        bg = self.background(J)
        if bg:
            blocks.append(bg)
        return validate_blocks(blocks, self.n)


def block_function(name: str, symbols: Sequence[sp.Symbol], block: Sequence[int],
                   extra: Sequence[sp.Expr] = ()) -> sp.Expr:
    """A generic sympy ``Function`` ``name(x_block..., *extra)``."""
    return sp.Function(name)(*[symbols[i] for i in block], *extra)


def block_product_log_density(symbols: Sequence[sp.Symbol], blocks: Blocks, prefix: str = "f") -> sp.Expr:
    """``log p(x) = Σ_b f_b(x_{M_b})`` with generic functions: the log of a block product."""
    return sp.Add(*[block_function(f"{prefix}{b}", symbols, blk) for b, blk in enumerate(blocks)])


def block_index(blocks: Blocks) -> dict[int, int]:
    """Coordinate -> index of its block."""
    return {i: b for b, blk in enumerate(blocks) for i in blk}


def score(log_density: sp.Expr, symbols: Sequence[sp.Symbol]) -> list[sp.Expr]:
    """``∇_x log p``: one expression per coordinate."""
    return [sp.diff(log_density, s) for s in symbols]


def cross_block_mixed_partials(log_density: sp.Expr, symbols: Sequence[sp.Symbol],
                               blocks: Blocks) -> list[tuple[int, int, sp.Expr]]:
    """Every nonzero ``∂²log p/∂x_i∂x_k`` with ``i < k`` in different blocks, as ``(i, k, expr)``.

    Empty exactly when the Hessian of ``log p`` is block-diagonal (pixel locality).
    """
    where = block_index(validate_blocks(blocks, len(symbols)))
    nonzero = []
    for i in range(len(symbols)):
        for k in range(i + 1, len(symbols)):
            if where[i] != where[k]:
                d = sp.simplify(sp.diff(log_density, symbols[i], symbols[k]))
                if d != 0:
                    nonzero.append((i, k, d))
    return nonzero


def nonzero_differences(a: Sequence[sp.Expr], b: Sequence[sp.Expr],
                        indices: Sequence[int]) -> list[tuple[int, sp.Expr]]:
    """``(i, a_i - b_i)`` for every ``i in indices`` where the difference does not simplify to 0."""
    out = []
    for i in indices:
        d = sp.simplify(a[i] - b[i])
        if d != 0:
            out.append((i, d))
    return out


def dependent_on(expressions: Sequence[sp.Expr], parameters: Sequence[sp.Symbol]) -> list[int]:
    """Indices of the expressions that depend on any of ``parameters`` (after simplification)."""
    return [i for i, e in enumerate(expressions)
            if any(sp.simplify(sp.diff(e, p)) != 0 for p in parameters)]


def base_point(symbols: Sequence[sp.Symbol], name: str = "a") -> tuple[sp.Symbol, ...]:
    return coordinate_symbols(len(symbols), name)


def separable_reconstruction(log_density: sp.Expr, symbols: Sequence[sp.Symbol], blocks: Blocks,
                             base: Sequence[sp.Expr]) -> sp.Expr:
    """``f(a) + Σ_b [f(x_b, a_{-b}) − f(a)]``: the additively separable candidate for ``f``.

    ``f(x_b, a_{-b})`` is ``f`` with every coordinate outside block ``b`` set to the base point.
    """
    at_base = log_density.subs(dict(zip(symbols, base)), simultaneous=True)
    total = at_base
    for blk in blocks:
        others = {symbols[i]: base[i] for i in range(len(symbols)) if i not in blk}
        total += log_density.subs(others, simultaneous=True) - at_base
    return total


def separable_reconstruction_residual(log_density: sp.Expr, symbols: Sequence[sp.Symbol],
                                      blocks: Blocks, base: Sequence[sp.Expr]) -> sp.Expr:
    """``f − separable_reconstruction(f)``, simplified: 0 iff ``f`` is additively separable."""
    return sp.simplify(log_density - separable_reconstruction(log_density, symbols, blocks, base))


def line_integral_reconstruction(score_vector: Sequence[sp.Expr], symbols: Sequence[sp.Symbol],
                                 base: Sequence[sp.Expr]) -> sp.Expr:
    """``∫_0^1 s(a + t(x−a))·(x−a) dt``: recovers ``f(x) − f(a)`` from the score ``s = ∇f``."""
    t = sp.Symbol("t_path", real=True)
    path = {s: b + t * (s - b) for s, b in zip(symbols, base)}
    integrand = sp.Add(*[si.subs(path, simultaneous=True) * (s - b)
                         for si, s, b in zip(score_vector, symbols, base)])
    return sp.integrate(sp.expand(integrand), (t, 0, 1))


def coordinates_of(expr: sp.Expr, symbols: Sequence[sp.Symbol]) -> set[int]:
    """Indices of the coordinate symbols ``expr`` depends on."""
    free = expr.free_symbols
    return {i for i, s in enumerate(symbols) if s in free}


def product_marginal(log_density: sp.Expr, symbols: Sequence[sp.Symbol], subset: Sequence[int]) -> sp.Expr:
    """Log-marginal on ``x_subset`` of a product of *normalized* factors.

    ``log_density`` must be a sum of terms, each depending only on coordinates inside
    ``subset`` or only outside it (each term a normalized density factor, or a constant);
    then, by Fubini, the marginal is the sum of the inside terms. Raises ``ValueError`` when a
    term straddles ``subset`` — the density is then not a product across it.
    """
    inside = set(subset)
    kept = []
    for term in sp.Add.make_args(sp.expand(log_density, deep=False)):
        coords = coordinates_of(term, symbols)
        if coords and coords <= inside:
            kept.append(term)
        elif coords & inside:
            raise ValueError(f"term {term} couples coordinates inside and outside {sorted(inside)}")
    return sp.Add(*kept)
