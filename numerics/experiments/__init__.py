"""Exact-score toy experiments, each a ``toy <name>`` subcommand; ``toy all`` runs them all.

``EXPERIMENTS`` maps a name to an ``Experiment`` (help text, argument adder, runner). Every
experiment's parser accepts ``--seed`` and ``--out``; ``toy all --out DIR`` runs each one
with its defaults into ``DIR/<name>`` and prints a summary table.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from numerics.experiments.common import DEFAULT_RESULTS, refuse_existing_results


@dataclass(frozen=True)
class Experiment:
    name: str
    help: str
    run: Callable  # run(args) -> int
    add_arguments: Callable | None = None  # add_arguments(parser)


EXPERIMENTS: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    if experiment.name in EXPERIMENTS or experiment.name in ("all", "locality"):
        raise ValueError(f"experiment {experiment.name!r} registered twice or reserved")
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def _experiment_parser(experiment: Experiment) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"localcomp toy {experiment.name}")
    if experiment.add_arguments:
        experiment.add_arguments(parser)
    return parser


def _guarded(experiment: Experiment) -> Callable:
    """``experiment.run`` behind the overwrite check (``--force``), made before computing."""
    name = experiment.name

    def run(args: argparse.Namespace) -> int:
        refuse_existing_results(args, name)
        return EXPERIMENTS[name].run(args)
    return run


def run_all(args: argparse.Namespace) -> int:
    """Run every registered experiment with its defaults, each into ``args.out / name``;
    without ``--force``, refuses before running any when one of them has results there."""
    out = Path(args.out)
    force = ["--force"] if getattr(args, "force", False) else []
    parsed = {name: _experiment_parser(experiment).parse_args(
        ["--seed", str(args.seed), "--out", str(out / name), *force])
        for name, experiment in EXPERIMENTS.items()}
    for name, sub_args in parsed.items():
        refuse_existing_results(sub_args, name)
    rows = []
    for name, experiment in EXPERIMENTS.items():
        sub_args = parsed[name]
        print(f"== toy {name} -> {out / name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            status = int(experiment.run(sub_args) or 0)
        except Exception as error:  # report and go on: one broken experiment hides no other
            print(f"toy {name} failed: {type(error).__name__}: {error}", file=sys.stderr)
            status = 1
        rows.append((name, "ok" if status == 0 else f"failed ({status})",
                     time.perf_counter() - start))
    width = max([len(r[0]) for r in rows] + [10])
    print(f"{'experiment':{width}s}  status      seconds")
    for name, status, seconds in rows:
        print(f"{name:{width}s}  {status:10s}  {seconds:7.1f}")
    print(f"total {sum(r[2] for r in rows):.1f} s; outputs under {out}")
    return 0 if all(r[1] == "ok" for r in rows) else 1


def add_experiment_commands(toy_subparsers) -> None:
    for experiment in EXPERIMENTS.values():
        p = toy_subparsers.add_parser(experiment.name, help=experiment.help,
                                      description=experiment.help)
        if experiment.add_arguments:
            experiment.add_arguments(p)
        p.set_defaults(func=_guarded(experiment))
    p = toy_subparsers.add_parser("all", help="run every toy experiment with its defaults")
    p.add_argument("--seed", type=int, default=0, help="seed passed to every experiment")
    p.add_argument("--force", action="store_true", help="overwrite results already in --out")
    p.add_argument("--out", type=Path, default=DEFAULT_RESULTS,
                   help=f"parent folder, one subfolder per experiment (default {DEFAULT_RESULTS})")
    p.set_defaults(func=run_all)


# Register every experiment (import order = order of `toy all`).
from numerics.experiments import appendix_g, approximate_cpc, bumps, colours, feature_space  # noqa: E402,F401
