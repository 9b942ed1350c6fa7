"""Exact-score toy experiments, each a ``toy <name>`` subcommand.

``EXPERIMENTS`` maps a name to an ``Experiment`` (help text, argument adder, runner).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

@dataclass(frozen=True)
class Experiment:
    name: str
    help: str
    run: Callable  # run(args) -> int
    add_arguments: Callable | None = None  # add_arguments(parser)


EXPERIMENTS: dict[str, Experiment] = {}


def add_experiment_commands(toy_subparsers) -> None:
    for experiment in EXPERIMENTS.values():
        p = toy_subparsers.add_parser(experiment.name, help=experiment.help)
        if experiment.add_arguments:
            experiment.add_arguments(p)
        p.set_defaults(func=experiment.run)
