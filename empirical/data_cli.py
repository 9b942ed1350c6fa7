"""CLEVR data jobs: ``clevr render``, ``clevr detector train|eval``."""


def add_data_commands(clevr_subparsers) -> None:
    """Placeholder until the CLEVR data layer lands."""
