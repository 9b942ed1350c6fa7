"""CLEVR model jobs: ``clevr train``, ``clevr sample``, ``clevr kmax``, ``clevr table``."""


def add_model_commands(clevr_subparsers) -> None:
    """Placeholder until the CLEVR denoisers land."""
