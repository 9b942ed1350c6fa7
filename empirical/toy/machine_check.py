"""The local conditional machine against exact denoisers, on numerics' bump families (issue 12.4).

``localcomp toy machine --out DIR`` builds the machine (:mod:`empirical.models.machine`) from
``N`` exact samples of a bump family, for ``N`` over several decades, and measures per sigma its
denoiser error against the family's exact denoiser on fresh noisy points, and its conditional
leakage. The patch geometry is the family's: cells of 2 x 2 pixels, so ``k = 0`` is a patch equal
to one conditioner's mask. Predictions:

* CPC family (``shadow = 0``): each cell's law depends only on whether it holds an object, which
  is exactly what the ``k = 0`` machine conditions on, so its error falls towards 0 as ``N``
  grows, and its leakage is 0 by construction (removing a conditioner changes only its patch);
* shadow family (near-CPC): a cell's law also depends on its left neighbour, which the
  ``k = 0`` patch does not see, so its error stops falling (a bias); ``k = 1`` sees the neighbour
  and keeps converging.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from localcomp.errors import UserError

NAME = "machine"


@dataclass(frozen=True)
class MachineCheckConfig:
    size: int = 8
    shadow: float = 0.6
    train_objects: tuple[int, int] = (1, 3)
    sizes: tuple[int, ...] = (30, 100, 300, 1000, 3000, 10000)
    ks: tuple[int, ...] = (0, 1)
    sigmas: tuple[float, ...] = (0.05, 0.2, 0.5, 1.0)
    points: int = 128
    query_objects: int = 2
    tau: float = 0.05
    seed: int = 0


def training_set(family, n: int, objects: tuple[int, int], generator):
    """``n`` exact samples with ``objects`` (MIN, MAX) uniform objects: images and conditioners."""
    from empirical.toy.bumps import cells_to_present, conditioners, random_sets, sample_images

    counts = torch.randint(objects[0], objects[1] + 1, (n,), generator=generator)
    cells = random_sets(n, counts, family, generator)
    images = sample_images(family, cells_to_present(cells, family), generator)
    cond, mask = conditioners(cells, family)
    return images, cond, mask


def run_check(config: MachineCheckConfig, progress: bool = True) -> dict:
    from tqdm import tqdm

    from empirical.models.machine import LocalConditionalMachine, MachineConfig
    from empirical.toy.bumps import BumpFamily, ExactDenoiser
    from empirical.toy.study import draw_points, evaluate, leakage

    families = {"cpc": BumpFamily(config.size), "shadow": BumpFamily(config.size, config.shadow)}
    generator = torch.Generator().manual_seed(config.seed)
    rows = []
    for family_name, family in families.items():
        exact = ExactDenoiser(family)
        points = [draw_points(family, s, config.query_objects, config.points, generator) for s in config.sigmas]
        train = training_set(family, max(config.sizes), config.train_objects, generator)
        for n in config.sizes:
            for k in config.ks:
                machine = LocalConditionalMachine(MachineConfig(config.size, family.grid, k, config.tau),
                                                  train[0][:n], train[1][:n], train[2][:n])
                for p in points:
                    target = evaluate(exact, family, p.x, p.sigma, p.cells)
                    out = evaluate(machine, family, p.x, p.sigma, p.cells)
                    rows.append({"family": family_name, "n": n, "k": k, "sigma": p.sigma,
                                 "denoiser_mse": float(((out - target) ** 2).mean()),
                                 "exact_mse_scale": float(((target - p.x) ** 2).mean()),
                                 "leakage": leakage(machine, family, p)["leakage"]})
                if progress:
                    tqdm.write(f"{family_name} N={n} k={k}: mse "
                               + " ".join(f"{r['denoiser_mse']:.2e}" for r in rows[-len(points):]))
    return {"config": asdict(config), "rows": rows}


def plot(result: dict):
    from numerics.experiments.common import matplotlib_headless

    plt = matplotlib_headless()
    rows, cfg = result["rows"], result["config"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, family in zip(axes, ("cpc", "shadow")):
        for k, style in zip(cfg["ks"], ("-", "--", ":")):
            for sigma, colour in zip(cfg["sigmas"], ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")):
                sel = [r for r in rows if r["family"] == family and r["k"] == k and r["sigma"] == sigma]
                ax.loglog([r["n"] for r in sel], [max(r["denoiser_mse"], 1e-12) for r in sel], style,
                          color=colour, marker="o", ms=3, label=f"k={k}, σ={sigma}")
        ax.set_title(f"{family} family: machine vs exact denoiser")
        ax.set_xlabel("training samples N")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("denoiser MSE per coordinate")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def add_command(toy_subparsers) -> None:
    """Add ``machine`` to the ``localcomp toy`` subcommands (called by ``localcomp.cli``)."""
    d = MachineCheckConfig()
    p = toy_subparsers.add_parser(NAME, help="local conditional machine vs exact denoisers on bump images")
    p.add_argument("--out", required=True, help="output directory (machine_check.json, machine_check.png)")
    p.add_argument("--sizes", type=int, nargs="+", default=list(d.sizes), help="training set sizes N")
    p.add_argument("--ks", type=int, nargs="+", default=list(d.ks), help="patch half-widths in cells")
    p.add_argument("--sigmas", type=float, nargs="+", default=list(d.sigmas))
    p.add_argument("--points", type=int, default=d.points, help="noisy query points per sigma")
    p.add_argument("--shadow", type=float, default=d.shadow, help="darkening of the shadow family (> 0)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--force", action="store_true", help="overwrite an existing machine_check.json")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import math

    from localcomp.provenance import write_json_atomic, write_run_record
    from numerics.experiments.common import save_figure

    if any(n < 1 for n in args.sizes) or any(k < 0 for k in args.ks) or args.points < 1:
        raise UserError("--sizes and --points must be >= 1, --ks >= 0")
    if any(not (s > 0 and math.isfinite(s)) for s in args.sigmas):
        raise UserError(f"--sigmas: must be positive and finite, got {args.sigmas}")
    if not args.shadow > 0:
        raise UserError(f"--shadow: must be > 0, got {args.shadow}")
    out = Path(args.out)
    if (out / "machine_check.json").exists() and not args.force:
        raise UserError(f"--out: {out / 'machine_check.json'} exists; pass --force to overwrite")
    config = MachineCheckConfig(shadow=args.shadow, sizes=tuple(sorted(args.sizes)), ks=tuple(args.ks),
                                sigmas=tuple(args.sigmas), points=args.points, seed=args.seed)
    result = run_check(config)
    write_json_atomic(out / "machine_check.json", result)
    save_figure(plot(result), out / "machine_check.png")
    write_run_record(out, config, args.seed)
    print(json.dumps({"out": str(out / "machine_check.json")}))
    return 0
