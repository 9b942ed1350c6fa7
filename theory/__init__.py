"""Symbolic layer (sympy): definitions of masks, CPC, LCS, the composition operator and
projective composition, and named symbolic checks of every theorem step (T1-T8)."""
