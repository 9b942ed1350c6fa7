"""Named symbolic checks of T1-T8, registered on ``SYMBOLIC_CHECKS``.

Each check is a function of no arguments returning ``(passed, details)``; it applies a pure
verifying function from ``theory.blocks``, ``theory.cpc``, ``theory.composition`` or
``theory.features`` to the canonical objects of ``theory.canonical``. ``docs/theory.md`` says
what each check establishes and what it cannot.
"""

from __future__ import annotations

import sympy as sp

from localcomp.checking import CheckRegistry
from theory.blocks import (block_function, block_product_log_density, coordinate_symbols,
                           cross_block_mixed_partials, line_integral_reconstruction,
                           product_marginal, score, separable_reconstruction_residual)
from theory.canonical import CONDITIONING_SETS, MASKS, PARTITIONS
from theory.composition import (compose_log, factorized_composition_residual, factorized_conditionals,
                                gaussian_log_density, gaussian_noised_cov, gaussian_parameters,
                                heat_equation_residual, projective_composition_mismatches,
                                pushforward_log_density)
from theory.cpc import coupled_family, cpc_family, cpc_residual, lcs_violations, score_identity_residual
from theory.features import conditional_score_difference, pixel_space_family, support_outside

SYMBOLIC_CHECKS = CheckRegistry("symbolic")


def _n(partition) -> int:
    return sum(len(b) for b in partition)


def _every_case(cases, evaluate) -> tuple[bool, str]:
    """Apply ``evaluate(case) -> (summary line, problems)`` to each case; fail at the first case
    with problems, reporting the summaries so far and those problems."""
    lines = []
    for case in cases:
        line, problems = evaluate(case)
        lines.append(line)
        if problems:
            return False, "\n".join(lines + [str(p) for p in problems])
    return True, "\n".join(lines)


# ---------------------------------------------------------------- T1 CPC => LCS
@SYMBOLIC_CHECKS.register("T1", "block-product log-densities with generic factors have no "
                                "cross-block mixed partials")
def t1_cross_block_mixed_partials_vanish():
    def evaluate(blocks):
        x = coordinate_symbols(_n(blocks))
        bad = cross_block_mixed_partials(block_product_log_density(x, blocks), x, blocks)
        return f"partition {blocks}: {len(bad)} nonzero cross-block partials", bad
    return _every_case(PARTITIONS, evaluate)


@SYMBOLIC_CHECKS.register("T1", "a CPC family is LCS: block-diagonal score Jacobian, object scores "
                                "equal the singleton's, background scores free of conditioners")
def t1_cpc_family_is_lcs():
    family = cpc_family(MASKS)
    def evaluate(J):
        problems = lcs_violations(family, J)
        return f"c_J={J}, blocks {MASKS.partition(J)}: {len(problems)} LCS violations", problems
    return _every_case(CONDITIONING_SETS, evaluate)


# ---------------------------------------------------------------- T2 LCS => CPC
@SYMBOLIC_CHECKS.register("T2", "for generic f(u, v) the remainder R = f(u,v) − f(u,b) − f(a,v) + f(a,b) "
                                "vanishes on u=a and on v=b and has the mixed partials of f")
def t2_mixed_partial_remainder_identity():
    u, v = coordinate_symbols(2, "u"), coordinate_symbols(2, "v")
    a, b = coordinate_symbols(2, "a"), coordinate_symbols(2, "b")
    f = sp.Function("f")
    R = f(*u, *v) - f(*u, *b) - f(*a, *v) + f(*a, *b)
    at_a = sp.simplify(R.subs(dict(zip(u, a)), simultaneous=True))
    at_b = sp.simplify(R.subs(dict(zip(v, b)), simultaneous=True))
    mixed = [sp.simplify(sp.diff(R, ui, vk) - sp.diff(f(*u, *v), ui, vk)) for ui in u for vk in v]
    ok = at_a == 0 and at_b == 0 and all(m == 0 for m in mixed)
    return ok, f"R|u=a -> {at_a}; R|v=b -> {at_b}; ∂u∂v(R − f) -> {mixed}"


def _separable_examples(x):
    """Concrete separable (over ((0,1),(2,3),(4,5))) and coupled log-densities."""
    separable = (-sp.log(1 + x[0] ** 2 + x[1] ** 2) - x[2] ** 4 / 4 + x[2] * x[3] - x[3] ** 2
                 + sp.log(sp.cosh(x[4] - x[5])) - x[4] ** 2 - x[5] ** 2)
    coupled = separable + x[1] * x[2] / 5
    return separable, coupled


