"""Diagnostics jobs: ``clevr locality``, ``clevr correlate`` and ``clevr dose-response`` (heavy imports inside the handlers).

``localcomp clevr locality --run RUN_DIR --data DATA [--sigmas S ...] [--num-images N] [--seed S]
[--out DIR] [--precision fp32|bf16]`` measures pixel and conditional locality (``empirical.diagnostics.locality``) of a trained denoiser
at ``x = image + sigma * noise`` for the first ``N`` images of ``DATA`` (a CLEVR directory or
``synthetic[:MIN-MAX]``) with at least ``--min-objects`` conditioners, and writes ``locality.json``,
``locality_heatmaps.png``, ``locality_vs_sigma.png`` and ``run.json`` (default ``RUN_DIR/locality``).

``localcomp clevr correlate --entries A/locality.json B/locality.json ... [--kmax ...] --out DIR``
pairs each locality file with its run's ``kmax.json`` and writes ``correlation.json`` (Spearman
rank correlations with Kmax) and ``correlation.png``. See docs/locality-diagnostics.md.

``localcomp clevr dose-response --point SERIES:K:RUN_DIR ... --out DIR`` draws strict and
extras-allowed Kmax, the found share and the conditional leakage of every point against the patch
half-width K (``empirical.evaluation.dose_response``): ``dose_response.json``, ``dose_response.png``.
"""

from __future__ import annotations

import math
from pathlib import Path

from localcomp.errors import UserError


def add_diagnostics_commands(clevr_subparsers) -> None:
    """Add ``locality`` and ``correlate`` to the ``clevr`` subcommands."""
    from empirical.diagnostics.locality import DEFAULT_SIGMAS, EFFECTIVE_MASS, RADII
    from empirical.models.precision import PRECISIONS

    p = clevr_subparsers.add_parser("locality", help="pixel and conditional locality of a trained denoiser")
    p.add_argument("--run", required=True, help="training run directory (checkpoint.pt)")
    p.add_argument("--data", required=True, help="CLEVR dataset directory or 'synthetic[:MIN-MAX]'")
    p.add_argument("--sigmas", type=float, nargs="+", default=list(DEFAULT_SIGMAS),
                   help=f"noise levels (default {' '.join(map(str, DEFAULT_SIGMAS))})")
    p.add_argument("--num-images", type=int, default=8, help="images measured (default 8)")
    p.add_argument("--min-objects", type=int, default=2,
                   help="use images with at least this many conditioners (default 2: cross-talk needs two)")
    p.add_argument("--max-objects", type=int, default=None,
                   help="and at most this many (default: no limit); e.g. the evaluation scenes with "
                        "--max-objects 3 for a model trained on one object per scene")
    p.add_argument("--pixels-per-image", type=int, default=3,
                   help="Jacobian output pixels per image: objects first, then random (default 3)")
    p.add_argument("--jacobian-images", type=int, default=None,
                   help="take Jacobian rows for the first that many images only (default: all)")
    p.add_argument("--footprint", choices=("disc", "mask"), default="disc",
                   help="object footprint: a disc of --radius around the location (default), or the "
                        "rendered object mask dilated by --dilate pixels (CLEVR directories only)")
    p.add_argument("--radius", type=float, default=None, help="disc radius in pixels (default resolution / 8)")
    p.add_argument("--dilate", type=int, default=1, help="with --footprint mask: dilation in pixels (default 1)")
    p.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output directory (default RUN_DIR/locality)")
    p.add_argument("--force", action="store_true", help="overwrite locality.json already in --out")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="network forward in float32 (default, on any hardware: bf16 rounding moves the "
                        "conditional leakage by up to 0.04, docs/locality-diagnostics.md) or under "
                        "bfloat16 autocast")
    p.set_defaults(func=_locality, radii=RADII, mass=EFFECTIVE_MASS)

    c = clevr_subparsers.add_parser("correlate", help="locality summaries vs Kmax across runs (Spearman)")
    c.add_argument("--entries", required=True, nargs="+", help="locality.json files (or directories with one)")
    c.add_argument("--kmax", nargs="+", default=None,
                   help="kmax.json per entry, same order (default: RUN_DIR/kmax.json of each locality run)")
    c.add_argument("--metrics", nargs="+", default=None,
                   help="summary keys to plot (default conditional_leakage pixel_effective_radius)")
    c.add_argument("--kmax-field", default="kmax", choices=("kmax", "kmax_requested_found", "found_share"),
                   help="which Kmax of kmax.json: strict (default) or with extra objects allowed; or "
                        "found_share: the mean share of requested objects found at --found-k")
    c.add_argument("--found-k", type=int, nargs="+", default=[6, 8],
                   help="with --kmax-field found_share: the K averaged (default 6 8)")
    c.add_argument("--labels", nargs="+", default=None,
                   help="a label per entry, same order (default: 'experiment (training objects)')")
    c.add_argument("--out", required=True, help="output directory (correlation.json, correlation.png)")
    c.add_argument("--force", action="store_true", help="overwrite correlation.json already in --out")
    c.set_defaults(func=_correlate)

    d = clevr_subparsers.add_parser("dose-response", help="Kmax, found share and leakage against patch size k "
                                    "for series of runs (machine and learned) on shared axes")
    d.add_argument("--point", required=True, nargs="+", metavar="SERIES:K:RUN_DIR",
                   help="a run folder holding kmax.json (and locality/locality.json) at patch half-width K "
                        "(or 'nonlocal'), in a named series")
    d.add_argument("--found-k", type=int, nargs="+", default=[6, 8],
                   help="K at which the share of requested objects found is plotted (default 6 8)")
    d.add_argument("--out", required=True, help="output directory (dose_response.json, dose_response.png)")
    d.add_argument("--force", action="store_true", help="overwrite dose_response.json already in --out")
    d.set_defaults(func=_dose_response)


