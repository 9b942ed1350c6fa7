"""``localcomp toy locality SPEC.json``: locality of a user's own Gaussian-mixture family."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from localcomp.errors import UserError


def _sigma_list(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"sigma must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"sigma must be finite and > 0, got {text}")
    return value


def add_locality_command(toy_subparsers) -> None:
    from numerics.locality import DEFAULT_SIGMAS

    p = toy_subparsers.add_parser(
        "locality", help="pixel / conditional locality and CPC gap of a JSON-spec family",
        description="Measure pixel-locality violation, conditional-locality violation and the "
                    "CPC gap of the family in SPEC.json at points drawn from p_sigma, per sigma.")
    p.add_argument("spec", type=Path, help="JSON spec (see docs/numerics.md)")
    p.add_argument("--sigmas", type=_sigma_list, nargs="+", default=list(DEFAULT_SIGMAS),
                   help=f"noise levels (default {' '.join(map(str, DEFAULT_SIGMAS))})")
    p.add_argument("--json", type=Path, default=None, help="write the full result JSON here")
    p.add_argument("--points", type=int, default=64, help="points drawn per sigma and set (default 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    p.set_defaults(func=run_locality)


def run_locality(args) -> int:
    from localcomp.provenance import check_writable_file, refuse_overwrite, write_json_atomic
    from numerics.locality import classify
    from numerics.spec import load_spec

    if args.points < 2:
        raise UserError(f"--points: must be >= 2, got {args.points}")
    if args.json is not None:  # before the computation, not after it
        check_writable_file(args.json, "--json")
        refuse_overwrite([args.json], getattr(args, "force", False))
    family = load_spec(args.spec)  # raises UserError before anything is written
    result = classify(family, sigmas=args.sigmas, seed=args.seed, n_points=args.points,
                      progress=True)
    result = {"spec": str(args.spec), **result}
    print(f"{'sigma':>8s}  {'pixel_viol':>11s}  {'cond_viol':>11s}  {'cpc_gap':>11s}")
    for row in result["per_sigma"]:
        print(f"{row['sigma']:8.3g}  {row['pixel_locality_violation']:11.3e}  "
              f"{row['conditional_locality_violation']:11.3e}  {row['cpc_gap']:11.3e}")
    print(f"pixel_local={result['pixel_local']} conditionally_local={result['conditionally_local']} "
          f"cpc={result['cpc']} (tolerance {result['tolerance']:g})")
    if args.json is not None:
        write_json_atomic(args.json, result)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