@SYMBOLIC_CHECKS.register("T2", "zero cross-block mixed partials <=> the log-density equals its "
                                "separable reconstruction f(a) + Σ_b [f(x_b, a_-b) − f(a)]")
def t2_separable_reconstruction():
    blocks = ((0, 1), (2, 3), (4, 5))
    x, a = coordinate_symbols(6), coordinate_symbols(6, "a")
    lines = []
    generic = block_product_log_density(x, blocks)
    ok = separable_reconstruction_residual(generic, x, blocks, a) == 0
    lines.append(f"generic block product: residual 0: {ok}")
    separable, coupled = _separable_examples(x)
    for label, f, should_separate in (("separable", separable, True), ("coupled", coupled, False)):
        local = not cross_block_mixed_partials(f, x, blocks)
        residual = separable_reconstruction_residual(f, x, blocks, a)
        lines.append(f"{label}: cross partials vanish={local}, reconstruction residual={residual}")
        ok = ok and local == should_separate and (residual == 0) == should_separate
    return ok, "\n".join(lines)


@SYMBOLIC_CHECKS.register("T2", "a block's log-marginal is recovered from its score by the path "
                                "integral ∫_0^1 s(a+t(x−a))·(x−a) dt, up to log q(a)")
def t2_path_integral_recovers_log_density():
    x, a = coordinate_symbols(2), coordinate_symbols(2, "a")
    log_q = -x[0] ** 4 / 4 - x[1] ** 2 / 2 + x[0] * x[1] / 3 + x[0] ** 3 * x[1] / 7
    rebuilt = line_integral_reconstruction(score(log_q, x), x, a)
    residual = sp.simplify(rebuilt - (log_q - log_q.subs(dict(zip(x, a)))))
    return residual == 0, f"∫ s·dx − (log q(x) − log q(a)) -> {residual}"


@SYMBOLIC_CHECKS.register("T2", "two normalized block marginals with equal scores are equal: the "
                                "path integral fixes log q up to a constant, normalization fixes it")
def t2_equal_scores_give_equal_marginals():
    x = coordinate_symbols(2)
    q = gaussian_log_density([1, -2], sp.Matrix([[2, 0], [0, 3]]), x)
    # a second density known only through its score (equal to q's) and normalization
    kappa = sp.Symbol("kappa", real=True)
    log_r = line_integral_reconstruction(score(q, x), x, (0, 0)) + kappa
    # the reconstructed log r − κ is a sum of one term per coordinate: integrate each factor
    terms = sp.Add.make_args(sp.expand(log_r - kappa))
    Z = sp.Integer(1)
    for xi in x:
        part = sp.Add(*[term for term in terms if term.has(xi)])
        Z *= sp.integrate(sp.exp(part), (xi, -sp.oo, sp.oo))
    Z *= sp.exp(sp.Add(*[term for term in terms if not term.has(*x)]))
    kappa_value = sp.simplify(-sp.log(sp.simplify(Z.rewrite(sp.erf))))
    residual = sp.simplify(log_r.subs(kappa, kappa_value) - q)
    return residual == 0, f"normalizer fixes κ = {kappa_value}; log r − log q -> {residual}"


@SYMBOLIC_CHECKS.register("T2", "LCS and CPC agree on families: the CPC family is LCS with zero CPC "
                                "residual; the coupled family is neither")
def t2_lcs_iff_cpc_on_families():
    lines, ok = [], True
    for label, fam, expect in (("cpc", cpc_family(MASKS), True), ("coupled", coupled_family(MASKS), False)):
        for J in CONDITIONING_SETS:
            lcs = not lcs_violations(fam, J)
            cpc = cpc_residual(fam, J) == 0
            ok = ok and lcs == cpc == expect
            lines.append(f"{label} c_J={J}: LCS={lcs} CPC={cpc}")
    return ok, "\n".join(lines)


