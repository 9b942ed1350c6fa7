"""Assertions added to kill the meaningful surviving mutants of the mutation run (issue 14 item 4).

Each test names the behaviour a surviving mutant changed without any existing test noticing:
an error a guard must raise, a verdict a helper must return on a failing input, a fixture
that must be what its docstring says. ``results/mutation/README.md`` lists the survivors left
(equivalent mutants, one line each on why).
"""

from __future__ import annotations

import shutil

import pytest
import sympy as sp

from theory.blocks import (MaskSystem, base_point, block_function, coordinate_symbols,
                           cross_block_mixed_partials, product_marginal, validate_blocks)
from theory.composition import (gaussian_log_density, gaussian_parameters,
                                projective_composition_mismatches, pushforward_log_density)
from theory.cpc import Family, atoms, coupled_family, cpc_family, lcs_violations
from theory.features import pixel_space_family


# ------------------------------------------------------------------ theory.blocks guards
def test_coordinate_symbols_are_real_named_and_accept_one():
    x = coordinate_symbols(1)
    assert [str(s) for s in x] == ["x0"] and x[0].is_real is True
    assert [str(s) for s in coordinate_symbols(3)] == ["x0", "x1", "x2"]
    assert all(s.is_real is True for s in coordinate_symbols(3, "u"))
    with pytest.raises(ValueError, match="n must be >= 1"):
        coordinate_symbols(0)


def test_base_point_is_a_second_real_point_of_the_same_dimension():
    a = base_point(coordinate_symbols(3))
    assert [str(s) for s in a] == ["a0", "a1", "a2"] and all(s.is_real is True for s in a)
    assert [str(s) for s in base_point(coordinate_symbols(2), "b")] == ["b0", "b1"]


def test_validate_blocks_messages():
    with pytest.raises(ValueError, match="blocks must be non-empty"):
        validate_blocks([(0,), ()], 1)
    with pytest.raises(ValueError, match=r"do not partition range\(3\)"):
        validate_blocks([(0,), (1,)], 3)


def test_mask_system_rejects_empty_and_out_of_range_masks():
    with pytest.raises(ValueError, match="empty or outside range"):
        MaskSystem(3, ((),))
    with pytest.raises(ValueError, match="empty or outside range"):
        MaskSystem(3, ((0, 5),))
    with pytest.raises(ValueError, match="empty or outside range"):
        MaskSystem(3, ((3,),))  # n itself is outside range(n)
    with pytest.raises(ValueError, match="empty or outside range"):
        MaskSystem(3, ((-1,),))
    MaskSystem(3, ((0, 2),))  # the last pixel is inside


def test_admissible_remembers_every_earlier_mask():
    masks = MaskSystem(4, ((0, 1), (1, 2), (3,)))
    assert masks.admissible((0, 2))
    assert not masks.admissible((0, 1))
    assert not masks.admissible((0, 2, 1))  # mask 1 overlaps mask 0, seen two steps earlier
    with pytest.raises(ValueError, match=r"conditioning set \(0, 1\) is not admissible"):
        masks.partition((0, 1))


def test_cross_block_partials_reports_each_pair_once_with_i_below_k():
    x = coordinate_symbols(3)
    bad = cross_block_mixed_partials(x[0] * x[2] + x[1] ** 2, x, ((0, 1), (2,)))
    assert bad == [(0, 2, 1)]


def test_block_function_carries_its_extra_arguments():
    x, theta = coordinate_symbols(2), sp.Symbol("theta")
    f = block_function("h", x, (1,), (theta,))
    assert f.args == (x[1], theta)


def test_product_marginal_names_the_straddling_term():
    x = coordinate_symbols(2)
    with pytest.raises(ValueError, match=r"couples coordinates inside and outside \[0\]"):
        product_marginal(x[0] * x[1], x, (0,))


# ------------------------------------------------------------------ theory.cpc
def test_atoms_are_the_common_refinement():
    masks = MaskSystem(5, ((0, 1), (1, 2)))
    assert sorted(atoms(masks)) == [(0,), (1,), (2,), (3, 4)]


def test_cpc_family_uses_real_symbols_and_every_factor():
    masks = MaskSystem(4, ((0, 1),))
    family = cpc_family(masks)
    assert all(s.is_real is True for s in family.symbols + family.params)
    null, one = family.log_density(()), family.log_density((0,))
    assert set(family.symbols) <= null.free_symbols  # the null factors cover every pixel
    assert family.params[0] in one.free_symbols  # the object factor depends on its value
    assert family.params[0] not in null.free_symbols


