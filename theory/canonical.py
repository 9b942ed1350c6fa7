"""Canonical objects the registered checks run on: >= 3 blocks, blocks of size >= 2,
several partitions (the tests draw random ones with hypothesis instead)."""

from __future__ import annotations

from theory.blocks import MaskSystem

# nine pixels, six conditioners; masks overlap so different sets give different partitions
MASKS = MaskSystem(9, ((0, 1), (2, 3), (4, 5), (1, 2), (6, 7), (3, 4, 5)))

# admissible conditioning sets; every one yields >= 3 blocks of size >= 2
CONDITIONING_SETS = ((0, 1, 2), (3, 2, 4), (0, 5, 4), (1, 4))

# plain partitions of range(n) for the block-product checks
PARTITIONS = (
    ((0, 1), (2, 3), (4, 5)),
    ((0, 3), (1, 4, 5), (2, 6)),
    ((0, 1, 2), (3, 4), (5, 6), (7, 8)),
)