# ---------------------------------------------------------------- T3 noise invariance
@SYMBOLIC_CHECKS.register("T3", "1-D Gaussian convolution: ∫ N(y; m, s²) N(x−y; 0, σ²) dy = N(x; m, s²+σ²)")
def t3_gaussian_convolution_closed_form():
    x, y, m = sp.symbols("x y m", real=True)
    s, sigma = sp.symbols("s sigma", positive=True)
    def normal(v, mean, var):
        return sp.exp(-(v - mean) ** 2 / (2 * var)) / sp.sqrt(2 * sp.pi * var)
    conv = sp.integrate(normal(y, m, s ** 2) * normal(x - y, 0, sigma ** 2), (y, -sp.oo, sp.oo))
    ratio = sp.powsimp(sp.simplify(conv / normal(x, m, s ** 2 + sigma ** 2)), combine="exp")
    residual = sp.exp(sp.cancel(ratio.args[0])) if isinstance(ratio, sp.exp) else ratio
    return residual == 1, f"convolution / N(x; m, s²+σ²) -> {residual}"


@SYMBOLIC_CHECKS.register("T3", "the isotropic noise kernel is a product over pixels (hence over blocks)")
def t3_noise_kernel_factorizes():
    x = coordinate_symbols(6)
    sigma = sp.Symbol("sigma", positive=True)
    full = gaussian_log_density([0] * 6, sigma ** 2 * sp.eye(6), x)
    per_pixel = sp.Add(*[gaussian_log_density([0], sp.Matrix([[sigma ** 2]]), [xi]) for xi in x])
    residual = sp.simplify(sp.expand_log(full - per_pixel, force=True))
    return residual == 0, f"log N(0, σ²I_6) − Σ_i log N(0, σ²) -> {residual}"


@SYMBOLIC_CHECKS.register("T3", "a product of per-block heat-equation solutions solves the full heat "
                                "equation (generic factors): noising commutes with the block product")
def t3_product_of_heat_solutions():
    t = sp.Symbol("t", positive=True)
    lines = []
    for blocks in PARTITIONS[:2]:
        x = coordinate_symbols(_n(blocks))
        factors = [sp.Function(f"u{b}")(*[x[i] for i in blk], t) for b, blk in enumerate(blocks)]
        product = sp.Mul(*factors)
        heat = {sp.Derivative(u, t): sp.Add(*[sp.diff(u, x[i], 2) for i in blk]) / 2
                for u, blk in zip(factors, blocks)}
        residual = sp.diff(product, t) - sp.Add(*[sp.diff(product, xi, 2) for xi in x]) / 2
        residual = sp.simplify(residual.subs(heat))
        lines.append(f"partition {blocks}: ∂_t Π u_b − ½Δ Π u_b (using each block's heat eq.) -> {residual}")
        if residual != 0:
            return False, "\n".join(lines)
    return True, "\n".join(lines)


def _block_mixture(xs, t, means, covs, weights):
    """Σ_c w_c N(x_block; μ_c, Σ_c + t I): the noised Gaussian-mixture factor (t = σ²)."""
    return sp.Add(*[w * sp.exp(gaussian_log_density(mu, gaussian_noised_cov(cov, sp.sqrt(t)), xs))
                    for mu, cov, w in zip(means, covs, weights)])


def canonical_noised_mixture_factors(x, t):
    """Three 2-D Gaussian-mixture block factors on ((0,1),(2,3),(4,5)), noised to level t = σ²."""
    blocks = ((0, 1), (2, 3), (4, 5))
    return [_block_mixture([x[i] for i in blk], t, *_params(k)) for k, blk in enumerate(blocks)]


@SYMBOLIC_CHECKS.register("T3", "each Gaussian component N(x_b; μ, Σ+σ²I) of the block mixture factors "
                                "solves the heat equation (t = σ²), hence so do the mixtures (linearity)")
def t3_mixture_components_solve_heat_equation():
    t = sp.Symbol("t", positive=True)
    x = coordinate_symbols(6)
    blocks = ((0, 1), (2, 3), (4, 5))
    lines, ok = [], True
    for k, blk in enumerate(blocks):
        xs = [x[i] for i in blk]
        means, covs, _ = _params(k)
        for mu, cov in zip(means, covs):
            u = sp.exp(gaussian_log_density(mu, gaussian_noised_cov(cov, sp.sqrt(t)), xs))
            r = heat_equation_residual(u, xs, t)
            lines.append(f"block {blk}, component mean {mu}: heat residual -> {r}")
            ok = ok and r == 0
    return ok, "\n".join(lines)


