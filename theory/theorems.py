"""The theorems this package verifies (SCIENCE.md §4), each tied to its written proof."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Theorem:
    id: str
    title: str
    proof: str  # path relative to the repository root
    symbolic: bool = True  # False: no symbolic check applies (reported "not-applicable")


THEOREMS: tuple[Theorem, ...] = (
    Theorem("T1", "CPC implies local conditional scores", "proofs/T1_cpc_implies_lcs.md"),
    Theorem("T2", "Local conditional scores imply CPC", "proofs/T2_lcs_implies_cpc.md"),
    Theorem("T3", "Noise invariance of CPC", "proofs/T3_noise_invariance.md"),
    Theorem("T4", "Length generalization from sets of size <= 1", "proofs/T4_length_generalization.md"),
    Theorem("T5", "Factorized conditionals give a projective composition", "proofs/T5_factorized_composition.md"),
    Theorem("T6", "Reparameterization equivariance and non-smoothness", "proofs/T6_reparameterization.md"),
    Theorem("T7", "Feature-space local conditional scores", "proofs/T7_feature_space_lcs.md"),
    Theorem("T8", "Mean-shift orthogonality", "proofs/T8_mean_shift_orthogonality.md"),
    Theorem("T9", "Approximate CPC: locality violations shrink with noise", "proofs/T9_approximate_cpc.md",
            symbolic=False),
)

THEOREM_IDS = tuple(t.id for t in THEOREMS)


def theorem(theorem_id: str) -> Theorem:
    for t in THEOREMS:
        if t.id == theorem_id:
            return t
    raise KeyError(f"unknown theorem {theorem_id!r}; known: {', '.join(THEOREM_IDS)}")
