"""Redraw per_k.png (per-K strict success, every-object-found rate, found share) of the machines.

    python results/clevr/machine/per_k.py
"""

import json
from pathlib import Path

from empirical.evaluation.table import plot_per_k
from numerics.experiments.common import save_figure

HERE = Path(__file__).resolve().parent
FOLDERS = ("k1", "k2", "k3", "k4", "k6", "k8", "nonlocal")

if __name__ == "__main__":
    entries = [json.loads((HERE / name / "kmax.json").read_text()) for name in FOLDERS]
    save_figure(plot_per_k(entries), HERE / "per_k.png")
    print(HERE / "per_k.png")
