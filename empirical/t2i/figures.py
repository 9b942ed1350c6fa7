"""Figures of a ``t2i locality`` report (matplotlib, headless): the Jacobian energy within ``r``
per sigma, and the mean-shift cosine matrices per sigma and feature group."""

from __future__ import annotations

from numerics.experiments.common import matplotlib_headless


def energy_curve_figure(report: dict):
    """One panel per prompt set: share of the off-self Jacobian energy within distance ``r``
    (latent pixels) against ``r``, one line per sigma; dashed: the effective-radius threshold."""
    plt = matplotlib_headless()
    sets = [ps for ps in report["prompt_sets"] if ps["per_sigma"] and "spatial" in ps["per_sigma"][0]]
    fig, axes = plt.subplots(1, max(len(sets), 1), figsize=(4.2 * max(len(sets), 1), 3.4), squeeze=False)
    mass = report["spec"]["effective_mass"]
    for ax, ps in zip(axes[0], sets):
        for rec in ps["per_sigma"]:
            curve = rec["spatial"]["curve"]
            within = [float("nan") if v is None else v for v in curve["within"]]
            ax.plot(curve["radii"], within, "o-", ms=3, label=f"sigma={rec['sigma']:g}")
        ax.axhline(mass, ls="--", color="gray", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("r (latent pixels)")
        ax.set_ylabel("off-self Jacobian energy within r")
        ax.set_title(ps["name"], fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("spatial locality of the UNet output (rows of dD/dx - I)", fontsize=10)
    fig.tight_layout()
    return fig


def cosine_figure(report: dict):
    """Rows = (prompt set, sigma); columns = the output and each feature group: ``|cos(d_i, d_j)|``
    of the mean shifts (T8: 0 for factorized conditionals), values written in the cells."""
    plt = matplotlib_headless()
    groups = list(report["features"])
    rows = [(ps, rec) for ps in report["prompt_sets"] for rec in ps["per_sigma"]]
    fig, axes = plt.subplots(len(rows), len(groups), figsize=(2.3 * len(groups), 2.1 * len(rows)), squeeze=False)
    for r, (ps, rec) in enumerate(rows):
        names = [p["name"] for p in ps["parts"]]
        for c, group in enumerate(groups):
            ax = axes[r, c]
            entry = rec["conditional"] if group == "output" else rec["features"].get(group)
            matrix = [[abs(v) if v is not None else float("nan") for v in row] for row in entry["mean_shift_cosine"]]
            ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
            for i, row in enumerate(matrix):
                for j, v in enumerate(row):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if v < 0.6 else "black")
            ax.set_xticks(range(len(names)), names, fontsize=6, rotation=45)
            ax.set_yticks(range(len(names)), names, fontsize=6)
            ax.set_title(f"{ps['name']} sigma={rec['sigma']:g}\n{group}", fontsize=7)
    fig.suptitle("|cos| of mean shifts d_i = E[F(base + part i)] - E[F(base)]", fontsize=9)
    fig.tight_layout()
    return fig
