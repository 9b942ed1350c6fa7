"""Where a validation keeps the record of each finished slice, and how a slice's command runs."""

from __future__ import annotations

from pathlib import Path

from localcomp.errors import UserError


def state_path(out: Path, piece) -> Path:
    return out / "state" / piece.stage / f"{piece.key}.json"


def run_command(argv) -> None:
    """One ``localcomp`` command in this process; a UserError when it fails."""
    from localcomp.cli import main
    code = main(list(argv))
    if code != 0:
        raise UserError(f"`localcomp {' '.join(argv)}` exited with {code}")
