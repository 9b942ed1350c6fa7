"""Shared plumbing for the toy experiments: arguments, output folder, figures, records.

Every experiment takes ``--seed`` and ``--out`` (default ``results/toy/<name>``), refuses to
overwrite results already in ``--out`` without ``--force``, validates its settings before
writing anything, writes ``run.json`` (provenance), one JSON of results
and one PNG into ``--out``, and prints a short summary.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

from localcomp.errors import UserError
from localcomp.provenance import write_bytes_atomic, write_json_atomic, write_run_record

DEFAULT_RESULTS = Path("results") / "toy"


def add_common_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS / name,
                        help=f"output folder (default {DEFAULT_RESULTS / name})")
    parser.add_argument("--force", action="store_true",
                        help=f"overwrite {name}.json / {name}.png already in --out (committed results)")


def refuse_existing_results(args: argparse.Namespace, name: str) -> None:
    """A ``UserError`` naming the file and ``--force`` when ``--out`` already holds this
    experiment's results (``<name>.json`` or ``<name>.png``): the default ``--out`` is the
    committed ``results/toy/<name>`` when run from the repository root. Called before the
    computation."""
    from localcomp.provenance import check_writable_dir, refuse_overwrite

    out = Path(args.out)
    check_writable_dir(out, "--out")
    refuse_overwrite([out / f"{name}.json", out / f"{name}.png"], getattr(args, "force", False))


def require(condition: bool, field: str, problem: str) -> None:
    """Raise a ``UserError`` naming the field unless ``condition`` holds."""
    if not condition:
        raise UserError(f"{field}: {problem}")


def save_figure(figure, path: Path) -> None:
    """Render a matplotlib figure to PNG and write it atomically; closes the figure."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=130, bbox_inches="tight")
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())


def write_outputs(out: Path, name: str, config: Any, seed: int, results: dict, figure) -> dict:
    """Write ``run.json``, ``<name>.json`` and ``<name>.png`` into ``out``; return paths."""
    out = Path(out)
    write_run_record(out, config=config, seed=seed)
    write_json_atomic(out / f"{name}.json", results)
    save_figure(figure, out / f"{name}.png")
    return {"run": str(out / "run.json"), "json": str(out / f"{name}.json"),
            "figure": str(out / f"{name}.png")}


def matplotlib_headless():
    """Import pyplot with a non-interactive backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