def test_coupled_family_is_the_documented_coupling():
    masks = MaskSystem(5, ((0, 1), (2, 3)))
    base, coupled = cpc_family(masks), coupled_family(masks, strength=sp.Rational(1, 3))
    x, th = base.symbols, base.params
    assert sp.simplify(coupled.log_density(()) - base.log_density(())) == 0
    extra = sp.simplify(coupled.log_density((0, 1)) - base.log_density((0, 1)))
    assert sp.expand(extra - (x[0] * x[4] * th[0] + x[2] * x[4] * th[1]) / 3) == 0


def test_lcs_violations_keeps_pixel_locality_problems_and_reports_strings():
    masks = MaskSystem(4, ((0, 1),))
    base = cpc_family(masks)
    x = base.symbols
    # couples an object pixel with a background pixel, independent of any conditioner value
    family = Family(masks, x, base.params, lambda J: base.log_density(J) + x[0] * x[3])
    problems = lcs_violations(family, (0,))
    assert problems and all(isinstance(p, str) for p in problems)
    assert any(p.startswith("∂²/∂x0∂x3") for p in problems)
    # an object score that differs from the singleton's
    coupled = coupled_family(MaskSystem(6, ((0, 1), (2, 3))))
    problems = lcs_violations(coupled, (0, 1))
    assert all(isinstance(p, str) for p in problems)
    assert any(p.startswith("s_0(x|c_J) − s_0(x|{c_0})") for p in problems)


# ------------------------------------------------------------------ theory.composition
def test_gaussian_parameters_rejects_a_non_quadratic_log_density():
    x = coordinate_symbols(1)
    with pytest.raises(ValueError, match=r"not quadratic in x \(Hessian depends on x\)"):
        gaussian_parameters(-x[0] ** 4, x)


def test_projective_composition_mismatches_reports_the_wrong_windows():
    x = coordinate_symbols(2)
    phat = gaussian_log_density([0, 0], sp.eye(2), x)
    same = gaussian_log_density([0, 0], sp.eye(2), x)
    wider = gaussian_log_density([0, 0], 2 * sp.eye(2), x)  # same mean, other covariance
    shifted = gaussian_log_density([0, 1], sp.eye(2), x)  # same covariance, other mean
    windows = ((0,), (0,), (1,), (1,))
    assert projective_composition_mismatches(phat, [same, wider, same, shifted], windows, x) == [1, 3]
    assert projective_composition_mismatches(phat, [same], ((0, 1),), x) == []


def test_pushforward_has_the_inverse_jacobian_sign():
    x, y = coordinate_symbols(1), coordinate_symbols(1, "y")
    # y = 2x with x ~ N(0, 1) gives y ~ N(0, 4)
    pushed = pushforward_log_density(gaussian_log_density([0], sp.eye(1), x), x, y, [y[0] / 2])
    assert sp.simplify(pushed - gaussian_log_density([0], 4 * sp.eye(1), y)) == 0


def test_pushforward_in_the_same_coordinates_substitutes_simultaneously():
    x = coordinate_symbols(2)
    p = sp.Function("p")
    # a quarter turn written in the same coordinate names: A⁻¹(x) = (x1, −x0), det 1
    pushed = pushforward_log_density(p(*x), x, x, [x[1], -x[0]])
    assert sp.simplify(pushed - p(x[1], -x[0])) == 0


# ------------------------------------------------------------------ theory.features
def test_pixel_space_family_rejects_singular_and_non_square_maps():
    z = cpc_family(MaskSystem(2, ((0,),)))
    with pytest.raises(ValueError, match="A must be an invertible 2x2 matrix"):
        pixel_space_family(z, sp.Matrix([[1, 1], [1, 1]]))
    with pytest.raises(ValueError, match="A must be an invertible 2x2 matrix"):
        pixel_space_family(z, sp.Matrix([[1, 0, 0], [0, 1, 0]]))


def test_pixel_space_family_of_a_gaussian_is_the_pushed_gaussian():
    z = coordinate_symbols(2, "z")
    masks = MaskSystem(2, ((0,),))
    feature = Family(masks, z, (sp.Symbol("theta0", real=True),),
                     lambda J: gaussian_log_density([1, 0], sp.eye(2), z))
    A = sp.Matrix([[2, 0], [1, 1]])  # det 2: the log|det A| term matters
    pixel = pixel_space_family(feature, A)
    assert [str(s) for s in pixel.symbols] == ["y0", "y1"] and all(s.is_real for s in pixel.symbols)
    # x = A⁻¹ z: mean A⁻¹ μ, covariance A⁻¹ A⁻ᵀ
    Ainv = A.inv()
    expected = gaussian_log_density(list(Ainv * sp.Matrix([1, 0])), Ainv * Ainv.T, pixel.symbols)
    assert sp.simplify(pixel.log_density(()) - expected) == 0


