"""A seeded, stratified random sample of the mutants of a mutmut run (numerics stage).

    python sample.py --per-module 50 --chunk 0 --seed 0     (run in the mutmut work folder)

Each mutated module's mutant names (``mutants/**/*.py.meta``, sorted) are shuffled with
``random.Random(f"{seed}:{module}")``; chunk ``i`` is positions ``[i*N, (i+1)*N)`` of every
module's permutation. Chunks 0..c-1 together are a uniform random sample of ``c*N`` mutants
per module (fewer where a module has fewer), so the score can grow chunk by chunk and stays
an unbiased estimate of the module's full score. Prints one name per line.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def mutants_by_module(root: Path = Path("mutants")) -> dict[str, list[str]]:
    out = {}
    for meta in sorted(root.rglob("*.py.meta")):
        names = sorted(json.loads(meta.read_text())["exit_code_by_key"])
        if names:
            out[names[0].split(".x_")[0]] = names
    return out


def chunk(names_by_module: dict[str, list[str]], per_module: int, index: int, seed: int) -> list[str]:
    picked = []
    for module, names in sorted(names_by_module.items()):
        order = list(names)
        random.Random(f"{seed}:{module}").shuffle(order)
        picked += order[index * per_module:(index + 1) * per_module]
    return picked


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-module", type=int, required=True)
    parser.add_argument("--chunk", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("\n".join(chunk(mutants_by_module(), args.per_module, args.chunk, args.seed)))
