"""``localcomp clevr agreement``: r² between trained denoisers and local conditional machines.

``localcomp clevr agreement --runs RUN ... --references MACHINE_RUN ... --data DATA --out DIR
[--start I] [--num-images N] [--min-objects 1] [--max-objects 3] [--sigmas S ...]
[--sample-k K ...] [--sample-sets M] [--seed S] [--force]``

For the first ``N`` items of ``DATA`` from index ``I`` with ``min..max`` conditioners, at
``x = image + sigma * noise`` (one noise draw, seeded), every ``--references`` run's output is
scored as a model of every ``--runs`` run's output by the per-image r²
(:mod:`empirical.diagnostics.agreement`, Kamb & Ganguli's comparison), about each image's mean and
about the mean image (the image-specific part); with ``--sample-k`` also
on whole samples drawn from the same initial noise for ``M`` location sets of each ``K``.
Writes ``agreement.json``, ``agreement.png`` and ``run.json`` into ``DIR``. Any run folder that
``clevr kmax`` reads works on either side (trained checkpoints and ``clevr machine`` folders).
"""

from __future__ import annotations

import math
from pathlib import Path

from localcomp.errors import UserError

DEFAULT_SIGMAS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def add_agreement_command(clevr_subparsers) -> None:
    a = clevr_subparsers.add_parser("agreement", help="r² of machines' denoiser outputs against trained "
                                    "runs' on the same noisy inputs (Kamb & Ganguli's comparison)")
    a.add_argument("--runs", required=True, nargs="+", help="run folders whose outputs are explained (targets)")
    a.add_argument("--references", required=True, nargs="+",
                   help="run folders whose outputs explain them (e.g. clevr machine folders)")
    a.add_argument("--data", required=True, help="CLEVR directory (or synthetic[:MIN-MAX]) of the noisy inputs")
    a.add_argument("--start", type=int, default=0, help="first item of --data to consider (default 0)")
    a.add_argument("--num-images", type=int, default=32, help="images measured (default 32)")
    a.add_argument("--min-objects", type=int, default=1, help="fewest conditioners of an image used (default 1)")
    a.add_argument("--max-objects", type=int, default=3, help="most conditioners of an image used (default 3)")
    a.add_argument("--sigmas", type=float, nargs="+", default=list(DEFAULT_SIGMAS),
                   help=f"noise levels (default {' '.join(map(str, DEFAULT_SIGMAS))})")
    a.add_argument("--sample-k", type=int, nargs="*", default=[],
                   help="also compare whole samples from the same initial noise for these K (default none)")
    a.add_argument("--sample-sets", type=int, default=8, help="location sets per --sample-k K (default 8)")
    a.add_argument("--sampler-steps", type=int, default=18, help="Heun steps of those samples (default 18)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--out", required=True, help="output directory")
    a.add_argument("--force", action="store_true", help="overwrite agreement.json already in --out")
    a.set_defaults(func=_agreement)


def run_names(paths) -> list[str]:
    """Short names of run folders: the folder's name, or its last two parts where names repeat."""
    names = [Path(p).name for p in paths]
    if len(set(names)) < len(names):
        names = ["/".join(Path(p).parts[-2:]) for p in paths]
    if len(set(names)) < len(names):
        raise UserError(f"--runs/--references: the same run folder is given twice: {list(map(str, paths))}")
    return names


def validate_agreement_args(args) -> None:
    """UserError for bad flags, before anything is loaded or written."""
    from empirical.training.train import has_model

    if any(not (s > 0 and math.isfinite(s)) for s in args.sigmas):
        raise UserError(f"--sigmas: must be positive and finite, got {args.sigmas}")
    for name, low in (("start", 0), ("num_images", 1), ("min_objects", 0), ("sample_sets", 1),
                      ("sampler_steps", 2)):
        if getattr(args, name) < low:
            raise UserError(f"--{name.replace('_', '-')}: must be >= {low}, got {getattr(args, name)}")
    if args.max_objects < args.min_objects:
        raise UserError(f"--max-objects: must be >= --min-objects ({args.min_objects}), got {args.max_objects}")
    if any(k < 0 for k in args.sample_k):
        raise UserError(f"--sample-k: must be >= 0, got {args.sample_k}")
    for flag, paths in (("--runs", args.runs), ("--references", args.references)):
        for path in paths:
            if not has_model(path):
                raise UserError(f"{flag}: no checkpoint.pt (or machine.json) in {path}")
    run_names([*args.runs, *args.references])


def select_range(dataset, start: int, num_images: int, min_objects: int, max_objects: int) -> list[int]:
    """:func:`empirical.diagnostics.locality.select_items` with the error naming the flags."""
    from empirical.diagnostics.locality import select_items
    try:
        return select_items(dataset, num_images, min_objects, start, max_objects)
    except ValueError:
        raise UserError(f"--data/--start/--min-objects/--max-objects: no item from index {start} with "
                        f"{min_objects}..{max_objects} conditioners in {len(dataset)} items") from None