# -- locality --------------------------------------------------------------------------------------

def validate_locality_args(args) -> None:
    """UserError for bad flags, before anything is loaded or written."""
    if any(not (s > 0 and math.isfinite(s)) for s in args.sigmas):
        raise UserError(f"--sigmas: must be positive and finite, got {args.sigmas}")
    for name in ("num_images", "min_objects", "pixels_per_image"):
        value = getattr(args, name)
        low = 0 if name == "min_objects" else 1
        if value < low:
            raise UserError(f"--{name.replace('_', '-')}: must be >= {low}, got {value}")
    if args.max_objects is not None and args.max_objects < max(args.min_objects, 1):
        raise UserError(f"--max-objects: must be >= --min-objects ({args.min_objects}) and >= 1, "
                        f"got {args.max_objects}")
    if args.jacobian_images is not None and args.jacobian_images < 1:
        raise UserError(f"--jacobian-images: must be >= 1, got {args.jacobian_images}")
    if args.radius is not None and not args.radius > 0:
        raise UserError(f"--radius: must be > 0, got {args.radius}")
    if args.dilate < 0:
        raise UserError(f"--dilate: must be >= 0, got {args.dilate}")
    if args.footprint == "mask" and args.data.startswith("synthetic"):
        raise UserError("--footprint mask: needs a CLEVR dataset directory (synthetic data has no masks)")
    from empirical.training.train import has_model
    if not has_model(args.run):
        raise UserError(f"--run: no checkpoint.pt (or machine.json) in {args.run}")


def select_images(dataset, num_images: int, min_objects: int, max_objects: int | None = None) -> list[int]:
    """Indices of the first ``num_images`` items with ``min_objects`` to ``max_objects`` conditioners."""
    from empirical.diagnostics.locality import select_items
    try:
        return select_items(dataset, num_images, min_objects, max_objects=max_objects)
    except ValueError:
        most = "" if max_objects is None else f" and <= {max_objects}"
        hint = (" (a dataset of one-object scenes has no second conditioner to remove: measure on "
                "scenes with more, e.g. the evaluation scenes with --max-objects 3)" if min_objects >= 2 else "")
        raise UserError(f"--data/--min-objects: no image with >= {min_objects}{most} conditioners{hint}") from None


def mask_footprints(data, indices, kmax: int, dilate: int):
    """Rendered footprints ``[B, Kmax, H, W]`` bool from a loaded CLEVR dataset: conditioner ``j``
    of image ``i`` covers the pixels of object ``conditioner_objects[j]``, dilated by ``dilate``."""
    import torch
    import torch.nn.functional as F

    h, w = data.masks.shape[1:]
    out = torch.zeros(len(indices), kmax, h, w, dtype=torch.bool)
    for b, i in enumerate(indices):
        objects = data.metadata[i].get("conditioner_objects", [])
        masks = torch.from_numpy(data.masks[i].astype("int64"))
        for j, obj in enumerate(objects):
            out[b, j] = masks == obj + 1
    if dilate:
        out = F.max_pool2d(out.float().flatten(0, 1)[:, None], 2 * dilate + 1, 1, dilate)[:, 0].bool().view_as(out)
    return out


def _locality(args) -> int:
    import torch

    from localcomp.provenance import check_writable_dir, refuse_overwrite, write_json_atomic, write_run_record
    from numerics.experiments.common import save_figure
    from empirical.diagnostics.locality import disc_footprints, measure_locality
    from empirical.models.precision import autocast, with_precision
    from empirical.cli.model import load_training_data
    from empirical.training.train import collate_sets, load_trained

    validate_locality_args(args)
    locality_out = Path(args.out or Path(args.run) / "locality")
    check_writable_dir(locality_out, "--out")
    refuse_overwrite([locality_out / "locality.json"], args.force)
    model, config, step = load_trained(args.run, use_ema=not args.raw)
    model, precision = with_precision(model, args.precision)
    dataset = load_training_data(args.data, config.resolution, args.seed)
    image, _ = dataset[0]
    if tuple(image.shape[-2:]) != (config.resolution, config.resolution):
        raise UserError(f"--data: images are {tuple(image.shape[-2:])}, the run expects "
                        f"{config.resolution}x{config.resolution}")
    indices = select_images(dataset, args.num_images, args.min_objects, args.max_objects)
    clean, cond, mask = collate_sets([dataset[i] for i in indices])
    device = next(model.parameters()).device if isinstance(model, torch.nn.Module) else torch.device("cpu")
    clean, cond, mask = clean.to(device), cond.to(device), mask.to(device)
    h, w = clean.shape[-2:]
    radius = args.radius if args.radius is not None else h / 8
    if args.footprint == "mask":
        footprints = mask_footprints(dataset.data, indices, cond.shape[1], args.dilate).to(device)
    else:
        footprints = disc_footprints(cond, mask, h, w, radius)
    with autocast(device, precision):  # torch.func.vjp's Jacobian rows must run under it too
        result = measure_locality(model, clean, cond, mask, args.sigmas, seed=args.seed,
                                  pixels_per_image=args.pixels_per_image, footprints=footprints,
                                  radii=args.radii, mass=args.mass, jacobian_images=args.jacobian_images,
                                  progress=True, keep_maps=True)
    maps = [r.pop("maps") for r in result["per_sigma"]]
    out = Path(args.out or Path(args.run) / "locality")
    report = {"experiment": config.experiment, "preset": config.preset, "run": str(args.run),
              "checkpoint_step": step, "ema": not args.raw, "data": args.data, "images": indices,
              "min_objects": args.min_objects, "max_objects": args.max_objects,
              "sigmas": list(args.sigmas), "footprint": args.footprint,
              "radius": radius if args.footprint == "disc" else None,
              "dilate": args.dilate if args.footprint == "mask" else None,
              "radii": list(args.radii), "effective_mass": args.mass,
              "pixels_per_image": args.pixels_per_image, "jacobian_images": args.jacobian_images,
              "summary": result["summary"], "per_sigma": result["per_sigma"], "pixels": result["pixels"],
              "seed": args.seed, "precision": precision}
    pixels = torch.tensor(result["pixels"])
    save_figure(heatmap_figure(maps, args.sigmas, pixels, cond, mask, footprints, config.experiment),
                out / "locality_heatmaps.png")
    save_figure(sigma_figure(result["per_sigma"], config.experiment), out / "locality_vs_sigma.png")
    write_json_atomic(out / "locality.json", report)
    write_run_record(out, {k: v for k, v in vars(args).items() if k != "func"}, args.seed)
    s = result["summary"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"{config.experiment} (step {step}): conditional leakage {fmt(s['conditional_leakage'])}, "
          f"pixel effective radius {fmt(s['pixel_effective_radius'])} px; {out}/locality.json")
    return 0


def _show(ax, image, title, **kwargs):
    ax.imshow(image, **kwargs)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def heatmap_figure(maps, sigmas, pixels, cond, mask, footprints, title: str, image: int = 0):
    """Rows = sigmas; columns: the noisy input, the Jacobian energy maps of image ``image``'s output
    pixels (log10 of energy / largest off-self energy, floored at -4; red cross = the output
    pixel, whose own entry is left out), and the change maps of removing each of its conditioners
    (linear scale per panel; white contour = footprint, red dot = location)."""
    import numpy as np
    from numerics.experiments.common import matplotlib_headless

    plt = matplotlib_headless()
    n_pix = pixels.shape[1] if maps[0]["energy"].shape[0] > image else 0
    conds = [j for j in range(mask.shape[1]) if mask[image, j]]
    cols = 1 + n_pix + len(conds)
    fig, axes = plt.subplots(len(sigmas), cols, figsize=(1.6 * cols, 1.7 * len(sigmas)), squeeze=False)
    h, w = maps[0]["x"].shape[-2:]
    for row, (sigma, m) in enumerate(zip(sigmas, maps)):
        x = m["x"][image].detach().cpu().float()
        shown = ((x.permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1) if x.shape[0] == 3 else x[0].numpy()
        _show(axes[row, 0], shown, f"x, sigma={sigma:g}", cmap=None if x.shape[0] == 3 else "gray")
        for p in range(n_pix):
            e = m["energy"][image, p].double().clone()
            r0, c0 = pixels[image, p].tolist()
            e[r0, c0] = 0  # the self entry (trivially local) would set the scale: shown apart
            log_e = np.log10((e / e.max().clamp_min(1e-300)).clamp_min(1e-4).numpy())
            ax = axes[row, 1 + p]
            _show(ax, log_e, f"Jacobian, pixel {(r0, c0)}", cmap="magma", vmin=-4, vmax=0)
            ax.plot(pixels[image, p, 1], pixels[image, p, 0], "x", color="red", ms=4)
        for n, j in enumerate(conds):
            ax = axes[row, 1 + n_pix + n]
            _show(ax, m["change"][image, j].detach().cpu().numpy(), f"remove c{j}", cmap="viridis")
            ax.contour(footprints[image, j].cpu().numpy().astype(float), levels=[0.5], colors="white",
                       linewidths=0.6)
            u, v = cond[image, j].tolist()
            ax.plot((u + 1) / 2 * w - 0.5, (v + 1) / 2 * h - 0.5, "o", color="red", ms=2)
    fig.suptitle(f"{title}: Jacobian energy maps (log10, off-self max = 0) and conditional change maps "
                 f"|D(x, C) - D(x, C minus c_j)|", fontsize=8)
    fig.tight_layout()
    return fig


def sigma_figure(per_sigma: list[dict], title: str):
    """Left: conditional leakage and its split (other objects / background) vs sigma. Right: the
    pixel effective radius vs sigma."""
    from numerics.experiments.common import matplotlib_headless

    plt = matplotlib_headless()
    sig = [r["sigma"] for r in per_sigma]
    nan = float("nan")
    get = lambda part, key: [nan if r[part].get(key) is None else r[part][key] for r in per_sigma]  # noqa: E731
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(sig, get("conditional", "leakage"), "o-", label="leakage (outside own footprint)")
    left.plot(sig, get("conditional", "other_objects"), "s--", label="onto other objects")
    left.plot(sig, get("conditional", "background"), "^--", label="onto background")
    left.set_xscale("log")
    left.set_ylim(-0.03, 1.03)
    left.set_xlabel("sigma")
    left.set_ylabel("fraction of change")
    left.legend(fontsize=7)
    left.set_title("conditional locality", fontsize=9)
    right.plot(sig, get("pixel", "effective_radius"), "o-", color="tab:purple")
    right.set_xscale("log")
    right.set_xlabel("sigma")
    right.set_ylabel(f"effective radius (px, {per_sigma[0]['pixel']['mass']:.0%} of off-self energy)")
    right.set_title("pixel locality", fontsize=9)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# -- correlate -------------------------------------------------------------------------------------

def _correlate(args) -> int:
    from localcomp.provenance import check_writable_dir, refuse_overwrite, write_json_atomic, write_run_record
    from numerics.experiments.common import save_figure
    from empirical.evaluation.correlation import (DEFAULT_METRICS, correlate, load_entries, plot_correlation,
                                                     y_quantity)

    entries = load_entries(args.entries, args.kmax, args.kmax_field, args.found_k)
    if args.labels is not None:
        if len(args.labels) != len(entries):
            raise UserError(f"--labels: {len(args.labels)} labels for {len(entries)} --entries; "
                            "give one per entry, in the same order")
        for entry, label in zip(entries, args.labels):
            entry["label"] = label
    metrics = list(args.metrics or DEFAULT_METRICS)
    unknown = [m for m in metrics if all(m not in e["summary"] for e in entries)]
    if unknown:
        raise UserError(f"--metrics: {', '.join(unknown)} not in any entry's summary "
                        f"(known: {', '.join(sorted(entries[0]['summary']))})")
    out = Path(args.out)
    check_writable_dir(out, "--out")
    refuse_overwrite([out / "correlation.json"], args.force)
    correlations = correlate(entries)
    save_figure(plot_correlation(entries, metrics, correlations), out / "correlation.png")
    write_json_atomic(out / "correlation.json", {"entries": entries, "spearman": correlations,
                                                 "plotted": metrics})
    write_run_record(out, {k: v for k, v in vars(args).items() if k != "func"}, None)
    for m in metrics:
        rho = correlations.get(m, {}).get("rho")
        interval = (correlations.get(m, {}).get("bootstrap95") or {}).get("interval")
        print(f"{m}: Spearman rho vs {y_quantity(entries)} = {'undefined' if rho is None else f'{rho:+.3f}'}"
              f"{'' if interval is None else f' (bootstrap 95% [{interval[0]:+.2f}, {interval[1]:+.2f}])'} "
              f"(n = {correlations.get(m, {}).get('n', 0)})")
    print(f"{out}/correlation.json, correlation.png")
    return 0


def _dose_response(args) -> int:
    from localcomp.provenance import check_writable_dir, refuse_overwrite, write_json_atomic, write_run_record
    from numerics.experiments.common import save_figure
    from empirical.evaluation.dose_response import dose_response_figure, load_point

    if any(k < 0 for k in args.found_k):
        raise UserError(f"--found-k: must be >= 0, got {args.found_k}")
    points = [load_point(spec, args.found_k) for spec in args.point]
    out = Path(args.out)
    check_writable_dir(out, "--out")
    refuse_overwrite([out / "dose_response.json"], args.force)
    save_figure(dose_response_figure(points, args.found_k), out / "dose_response.png")
    write_json_atomic(out / "dose_response.json", {"points": points, "found_k": list(args.found_k)})
    write_run_record(out, {k: v for k, v in vars(args).items() if k != "func"}, None)
    for p in points:
        leak = "n/a" if p["conditional_leakage"] is None else f"{p['conditional_leakage']:.2f}"
        print(f"{p['series']} k={p['k']}: Kmax {p['kmax']} {p['kmax_bootstrap95']}, extras allowed "
              f"{p['kmax_requested_found']}, leakage {leak}")
    print(f"{out}/dose_response.json")
    return 0
