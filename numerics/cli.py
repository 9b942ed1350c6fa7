"""``localcomp toy ...``: exact-score toy experiments (numerics layer).

``toy locality`` is defined in ``numerics.spec_cli``; every experiment registered in
``numerics.experiments.EXPERIMENTS`` becomes ``toy <name>``, and ``toy all`` runs them all.
``add_parser`` returns the ``toy`` subparsers so that ``localcomp.cli`` can add commands from
other layers (``toy learned`` from ``empirical``, which numerics must not import); those are
not part of ``toy all``.
"""


def add_parser(subparsers):
    from numerics.experiments import add_experiment_commands
    from numerics.spec_cli import add_locality_command

    p = subparsers.add_parser("toy", help="exact-score Gaussian-mixture experiments")
    toy = p.add_subparsers(dest="toy_command", required=True, metavar="EXPERIMENT")
    add_locality_command(toy)
    add_experiment_commands(toy)
    return toy
