"""The theorems as properties: random partitions, dimensions and block counts feed the pure
verifying functions of ``theory``; deliberately wrong objects must make them fail."""

from __future__ import annotations

import sympy as sp
from hypothesis import given, strategies as st

from theory.blocks import (MaskSystem, block_product_log_density, coordinate_symbols,
                           cross_block_mixed_partials, separable_reconstruction_residual)
from theory.composition import compose_log, factorized_composition_residual, factorized_conditionals
from theory.cpc import coupled_family, cpc_family, cpc_residual, lcs_violations, score_identity_residual
from theory.features import conditional_score_difference, pixel_space_family, support_outside
from theory.symbolic_checks import (SYMBOLIC_CHECKS, equivariance_residual, gaussian_factorized_family,
                                    mean_shift_inner_products, noise_commutator, t6_diffeomorphism)


@st.composite
def partitions(draw, min_blocks=2, max_blocks=4, max_size=3):
    sizes = draw(st.lists(st.integers(1, max_size), min_size=min_blocks, max_size=max_blocks))
    order = draw(st.permutations(range(sum(sizes))))
    blocks, start = [], 0
    for s in sizes:
        blocks.append(tuple(sorted(order[start:start + s])))
        start += s
    return tuple(blocks)


@st.composite
def mask_systems(draw):
    """Masks = the object blocks of a random partition (last block is the background)."""
    blocks = draw(partitions(min_blocks=3, max_blocks=4, max_size=2))
    n = sum(len(b) for b in blocks)
    return MaskSystem(n, blocks[:-1])


@given(partitions())
def test_t1_block_products_have_no_cross_partials(blocks):
    x = coordinate_symbols(sum(len(b) for b in blocks))
    assert cross_block_mixed_partials(block_product_log_density(x, blocks), x, blocks) == []


@given(partitions())
def test_t1_coupled_density_fails(blocks):
    x = coordinate_symbols(sum(len(b) for b in blocks))
    coupled = block_product_log_density(x, blocks) + x[blocks[0][0]] * x[blocks[1][0]]
    assert cross_block_mixed_partials(coupled, x, blocks)


@given(mask_systems())
def test_t1_t2_t4_cpc_family(masks):
    family, J = cpc_family(masks), tuple(range(len(masks.masks)))
    assert lcs_violations(family, J) == []
    assert cpc_residual(family, J) == 0
    assert score_identity_residual(family, J) == []


@given(mask_systems())
def test_coupled_family_is_neither_lcs_nor_cpc(masks):
    family, J = coupled_family(masks), tuple(range(len(masks.masks)))
    assert lcs_violations(family, J)
    assert cpc_residual(family, J) != 0


@given(mask_systems())
def test_t4_identity_fails_for_an_interacting_family(masks):
    """Objects 0 and 1 interact only when both are present: sizes <= 1 cannot predict it."""
    from theory.cpc import Family

    base = cpc_family(masks)
    x = base.symbols

    def log_density(J):
        extra = x[masks.masks[0][0]] * x[masks.masks[1][0]] if {0, 1} <= set(J) else 0
        return base.log_density(J) + extra

    family = Family(masks, x, base.params, log_density)
    assert score_identity_residual(family, (0, 1))
    assert score_identity_residual(family, (0,)) == []


@given(partitions(min_blocks=2, max_blocks=3, max_size=2))
def test_t2_separable_reconstruction(blocks):
    n = sum(len(b) for b in blocks)
    x, a = coordinate_symbols(n), coordinate_symbols(n, "a")
    f = block_product_log_density(x, blocks)
    assert separable_reconstruction_residual(f, x, blocks, a) == 0
    coupled = f + sp.sin(x[blocks[0][0]] * x[blocks[-1][-1]])
    assert separable_reconstruction_residual(coupled, x, blocks, a) != 0


@given(partitions(min_blocks=2, max_blocks=4))
def test_t5_factorized_composition(blocks):
    x = coordinate_symbols(sum(len(b) for b in blocks))
    log_pb, log_ps = factorized_conditionals(x, blocks)
    assert factorized_composition_residual(compose_log, log_pb, log_ps, x, blocks) == 0

    def wrong_sign(lb, lps):
        return lb + sp.Add(*[lp + lb for lp in lps])
    assert factorized_composition_residual(wrong_sign, log_pb, log_ps, x, blocks) != 0


def test_t6_wrong_background_power_breaks_equivariance():
    x, y, inverse = t6_diffeomorphism()
    log_pb, log_ps = sp.Function("b")(*x), [sp.Function(f"p{i}")(*x) for i in range(2)]
    assert equivariance_residual(compose_log, log_pb, log_ps, x, y, inverse) == 0

    def wrong_power(lb, lps):  # background to the power -k instead of -(k-1)
        return sp.Add(*lps) - len(lps) * lb
    assert equivariance_residual(wrong_power, log_pb, log_ps, x, y, inverse) != 0


@given(st.integers(-3, 3).filter(lambda s: s != 0))
def test_t6_shear_never_commutes(s):
    c = sp.symbols("c0:3", real=True)
    cov, sigma = sp.Matrix([[c[0], c[1]], [c[1], c[2]]]), sp.Symbol("sigma", positive=True)
    assert not noise_commutator(sp.Matrix([[1, s], [0, 1]]), cov, sigma).is_zero_matrix
    assert noise_commutator(sp.Matrix([[0, 1], [1, 0]]), cov, sigma).is_zero_matrix


def test_t7_orthogonal_block_map_keeps_locality():
    masks = MaskSystem(4, ((0, 1),))
    z = cpc_family(masks)
    block_diag = sp.Matrix([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    mixing = sp.Matrix([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    assert support_outside(conditional_score_difference(pixel_space_family(z, block_diag), 0), (0, 1)) == []
    assert support_outside(conditional_score_difference(pixel_space_family(z, mixing), 0), (0, 1))


@given(partitions(min_blocks=3, max_blocks=3, max_size=2))
def test_t8_mean_shifts(blocks):
    x = coordinate_symbols(sum(len(b) for b in blocks))
    log_pb, log_ps = gaussian_factorized_family(x, blocks)
    assert mean_shift_inner_products(log_pb, log_ps, x) == {}
    # wrong object: both conditionals shift the same block -> not factorized, not orthogonal
    log_pb, log_ps = gaussian_factorized_family(x, blocks, shifted_blocks=[[blocks[1]], [blocks[1]]])
    assert mean_shift_inner_products(log_pb, log_ps, x)


def test_every_symbolic_check_passes_and_every_theorem_has_one():
    results = SYMBOLIC_CHECKS.run()
    assert {r.theorem for r in results} == {f"T{i}" for i in range(1, 9)}
    assert [r.name for r in results if not r.passed] == []
