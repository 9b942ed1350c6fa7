"""The composition operator, factorized conditionals, projective composition, push-forwards
and closed-form Gaussians (SCIENCE.md §3; 2502.04549 Defs. 4.1, 5.1, 5.2).

Densities are handled as log-densities (sympy expressions in coordinate symbols). The
composition operator is passed to the verifying functions as an argument, so a test can hand
them a wrong operator (a sign flip, a wrong background power) and watch them fail.
"""

from __future__ import annotations

from typing import Callable, Sequence

import sympy as sp

from theory.blocks import Blocks, block_function, product_marginal, validate_blocks

Compose = Callable[[sp.Expr, Sequence[sp.Expr]], sp.Expr]


def compose_log(log_background: sp.Expr, log_components: Sequence[sp.Expr]) -> sp.Expr:
    """``log C[p_b; p_1..p_k] = log p_b + Σ_i (log p_i − log p_b)`` (unnormalized, Def. 5.1)."""
    return log_background + sp.Add(*[lp - log_background for lp in log_components])


def factorized_conditionals(symbols: Sequence[sp.Symbol], blocks: Blocks) -> tuple[sp.Expr, list[sp.Expr]]:
    """Generic factorized conditionals (Def. 5.2) on ``blocks = (M_b, M_1, .., M_k)``.

    ``log p_b = Σ_B g_B(x_B)`` over all blocks; ``log p_i = h_i(x_{M_i}) + Σ_{B ≠ M_i} g_B(x_B)``
    (block ``M_i`` independent of the rest, the rest distributed as under ``p_b``).
    Each ``g_B``, ``h_i`` stands for a normalized log-density factor.
    """
    blocks = validate_blocks(blocks, len(symbols))
    g = [block_function(f"g{b}", symbols, blk) for b, blk in enumerate(blocks)]
    log_pb = sp.Add(*g)
    log_ps = [log_pb - g[i] + block_function(f"h{i}", symbols, blocks[i]) for i in range(1, len(blocks))]
    return log_pb, log_ps


def factorized_composition_residual(compose: Compose, log_pb: sp.Expr, log_ps: Sequence[sp.Expr],
                                    symbols: Sequence[sp.Symbol], blocks: Blocks) -> sp.Expr:
    """``log C[p_b; p_1..p_k] − [log p_b(x_{M_b}) + Σ_i log p_i(x_{M_i})]``, simplified (T5).

    0 means the composition *is* the product of block marginals; since every factor is
    normalized, its normalizer is ``Z = 1`` (no constant is left over).
    """
    target = product_marginal(log_pb, symbols, blocks[0])
    target += sp.Add(*[product_marginal(lp, symbols, blk) for lp, blk in zip(log_ps, blocks[1:])])
    return sp.simplify(compose(log_pb, log_ps) - target)


# --- Gaussians in closed form -------------------------------------------------------------

def gaussian_log_density(mean: Sequence[sp.Expr], cov: sp.Matrix, symbols: Sequence[sp.Symbol]) -> sp.Expr:
    """``log N(x; μ, Σ) = −½(x−μ)ᵀΣ⁻¹(x−μ) − ½ log det(2πΣ)``."""
    d = sp.Matrix([s - m for s, m in zip(symbols, mean)])
    cov = sp.Matrix(cov)
    return -(d.T * cov.inv() * d)[0] / 2 - sp.log((2 * sp.pi) ** len(symbols) * cov.det()) / 2


def gaussian_parameters(log_density: sp.Expr, symbols: Sequence[sp.Symbol]) -> tuple[sp.Matrix, sp.Matrix]:
    """``(μ, Σ)`` of a log-density that is quadratic in ``x``: ``Σ = (−∇²)⁻¹``, ``μ`` solves ``∇ = 0``.

    Raises ``ValueError`` when the Hessian depends on ``x`` (not a Gaussian).
    """
    hess = sp.hessian(log_density, symbols).applyfunc(sp.simplify)
    if hess.free_symbols & set(symbols):
        raise ValueError("log-density is not quadratic in x (Hessian depends on x)")
    precision = -hess
    grad_at_0 = sp.Matrix([sp.diff(log_density, s) for s in symbols]).subs({s: 0 for s in symbols})
    mean = precision.inv() * grad_at_0
    return mean.applyfunc(sp.simplify), precision.inv().applyfunc(sp.simplify)


def projective_composition_mismatches(log_phat: sp.Expr, log_ps: Sequence[sp.Expr],
                                      windows: Sequence[Sequence[int]],
                                      symbols: Sequence[sp.Symbol]) -> list[int]:
    """Indices ``i`` where ``Π_i # p̂ ≠ Π_i # p_i`` (Def. 4.1), ``Π_i`` the coordinate window.

    For Gaussians (closed form): compare the marginal mean and covariance on the window.
    """
    mu_hat, cov_hat = gaussian_parameters(log_phat, symbols)
    bad = []
    for i, (lp, w) in enumerate(zip(log_ps, windows)):
        mu, cov = gaussian_parameters(lp, symbols)
        w = list(w)
        same_mean = all(sp.simplify(mu_hat[a] - mu[a]) == 0 for a in w)
        same_cov = (cov_hat.extract(w, w) - cov.extract(w, w)).applyfunc(sp.simplify).is_zero_matrix
        if not (same_mean and same_cov):
            bad.append(i)
    return bad


# --- push-forwards and noise --------------------------------------------------------------

def pushforward_log_density(log_p: sp.Expr, x: Sequence[sp.Symbol], y: Sequence[sp.Symbol],
                            inverse: Sequence[sp.Expr]) -> sp.Expr:
    """``log (A#p)(y) = log p(A⁻¹(y)) + log|det ∂A⁻¹/∂y|`` for a diffeomorphism ``A``.

    ``inverse`` gives ``A⁻¹(y)`` as expressions in ``y``; the Jacobian determinant is assumed
    positive (true for the maps used here; its absolute value is taken symbolically otherwise).
    """
    jac = sp.Matrix(inverse).jacobian(list(y)).det()
    return log_p.subs(dict(zip(x, inverse)), simultaneous=True) + sp.log(sp.simplify(jac))


def gaussian_noised_cov(cov: sp.Matrix, sigma: sp.Expr) -> sp.Matrix:
    """Covariance of ``N(μ, Σ) * N(0, σ²I)``: ``Σ + σ²I`` (T3's closed form)."""
    return sp.Matrix(cov) + sigma ** 2 * sp.eye(sp.Matrix(cov).shape[0])


def heat_equation_residual(density: sp.Expr, symbols: Sequence[sp.Symbol], t: sp.Symbol) -> sp.Expr:
    """``∂_t u − ½ Δ_x u`` simplified; 0 iff ``u(x, t)`` solves the heat equation.

    ``p_σ = p * N(0, σ²I)`` is, with ``t = σ²``, the solution with initial value ``p``.
    """
    lap = sp.Add(*[sp.diff(density, s, 2) for s in symbols])
    return sp.simplify((sp.diff(density, t) - lap / 2) / density)
