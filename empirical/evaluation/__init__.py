"""Scoring trained runs: Kmax over location sets, Table 1 assembly, and the locality-Kmax correlation."""