def _params(k):
    """The (means, covs, weights) of canonical factor k (shared with the initial-value check)."""
    return [
        ([[0, 1], [2, -1]], [sp.Matrix([[1, 0], [0, 2]]), sp.eye(2) / 2], [sp.Rational(1, 3), sp.Rational(2, 3)]),
        ([[1, 1]], [sp.Matrix([[2, 1], [1, 2]])], [1]),
        ([[0, 0], [1, 3]], [sp.eye(2), sp.eye(2) * 3], [sp.Rational(1, 2), sp.Rational(1, 2)]),
    ][k]


@SYMBOLIC_CHECKS.register("T3", "the noised block product of Gaussian mixtures keeps the masks: its "
                                "log-density has no cross-block mixed partials at symbolic σ")
def t3_noised_product_stays_local():
    t = sp.Symbol("t", positive=True)
    x = coordinate_symbols(6)
    blocks = ((0, 1), (2, 3), (4, 5))
    log_p = sp.Add(*[sp.log(u) for u in canonical_noised_mixture_factors(x, t)])
    bad = cross_block_mixed_partials(log_p, x, blocks)
    return not bad, f"{len(bad)} nonzero cross-block partials of log p_σ (σ² = t symbolic)"


# ---------------------------------------------------------------- T4 length generalization
@SYMBOLIC_CHECKS.register("T4", "CPC families satisfy s(x|c_J) = s(x|∅) + Σ_j [s(x|{c_j}) − s(x|∅)] "
                                "for admissible sets of every size")
def t4_score_identity():
    family = cpc_family(MASKS)
    def evaluate(J):
        bad = score_identity_residual(family, J)
        return f"|J|={len(J)} c_J={J}: {len(bad)} nonzero residual entries", bad
    return _every_case(((),) + tuple((J[0],) for J in CONDITIONING_SETS) + CONDITIONING_SETS, evaluate)


# ---------------------------------------------------------------- T5 factorized composition
@SYMBOLIC_CHECKS.register("T5", "factorized conditionals: C[p_b; p_1..p_k] = p_b(x_Mb) Π p_i(x_Mi) "
                                "with no leftover constant (Z = 1), generic factors")
def t5_factorized_composition_is_product():
    def evaluate(blocks):
        x = coordinate_symbols(_n(blocks))
        log_pb, log_ps = factorized_conditionals(x, blocks)
        r = factorized_composition_residual(compose_log, log_pb, log_ps, x, blocks)
        return f"blocks (M_b, M_1..) = {blocks}: residual -> {r}", [] if r == 0 else [r]
    return _every_case(PARTITIONS, evaluate)


def gaussian_factorized_conditionals(x, s2=sp.Rational(1, 4)):
    """Appendix-G-like Gaussians on M_1=(0,1), M_2=(2,3), M_b=(4,5): p_b = N(0, s²I);
    p_i shifts the mean on M_i only. Returns (log p_b, [log p_i], windows)."""
    windows = ((0, 1), (2, 3))
    log_pb = gaussian_log_density([0] * 6, s2 * sp.eye(6), x)
    log_ps = []
    for w in windows:
        mean = [1 if i == w[0] else 0 for i in range(6)]
        log_ps.append(gaussian_log_density(mean, s2 * sp.eye(6), x))
    return log_pb, log_ps, windows


@SYMBOLIC_CHECKS.register("T5", "Gaussian factorized conditionals: the composition is a normalized "
                                "Gaussian (Z = 1) and a projective composition (each window's marginal "
                                "is p_i's)")
def t5_gaussian_projective_composition():
    x = coordinate_symbols(6)
    log_pb, log_ps, windows = gaussian_factorized_conditionals(x)
    log_c = compose_log(log_pb, log_ps)
    mean, cov = gaussian_parameters(log_c, x)
    log_z = sp.simplify(sp.expand_log(log_c - gaussian_log_density(list(mean), cov, x), force=True))
    mismatches = projective_composition_mismatches(log_c, log_ps, windows, x)
    return log_z == 0 and not mismatches, (f"composed mean {list(mean)}; log C − log N(μ,Σ) -> {log_z}; "
                                          f"windows with wrong marginal: {mismatches}")


@SYMBOLIC_CHECKS.register("T5", "with the unconditional mixture as background (Bayes composition) the "
                                "composition is not the product: exhibit the discrepancy")
