"""``localcomp clevr ...``: CLEVR rendering, training, sampling and evaluation (empirical layer).

Data jobs (``render``, ``detector``) are defined in ``empirical.cli.data``; model jobs
(``train``, ``sample``, ``kmax``, ``table``) in ``empirical.cli.model``; diagnostics (``locality``,
``correlate``) in ``empirical.cli.diagnostics``; the colour-conditioned measurements (``colour``)
in ``empirical.cli.colour``; ``agreement`` (r² between denoisers) in
``empirical.cli.agreement``; the whole validation (``validate``) in
``empirical.cli.validate`` over ``empirical.validation``.
"""


def add_parser(subparsers) -> None:
    from empirical.cli.agreement import add_agreement_command
    from empirical.cli.colour import add_colour_commands
    from empirical.cli.data import add_data_commands
    from empirical.cli.diagnostics import add_diagnostics_commands
    from empirical.cli.machine import add_machine_command
    from empirical.cli.model import add_model_commands
    from empirical.cli.validate import add_validate_command

    p = subparsers.add_parser("clevr", help="CLEVR data, denoisers, training and Kmax evaluation")
    clevr = p.add_subparsers(dest="clevr_command", required=True, metavar="JOB")
    add_data_commands(clevr)
    add_model_commands(clevr)
    add_diagnostics_commands(clevr)
    add_validate_command(clevr)
    add_machine_command(clevr)
    add_colour_commands(clevr)
    add_agreement_command(clevr)
