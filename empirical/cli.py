"""``localcomp clevr ...``: CLEVR rendering, training, sampling and evaluation (empirical layer).

Data jobs (``render``, ``detector``) are defined in ``empirical.data_cli``; model jobs
(``train``, ``sample``, ``kmax``, ``table``) in ``empirical.model_cli``; diagnostics (``locality``,
``correlate``) in ``empirical.diagnostics_cli``.
"""


def add_parser(subparsers) -> None:
    from empirical.data_cli import add_data_commands
    from empirical.diagnostics_cli import add_diagnostics_commands
    from empirical.model_cli import add_model_commands

    p = subparsers.add_parser("clevr", help="CLEVR data, denoisers, training and Kmax evaluation")
    clevr = p.add_subparsers(dest="clevr_command", required=True, metavar="JOB")
    add_data_commands(clevr)
    add_model_commands(clevr)
    add_diagnostics_commands(clevr)