def t5_bayes_background_breaks_composition():
    x = coordinate_symbols(6)
    log_pb, log_ps, windows = gaussian_factorized_conditionals(x)
    log_pu = sp.log(sp.Add(*[sp.exp(lp) for lp in log_ps]) / len(log_ps))
    good, bayes = compose_log(log_pb, log_ps), compose_log(log_pu, log_ps)
    point = {xi: v for xi, v in zip(x, [1, 0, 1, 0, 0, 0])}  # both objects present
    grad_gap = [sp.N(sp.diff(bayes - good, xi).subs(point), 6) for xi in x]
    cross = sp.N(sp.diff(bayes, x[0], x[2]).subs({xi: 0 for xi in x}), 6)
    exhibited = any(abs(g) > 1e-6 for g in grad_gap) and abs(cross) > 1e-6
    return exhibited, (f"∇(log C_Bayes − log C_factorized) at x=(1,0,1,0,0,0): {grad_gap}; "
                       f"∂²log C_Bayes/∂x0∂x2 at 0: {cross} (nonzero: not a product across M_1, M_2)")


# ---------------------------------------------------------------- T6 reparameterization
def t6_diffeomorphism():
    """A(x) = (sinh x0, x1 + x0², x2 + x1 x0): non-linear, Jacobian det cosh x0 ≠ 1.
    Returns (x, y, inverse A⁻¹(y))."""
    x, y = coordinate_symbols(3), coordinate_symbols(3, "y")
    x0 = sp.asinh(y[0])
    x1 = y[1] - x0 ** 2
    return x, y, [x0, x1, y[2] - x1 * x0]


def equivariance_residual(compose, log_pb, log_ps, x, y, inverse) -> sp.Expr:
    """``log C[A#p_b; A#p_1..] − log A#C[p_b; p_1..]``, simplified (T6)."""
    left = compose(pushforward_log_density(log_pb, x, y, inverse),
                   [pushforward_log_density(lp, x, y, inverse) for lp in log_ps])
    right = pushforward_log_density(compose(log_pb, log_ps), x, y, inverse)
    return sp.simplify(sp.expand_log(left - right, force=True))


@SYMBOLIC_CHECKS.register("T6", "C[A#p⃗] = A#C[p⃗] for a non-linear diffeomorphism A and generic "
                                "densities (the Jacobian factors cancel)")
def t6_composition_equivariance():
    x, y, inverse = t6_diffeomorphism()
    log_pb = sp.Function("b")(*x)
    log_ps = [sp.Function(f"p{i}")(*x) for i in range(3)]
    r = equivariance_residual(compose_log, log_pb, log_ps, x, y, inverse)
    return r == 0, f"A = (sinh x0, x1 + x0², x2 + x1 x0), k = 3: residual -> {r}"


def noise_commutator(A: sp.Matrix, cov: sp.Matrix, sigma: sp.Expr) -> sp.Matrix:
    """Cov of (A#p)_σ minus cov of A#(p_σ) for Gaussian p: ``σ²(I − AAᵀ)`` in closed form."""
    return (gaussian_noised_cov(A * cov * A.T, sigma) - A * gaussian_noised_cov(cov, sigma) * A.T
            ).applyfunc(sp.simplify)


@SYMBOLIC_CHECKS.register("T6", "Gaussian noise commutes with a rotation but not with a shear "
                                "(covariance of (A#p)_σ vs A#(p_σ))")
def t6_noise_commutes_with_rotation_not_shear():
    theta, sigma = sp.Symbol("theta", real=True), sp.Symbol("sigma", positive=True)
    c = sp.symbols("c0:3", real=True)
    cov = sp.Matrix([[c[0], c[1]], [c[1], c[2]]])
    rotation = sp.Matrix([[sp.cos(theta), -sp.sin(theta)], [sp.sin(theta), sp.cos(theta)]])
    shear = sp.Matrix([[1, 1], [0, 1]])
    rot_gap, shear_gap = noise_commutator(rotation, cov, sigma), noise_commutator(shear, cov, sigma)
    ok = rot_gap.is_zero_matrix and not shear_gap.is_zero_matrix
    return ok, f"rotation: {rot_gap.tolist()}; shear: {shear_gap.tolist()}"


# ---------------------------------------------------------------- T7 feature-space LCS
T7_MATRIX = sp.Matrix([[1, 1, 0, 0, 1, 0], [0, 1, 1, 0, 0, 0], [0, 0, 1, 1, 0, 1],
                       [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 1]])  # det 1