def test_pixel_space_family_in_the_feature_coordinate_names():
    z = cpc_family(MaskSystem(3, ((0, 1),)))
    A = sp.Matrix([[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    same_names = pixel_space_family(z, A, name="x")
    assert same_names.symbols == z.symbols
    x = same_names.symbols
    expected = z.log_density((0,)).subs(dict(zip(z.symbols, list(A * sp.Matrix(x)))), simultaneous=True)
    assert sp.simplify(same_names.log_density((0,)) - expected) == 0


# ------------------------------------------------------------------ theory.theorems
def test_theorem_lookup():
    from theory.theorems import THEOREM_IDS, theorem

    assert theorem("T3").id == "T3" and theorem("T9").symbolic is False
    assert [theorem(t).id for t in THEOREM_IDS] == list(THEOREM_IDS)
    with pytest.raises(KeyError, match=r"unknown theorem 'T0'; known: T1, T2, .*T9"):
        theorem("T0")


# ------------------------------------------------------------------ theory.proofcheck
def _proof_root(tmp_path):
    from localcomp.provenance import repo_root

    shutil.copytree(repo_root() / "proofs", tmp_path / "proofs")
    return tmp_path


def _registries():
    from numerics.checks import NUMERIC_CHECKS
    from theory.symbolic_checks import SYMBOLIC_CHECKS

    return [SYMBOLIC_CHECKS, NUMERIC_CHECKS]


def test_proof_checker_flags_a_theorem_without_any_registered_check():
    from localcomp.checking import CheckRegistry
    from theory.proofcheck import check_proofs
    from localcomp.provenance import repo_root

    partial = CheckRegistry("symbolic")
    for registry in _registries():
        for check in registry.checks():
            if check.theorem != "T3":
                partial.register(check.theorem, check.statement, name=check.name)(check.function)
    problems = check_proofs(repo_root(), [partial])
    assert "T3: no symbolic or numeric check is registered" in problems


def test_proof_checker_goes_on_after_a_missing_proof_and_flags_a_proof_without_checks(tmp_path):
    from theory.proofcheck import check_proofs

    root = _proof_root(tmp_path)
    (root / "proofs" / "T4_length_generalization.md").unlink()
    (root / "proofs" / "T5_factorized_composition.md").write_text("A proof that cites nothing.\n",
                                                                  encoding="utf-8")
    problems = check_proofs(root, _registries())
    assert "T4: proof file proofs/T4_length_generalization.md is missing" in problems
    assert "T5: proofs/T5_factorized_composition.md names no check" in problems


# ------------------------------------------------------------------ theory.symbolic_checks
def test_every_case_fails_at_the_first_case_with_problems():
    from theory.symbolic_checks import _every_case

    def evaluate(case):
        return f"case {case}", ["bad"] if case == 2 else []

    assert _every_case((1, 2, 3), evaluate) == (False, "case 1\ncase 2\nbad")
    assert _every_case((1, 3), evaluate) == (True, "case 1\ncase 3")


def test_t6_fixture_is_the_inverse_of_the_documented_map():
    from theory.symbolic_checks import t6_diffeomorphism

    x, y, inverse = t6_diffeomorphism()
    assert len(x) == len(y) == len(inverse) == 3 and set(x).isdisjoint(y)
    A = [sp.sinh(x[0]), x[1] + x[0] ** 2, x[2] + x[1] * x[0]]  # A(x) from the docstring
    forward = [sp.simplify(a.subs(dict(zip(x, inverse)), simultaneous=True)) for a in A]
    assert forward == list(y)  # A(A⁻¹(y)) = y


def test_gaussian_factorized_family_has_one_conditional_per_object_block():
    from theory.symbolic_checks import gaussian_factorized_family, mean_shift_inner_products

    blocks = ((0, 1), (2, 3), (4, 5))
    x = coordinate_symbols(6)
    log_pb, log_ps = gaussian_factorized_family(x, blocks)
    assert len(log_ps) == 2
    # both conditionals shift the same block: the inner product is d0·d1 on that block
    log_pb, log_ps = gaussian_factorized_family(x, blocks, shifted_blocks=[[(2, 3)], [(2, 3)]])
    d0, d1 = sp.symbols("d0_0:6", real=True), sp.symbols("d1_0:6", real=True)
    assert mean_shift_inner_products(log_pb, log_ps, x) == {(0, 1): d0[2] * d1[2] + d0[3] * d1[3]}


def test_noised_mixture_factors_are_densities_on_their_blocks():
    from theory.symbolic_checks import _block_mixture, canonical_noised_mixture_factors

    t = sp.Symbol("t", positive=True)
    x = coordinate_symbols(6)
    factors = canonical_noised_mixture_factors(x, t)
    assert [f.free_symbols - {t} for f in factors] == [{x[0], x[1]}, {x[2], x[3]}, {x[4], x[5]}]
    one = _block_mixture(x[:2], t, [[0, 0]], [sp.eye(2)], [1])
    assert sp.simplify(one.subs({x[0]: 0, x[1]: 0, t: 1}) - 1 / (4 * sp.pi)) == 0
