"""The ``localcomp`` console script: one subcommand per job.

Each layer adds its own subcommands through an ``add_parser(subparsers)`` function in its
``cli`` module; heavy imports (jax, torch, mitsuba) happen inside the handlers, so
``localcomp --help`` stays fast. ``toy learned`` (learned vs exact denoisers) lives in
``empirical`` and is added here to numerics' ``toy`` subcommands, because ``numerics`` never
imports ``empirical``.
"""

from __future__ import annotations

import argparse
import sys

import localcomp
from localcomp.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    from empirical.cli import add_parser as add_clevr
    from empirical.cli.t2i import add_parser as add_t2i
    from empirical.toy.learned import add_command as add_toy_learned
    from empirical.toy.machine_check import add_command as add_toy_machine
    from localcomp.verify import add_parser as add_verify
    from numerics.cli import add_parser as add_toy

    parser = argparse.ArgumentParser(prog="localcomp", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"localcomp {localcomp.__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_verify(subparsers)
    toy = add_toy(subparsers)
    add_toy_learned(toy)
    add_toy_machine(toy)
    add_clevr(subparsers)
    add_t2i(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        print(f"localcomp {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
