"""``localcomp toy locality SPEC.json``: locality of a user's own Gaussian-mixture family."""


def add_locality_command(toy_subparsers) -> None:
    """Placeholder until the numerics layer lands."""