@SYMBOLIC_CHECKS.register("T7", "a CPC family in z = A x (A linear, non-orthogonal): z-space conditional "
                                "score differences are block-local, x-space ones are not")
def t7_feature_space_lcs():
    from theory.blocks import MaskSystem
    masks = MaskSystem(6, ((0, 1), (2, 3)))
    z_family = cpc_family(masks)
    x_family = pixel_space_family(z_family, T7_MATRIX)
    lines, ok = [f"A·Aᵀ = I: {(T7_MATRIX * T7_MATRIX.T) == sp.eye(6)}"], True
    for j, mask in enumerate(masks.masks):
        z_out = support_outside(conditional_score_difference(z_family, j), mask)
        x_out = support_outside(conditional_score_difference(x_family, j), mask)
        lines.append(f"conditioner {j} (mask {mask}): z-space nonzero outside mask at {z_out}; "
                     f"x-space at {x_out}")
        ok = ok and not z_out and bool(x_out)
    z_lcs = not lcs_violations(z_family, (0, 1))
    x_lcs = not lcs_violations(x_family, (0, 1))
    lines.append(f"LCS at c_J=(0,1): z-space {z_lcs}, x-space {x_lcs}")
    return ok and z_lcs and not x_lcs, "\n".join(lines)


# ---------------------------------------------------------------- T8 mean-shift orthogonality
def mean_shift_inner_products(log_pb, log_ps, x) -> dict[tuple[int, int], sp.Expr]:
    """Nonzero ``(μ_i − μ_b)·(μ_j − μ_b)``, ``i < j``, for Gaussian log-densities (T8)."""
    mu_b = gaussian_parameters(log_pb, x)[0]
    shifts = [gaussian_parameters(lp, x)[0] - mu_b for lp in log_ps]
    out = {}
    for i in range(len(shifts)):
        for j in range(i + 1, len(shifts)):
            d = sp.simplify(shifts[i].dot(shifts[j]))
            if d != 0:
                out[(i, j)] = d
    return out


def gaussian_factorized_family(x, blocks, shifted_blocks=None):
    """Gaussian factorized conditionals with symbolic means: ``p_b`` block-diagonal Gaussian with
    mean ``m``; ``p_i`` replaces block ``shifted_blocks[i]``'s mean by ``m + d_i`` (default: block
    ``M_i = blocks[i+1]``)."""
    n = len(x)
    m = sp.symbols(f"m0:{n}", real=True)
    cov = sp.diag(*[sp.Matrix([[2, 1], [1, 2]]) if len(b) == 2 else sp.eye(len(b)) for b in blocks])
    order = [i for b in blocks for i in b]
    perm = sp.zeros(n, n)
    for r, i in enumerate(order):
        perm[i, r] = 1
    cov = perm * cov * perm.T
    log_pb = gaussian_log_density(m, cov, x)
    shifted_blocks = shifted_blocks or [[b] for b in blocks[1:]]
    log_ps = []
    for i, shifted in enumerate(shifted_blocks):
        d = sp.symbols(f"d{i}_0:{n}", real=True)
        moved = {k for blk in shifted for k in blk}
        log_ps.append(gaussian_log_density([m[k] + (d[k] if k in moved else 0) for k in range(n)], cov, x))
    return log_pb, log_ps


@SYMBOLIC_CHECKS.register("T8", "factorized conditionals: (μ_i − μ_b)·(μ_j − μ_b) = 0 for i ≠ j "
                                "(Gaussian, symbolic means; generic: p_i's marginal off M_i is p_b's)")
def t8_mean_shift_orthogonality():
    lines, ok = [], True
    for blocks in PARTITIONS[:2]:
        x = coordinate_symbols(_n(blocks))
        log_pb, log_ps = gaussian_factorized_family(x, blocks)
        nonzero = mean_shift_inner_products(log_pb, log_ps, x)
        lines.append(f"Gaussian, blocks {blocks}: nonzero inner products {nonzero}")
        ok = ok and not nonzero
        g_pb, g_ps = factorized_conditionals(x, blocks)
        same = all(sp.simplify(product_marginal(lp, x, blk) - product_marginal(g_pb, x, blk)) == 0
                   for i, lp in enumerate(g_ps) for b, blk in enumerate(blocks) if b != i + 1)
        lines.append(f"generic, blocks {blocks}: p_i and p_b share every marginal off M_i: {same}")
        ok = ok and same
    return ok, "\n".join(lines)
