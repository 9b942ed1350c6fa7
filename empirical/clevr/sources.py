"""A dataset from a ``--data`` argument: a rendered CLEVR directory or ``synthetic[:MIN-MAX]`` blobs."""

from __future__ import annotations

from pathlib import Path

from localcomp.errors import UserError


def load_data(spec: str, resolution: int, seed: int = 0, conditioner: str = "location"):
    """``synthetic[:MIN-MAX]`` -> :class:`~empirical.clevr.synthetic.BlobDataset`; else a CLEVR directory
    (``conditioner="colour"``: its colour view, :class:`~empirical.clevr.colour.ColourDataset`)."""
    if spec.startswith("synthetic"):
        from empirical.clevr.synthetic import BlobDataset
        lo, hi = 1, 3
        if ":" in spec:
            try:
                lo, hi = (int(t) for t in spec.split(":", 1)[1].split("-"))
            except ValueError:
                raise UserError(f"--data: {spec!r} is not 'synthetic:MIN-MAX'") from None
            if not 0 <= lo <= hi:
                raise UserError(f"--data: {spec!r}: needs 0 <= MIN <= MAX objects, got MIN {lo}, MAX {hi}")
        if conditioner == "colour":
            raise UserError("--data synthetic: colour experiments need a rendered CLEVR directory")
        return BlobDataset(size=1024, resolution=resolution, min_objects=lo, max_objects=hi, seed=seed)
    if not Path(spec).is_dir():
        raise UserError(f"--data: {spec} is not a directory")
    if conditioner == "colour":
        from empirical.clevr.colour import ColourDataset
        return ColourDataset(spec)
    from empirical.clevr.dataset import ClevrDataset
    return ClevrDataset(spec)