def _agreement(args) -> int:
    from localcomp.provenance import check_writable_dir, refuse_overwrite, write_json_atomic, write_run_record
    from numerics.experiments.common import save_figure
    from empirical.clevr.sources import load_data
    from empirical.diagnostics.agreement import agreement_at_sigmas, best_reference, sample_agreement
    from empirical.training.train import collate_sets, load_trained

    validate_agreement_args(args)
    out = Path(args.out)
    check_writable_dir(out, "--out")
    refuse_overwrite([out / "agreement.json"], args.force)
    names = run_names([*args.runs, *args.references])
    loaded, runs = {}, {}
    for name, path in zip(names, [*args.runs, *args.references]):
        model, config, step = load_trained(path)
        if hasattr(model, "to"):
            model = model.cpu()
        loaded[name] = model
        runs[name] = {"path": str(path), "experiment": config.experiment, "preset": config.preset,
                      "checkpoint_step": step, "resolution": config.resolution}
    resolutions = {r["resolution"] for r in runs.values()}
    if len(resolutions) > 1:
        raise UserError(f"--runs/--references: runs of different resolutions {sorted(resolutions)}")
    resolution = resolutions.pop()
    dataset = load_data(args.data, resolution, args.seed)
    image, _ = dataset[0]
    if tuple(image.shape[-2:]) != (resolution, resolution):
        raise UserError(f"--data: images are {tuple(image.shape[-2:])}, the runs expect {resolution} px")
    indices = select_range(dataset, args.start, args.num_images, args.min_objects, args.max_objects)
    clean, cond, mask = collate_sets([dataset[i] for i in indices])
    targets = {n: loaded[n] for n in names[:len(args.runs)]}
    references = {n: loaded[n] for n in names[len(args.runs):]}
    result = agreement_at_sigmas(targets, references, clean, cond, mask, args.sigmas, args.seed, progress=True)
    report = {"runs": runs, "targets": list(targets), "references": list(references), "data": args.data,
              "images": indices, "sigmas": list(args.sigmas), "seed": args.seed,
              "definition": "per image r2 = 1 - ||D_ref - D_run||^2 / ||D_run - mean(D_run)||^2 on the same "
                            "x = image + sigma * noise and conditioners; summaries over images",
              "per_sigma": result["per_sigma"],
              "best_reference": {m: {t: best_reference(result, t, measure=m) for t in targets}
                                 for m in ("r2", "r2_vs_mean_image")}}
    if args.sample_k:
        from empirical.cli.model import location_sets_by_k
        sets = location_sets_by_k(dataset, args.sample_k, args.sample_sets)
        report["samples"] = {"sampler_steps": args.sampler_steps, "sets_per_k": args.sample_sets,
                             "r2": sample_agreement(targets, references, sets, resolution,
                                                    args.sampler_steps, args.seed)}
    save_figure(agreement_figure(report), out / "agreement.png")
    write_json_atomic(out / "agreement.json", report)
    write_run_record(out, {k: v for k, v in vars(args).items() if k != "func"}, args.seed)
    for m in ("r2", "r2_vs_mean_image"):
        for t in targets:
            cells = ", ".join(f"σ={b['sigma']:g}: {b['reference']} {b['median']:.3f}"
                              for b in report["best_reference"][m][t] if b["reference"] is not None)
            print(f"{t}: best median {m} per sigma: {cells}")
    print(f"{out}/agreement.json")
    return 0


def agreement_figure(report: dict):
    """One column per target, one row per measure (r² about each image's mean; about the mean
    image): median (quartile band) of each reference, the clean image (dashed) and the other
    targets (dotted) against sigma."""
    from numerics.experiments.common import matplotlib_headless

    plt = matplotlib_headless()
    targets = report["targets"]
    measures = (("r2", "median r² (about each image's mean)"),
                ("r2_vs_mean_image", "median r² (about the mean image)"))
    fig, axes = plt.subplots(2, len(targets), figsize=(4.2 * len(targets), 6.6), squeeze=False)
    sigmas = [row["sigma"] for row in report["per_sigma"]]
    nan = lambda v: float("nan") if v is None else v  # noqa: E731
    # one colour per curve, also past tab10's ten (references, clean, the targets)
    names = [*report["references"], "clean", *targets]
    palette = plt.cm.tab10 if len(names) <= 10 else plt.cm.tab20
    colours = {name: palette(i % palette.N) for i, name in enumerate(names)}
    for col, t in enumerate(targets):
        others = [*report["references"], "clean", *[o for o in targets if o != t]]
        for row_index, (measure, ylabel) in enumerate(measures):
            ax = axes[row_index][col]
            for r in others:
                stats = [row[measure][t][r] for row in report["per_sigma"]]
                style = "--" if r == "clean" else (":" if r in targets else "-")
                line, = ax.plot(sigmas, [nan(s["median"]) for s in stats], style, marker="o", ms=3, label=r,
                                color=colours[r])
                if r in report["references"]:
                    ax.fill_between(sigmas, [nan(s["q25"]) for s in stats], [nan(s["q75"]) for s in stats],
                                    color=line.get_color(), alpha=0.15)
            ax.set_xscale("log")
            shown = [s["median"] for r in others for s in (row[measure][t][r] for row in report["per_sigma"])
                     if s["median"] is not None]
            ax.set_ylim(-0.5 if row_index else max(-0.2, min(shown, default=0) - 0.05), 1.01)
            ax.axhline(0, color="0.7", lw=0.6)
            ax.set_xlabel("σ")
            if col == 0:
                ax.set_ylabel(ylabel, fontsize=8)
            ax.set_title(f"{t} ({report['runs'][t]['experiment']}) explained by", fontsize=9)
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig
