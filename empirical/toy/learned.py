"""``localcomp toy learned``: learned vs exact denoisers on numerics' bump-image families.

Registered from the top level (``localcomp.cli``) into the ``toy`` subcommands, because
``numerics`` never imports ``empirical``; ``toy all`` (numerics' experiments) does not run it.
For each family (``cpc``: exactly CPC; ``shadow``: near-CPC, objects shade the cell to their
right) the study trains every model (``empirical.toy.study``) on fresh exact samples with 1..3
objects, then measures against the exact denoiser: relative score error per sigma and K,
conditional leakage per sigma, and Kmax (K = 0..12, exact counting). The exact denoiser and
the exact composition of its singletons (T4) are measured the same way as references.

Writes ``learned.json`` (every number), ``learned.png`` (error, leakage, success per K),
``samples.png`` (one sample per model and K) and ``run.json`` into ``--out``
(default ``results/toy/learned``). See docs/toy-learned.md.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from localcomp.errors import UserError
from numerics.experiments.common import (add_common_arguments, matplotlib_headless, refuse_existing_results,
                                         require, save_figure)

NAME = "learned"
FAMILY_NAMES = ("cpc", "shadow")
REFERENCES = ("exact", "exact-composed")
ERROR_FLOOR = 1e-4  # figure only: smaller errors (float rounding, no adjacent objects) drawn at the floor


def add_command(toy_subparsers) -> None:
    """Add ``learned`` to the ``localcomp toy`` subcommands (called by ``localcomp.cli``)."""
    from empirical.toy.study import CONDITIONING, MODEL_NAMES, StudyConfig

    d = StudyConfig()
    p = toy_subparsers.add_parser(
        NAME, help="learned (UNet, patch-local) vs exact denoisers on bump images (not in `toy all`)",
        description=__doc__.splitlines()[0])
    add_common_arguments(p, NAME)
    p.add_argument("--families", nargs="+", choices=FAMILY_NAMES, default=list(d.families),
                   help=f"families to study (default {' '.join(d.families)})")
    p.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(d.models),
                   help=f"models to train (default {' '.join(d.models)})")
    p.add_argument("--conditioning", choices=CONDITIONING, default=d.conditioning,
                   help=f"training conditioners: every object's cell or one random object's "
                        f"(default {d.conditioning}; see docs/toy-learned.md)")
    p.add_argument("--steps", type=int, default=d.steps, help=f"training steps per model (default {d.steps})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--train-objects", default="%d-%d" % d.train_objects,
                   help="objects per training image, MIN-MAX (default %d-%d)" % d.train_objects)
    p.add_argument("--size", type=int, default=d.size, help=f"image side in pixels, even (default {d.size})")
    p.add_argument("--shadow", type=float, default=d.shadow,
                   help=f"darkening of the shadow family, > 0 (default {d.shadow})")
    p.add_argument("--k", type=int, default=d.k, help=f"patch half-width in cells (default {d.k})")
    p.add_argument("--max-objects", type=int, default=d.max_objects, help=f"largest K (default {d.max_objects})")
    p.add_argument("--samples", type=int, default=d.samples, help=f"samples per K (default {d.samples})")
    p.add_argument("--sampler-steps", type=int, default=d.sampler_steps, help=f"Heun steps (default {d.sampler_steps})")
    p.add_argument("--points", type=int, default=d.points,
                   help=f"points per (sigma, K) for error and leakage (default {d.points})")
    p.set_defaults(func=run)


def _object_range(text: str) -> tuple[int, int]:
    """``"MIN-MAX"`` -> ``(MIN, MAX)``; ``UserError`` otherwise."""
    try:
        lo, hi = (int(t) for t in text.split("-"))
    except ValueError:
        raise UserError(f"--train-objects: {text!r} is not MIN-MAX (two integers)") from None
    return lo, hi


def config_from_args(args):
    """Validate the arguments (``UserError`` naming the flag) and build the ``StudyConfig``."""
    from empirical.toy.study import StudyConfig

    require(args.size >= 4 and args.size % 2 == 0, "--size", f"must be an even integer >= 4, got {args.size}")
    cells = (args.size // 2) ** 2
    lo, hi = _object_range(args.train_objects)
    require(1 <= lo <= hi <= cells, "--train-objects", f"need 1 <= MIN <= MAX <= {cells}, got {lo}-{hi}")
    for flag, value, least in (("--steps", args.steps, 1), ("--batch-size", args.batch_size, 1),
                               ("--samples", args.samples, 1), ("--sampler-steps", args.sampler_steps, 2),
                               ("--points", args.points, 2), ("--k", args.k, 0)):
        require(value >= least, flag, f"must be >= {least}, got {value}")
    require(0 <= args.max_objects <= cells, "--max-objects", f"must be in [0, {cells}], got {args.max_objects}")
    require(args.shadow > 0 or "shadow" not in args.families, "--shadow",
            f"must be > 0 for the shadow family, got {args.shadow}")
    defaults = StudyConfig()
    return replace(defaults, size=args.size, shadow=args.shadow,
                   families=tuple(dict.fromkeys(args.families)), models=tuple(dict.fromkeys(args.models)),
                   conditioning=args.conditioning, train_objects=(lo, hi), steps=args.steps,
                   batch_size=args.batch_size, k=args.k, max_objects=args.max_objects,
                   samples=args.samples, sampler_steps=args.sampler_steps, points=args.points,
                   error_ks=tuple(K for K in defaults.error_ks if K <= cells),
                   # leakage at the largest training count (in distribution), at least 2 so that
                   # removing one conditioner leaves another object in the image
                   leakage_k=min(max(2, hi), cells))


def _seed(seed: int, *path: int) -> int:
    import numpy as np
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0])


def measure(model, family, config, points, leak_points, request) -> tuple[dict, object]:
    """All three measurements of one denoiser; returns (results, Kmax sample images)."""
    from empirical.toy.bumps import ExactDenoiser
    from empirical.toy.study import generate, kmax_table, leakage, score_errors

    errors = score_errors(model, family, points, ExactDenoiser(family))
    leaks = [leakage(model, family, p) for p in leak_points]
    images = generate(model, family, request, config)
    table = kmax_table(images, family, request, config.threshold)
    lo, hi = config.train_objects
    inside = [r["relative_score_error"] for r in errors if lo <= r["K"] <= hi]
    beyond = [r["relative_score_error"] for r in errors if r["K"] > hi]
    summary = {"kmax": table["kmax"],
               "mean_relative_score_error_training_k": sum(inside) / max(len(inside), 1),
               "mean_relative_score_error_beyond_training_k": sum(beyond) / len(beyond) if beyond else None,
               "mean_leakage": sum(r["leakage"] for r in leaks) / len(leaks)}
    return {"summary": summary, "score_error": errors, "leakage": leaks, "kmax": table}, images


def study_family(name: str, index: int, config, seed: int, bar) -> tuple[dict, dict]:
    """Train and measure every model on one family; returns (results, sample images per model)."""
    import torch

    from empirical.toy.bumps import ExactDenoiser
    from empirical.toy.study import build_model, draw_points, kmax_request, train_model

    family = config.family(name)
    generator = torch.Generator().manual_seed(_seed(seed, index, 0))
    points = [draw_points(family, s, K, config.points, generator)
              for s in config.sigmas for K in config.error_ks]
    leak_points = [draw_points(family, s, config.leakage_k, config.points, generator) for s in config.sigmas]
    request = kmax_request(family, config, generator)
    entries, images = {}, {}
    for ref in REFERENCES:
        entries[ref], images[ref] = measure(ExactDenoiser(family, composed=ref == "exact-composed"),
                                            family, config, points, leak_points, request)
    for m, model_name in enumerate(config.models):
        bar.set_description(f"{name}/{model_name}")
        torch.manual_seed(_seed(seed, 100 + m))
        model = build_model(model_name, config)
        start = time.perf_counter()
        history = train_model(model, family, config, _seed(seed, index, 1 + m), desc=f"train {model_name}")
        train_seconds = time.perf_counter() - start
        entries[model_name], images[model_name] = measure(model, family, config, points, leak_points, request)
        entries[model_name].update(history=history, train_seconds=train_seconds,
                                   parameters=sum(p.numel() for p in model.parameters()))
        bar.update(1)
    result = {"family": family.name, "shadow": family.shadow, "models": entries,
              "requested_cells": request.cells.tolist(), "requested_k": request.ks.tolist()}
    return result, {"images": images, "request": request, "family": family}


def exact_self_check(config, seed: int) -> float:
    """Max |D_torch - D_numerics| of the exact denoiser at a few points of every family."""
    import jax.numpy as jnp
    import numpy as np
    import torch

    from empirical.toy.bumps import (ExactDenoiser, cells_to_present, conditioners, image_to_flat,
                                     numerics_model)
    from empirical.toy.study import draw_points
    from numerics import blocks

    worst = 0.0
    for i, name in enumerate(config.families):
        family = config.family(name)
        generator = torch.Generator().manual_seed(_seed(seed, 1000 + i))
        for sigma in (0.05, 1.0):
            p = draw_points(family, sigma, min(4, family.num_cells), 3, generator)
            cond, mask = conditioners(p.cells, family)
            ours = image_to_flat(ExactDenoiser(family)(p.x, torch.full((3,), sigma, dtype=torch.float64),
                                                       cond, mask)).numpy()
            present = cells_to_present(p.cells, family).numpy()
            for b in range(3):
                ref = blocks.denoise(numerics_model(family, present[b]),
                                     jnp.asarray(image_to_flat(p.x[b:b + 1])[0].numpy()), sigma)
                worst = max(worst, float(np.abs(np.asarray(ref) - ours[b]).max()))
    return worst


# -- figures -----------------------------------------------------------------------------------------

_STYLE = {"exact": ("k", "-"), "exact-composed": ("0.55", ":"), "unet-tokens": ("C0", "-"),
          "unet-global": ("C3", "-"), "patch": ("C2", "-")}


def _by_sigma(rows, key, keep):
    sigmas = sorted({r["sigma"] for r in rows})
    values = [[r[key] for r in rows if r["sigma"] == s and keep(r)] for s in sigmas]
    return sigmas, [sum(v) / len(v) for v in values]


def results_figure(results: dict, config):
    plt = matplotlib_headless()
    families = list(results)
    fig, axes = plt.subplots(len(families), 3, figsize=(14, 3.9 * len(families)), squeeze=False)
    lo, hi = config.train_objects
    k_far = max(config.error_ks)
    for row, fam in zip(axes, families):
        models = results[fam]["models"]
        for name, entry in models.items():
            color, style = _STYLE.get(name, ("C4", "-"))
            if name != "exact":
                s, v = _by_sigma(entry["score_error"], "relative_score_error", lambda r: lo <= r["K"] <= hi)
                if max(v) > ERROR_FLOOR:
                    row[0].loglog(s, [max(x, ERROR_FLOOR) for x in v], style, color=color, marker="o", ms=3,
                                  label=f"{name}, K={lo}..{hi}")
                if k_far > hi:
                    s, v = _by_sigma(entry["score_error"], "relative_score_error", lambda r: r["K"] == k_far)
                    if max(v) > ERROR_FLOOR:
                        row[0].loglog(s, [max(x, ERROR_FLOOR) for x in v], "--", color=color, marker="x",
                                      ms=4, label=f"{name}, K={k_far}")
            s, v = _by_sigma(entry["leakage"], "leakage", lambda r: True)
            row[1].semilogx(s, v, style, color=color, marker="o", ms=3, label=name)
            ks = sorted(int(k) for k in entry["kmax"]["per_k"])
            row[2].plot(ks, [entry["kmax"]["per_k"][k]["success"] for k in ks], style, color=color,
                        marker="o", ms=3, label=f"{name} (Kmax {entry['kmax']['kmax']})")
        row[0].set(xlabel="sigma", ylabel=f"sum|D-D*|^2 / sum|D*-x|^2 (floored at {ERROR_FLOOR:g})",
                   title=f"{fam}: relative score error vs exact")
        row[1].set(xlabel="sigma", ylabel="fraction of change outside the cell", ylim=(-0.03, 1.03),
                   title=f"{fam}: conditional leakage (K={config.leakage_k}, remove each)")
        row[2].axvspan(lo - 0.3, hi + 0.3, color="0.9", zorder=0)
        row[2].axhline(config.threshold, color="0.7", lw=0.8)
        row[2].set(xlabel="requested objects K (grey: training range)", ylabel="success rate",
                   ylim=(-0.03, 1.03), title=f"{fam}: exact count at the requested cells")
        for ax in row:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def samples_figure(samples: dict, ks=(1, 3, 6, 9, 12)):
    plt = matplotlib_headless()
    blocks_ = [(fam, name) for fam, s in samples.items() for name in s["images"]]
    ks = [k for k in ks if any(int(k) == int(x) for x in next(iter(samples.values()))["request"].ks)]
    fig, axes = plt.subplots(len(blocks_), len(ks), figsize=(1.6 * len(ks) + 1.5, 1.6 * len(blocks_)),
                             squeeze=False)
    for r, (fam, name) in enumerate(blocks_):
        s = samples[fam]
        family, request, images = s["family"], s["request"], s["images"][name]
        for c, K in enumerate(ks):
            i = int((request.ks == K).nonzero()[0])
            ax = axes[r, c]
            ax.imshow(images[i].mean(dim=0).numpy(), cmap="gray", vmin=-0.3, vmax=1.3)
            cells = [int(n) for n in request.cells[i] if n >= 0]
            ax.plot([2 * (n % family.grid) + 0.5 for n in cells], [2 * (n // family.grid) + 0.5 for n in cells],
                    "r.", ms=3)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(f"K={K}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{fam}\n{name}", fontsize=8)
    fig.suptitle("one sample per model and K (red dots: requested cells)", fontsize=9)
    fig.tight_layout()
    return fig


# -- the command ---------------------------------------------------------------------------------------

def run(args) -> int:
    config = config_from_args(args)  # raises UserError before anything is written
    refuse_existing_results(args, NAME)  # learned.json / learned.png already there: --force
    import torch
    from tqdm import tqdm

    from localcomp.provenance import write_json_atomic, write_run_record

    torch.set_num_threads(1)
    out = Path(args.out)
    start = time.perf_counter()
    check = exact_self_check(config, args.seed)
    results, samples = {}, {}
    with tqdm(total=len(config.families) * len(config.models), desc=NAME, unit="model") as bar:
        for i, name in enumerate(config.families):
            results[name], samples[name] = study_family(name, i, config, args.seed, bar)
    report = {"config": asdict(config), "seed": args.seed, "families": results,
              "exact_vs_numerics_max_abs_diff": check, "seconds": time.perf_counter() - start}
    write_run_record(out, config={"study": asdict(config), "out": str(out)}, seed=args.seed)
    write_json_atomic(out / f"{NAME}.json", report)
    save_figure(results_figure(results, config), out / f"{NAME}.png")
    save_figure(samples_figure(samples), out / "samples.png")
    print_summary(results, config)
    print(f"exact denoiser vs numerics: max |diff| {check:.1e}; {report['seconds']:.0f} s; wrote "
          f"{out / (NAME + '.json')}, {out / (NAME + '.png')}, {out / 'samples.png'}", file=sys.stderr)
    return 0


def print_summary(results: dict, config) -> None:
    lo, hi = config.train_objects
    print(f"{'family':10s} {'model':15s} {'Kmax':>4s} {'err K<=' + str(hi):>10s} {'err K>' + str(hi):>10s} "
          f"{'leakage':>8s}")
    for fam, res in results.items():
        for name, entry in res["models"].items():
            s = entry["summary"]
            beyond = s["mean_relative_score_error_beyond_training_k"]
            print(f"{fam:10s} {name:15s} {s['kmax']:4d} {s['mean_relative_score_error_training_k']:10.3g} "
                  f"{beyond if beyond is None else format(beyond, '10.3g'):>10} {s['mean_leakage']:8.3f}")

