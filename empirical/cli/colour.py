"""``localcomp clevr colour ...``: the colour-conditioned CLEVR measurements (issue 13 item 1;
docs/colour-clevr.md). Heavy imports inside the handlers.

``clevr colour readout --data DIR --fit-images N --out DIR [--eval-data DIR --eval-images M]``
    fit the colour read-out on the first N renders of --data, validate it on the rest (and on
    --eval-data): ``readout.pt``, ``readout.json`` (per-colour accuracy, confusion), ``confusion.png``.
``clevr colour kmax --run RUN --detector PT --readout PT --out DIR [--max-k 8 --num-sets 16 --n 1]``
    colour length generalization: ``colour_kmax.json``, ``colour_kmax_samples.npz``, grids.
``clevr colour locality --run RUN --detector PT --readout PT --samples NPZ --out DIR``
    pixel-space footprint share of each removed colour on the run's own samples
    (a location run: ``--data DIR`` renders, footprint = disc at the removed location).
``clevr colour features --run RUN --data DIR --out DIR``
    T8 mean-shift |cos| matrices and removal-support overlaps in pixel and feature space.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from localcomp.errors import UserError


def _sigmas(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise UserError(f"--sigmas: {text!r} is not a comma-separated list of numbers") from None
    if not values or any(v <= 0 for v in values):
        raise UserError(f"--sigmas: every value must be > 0, got {text!r}")
    return values


def add_colour_commands(clevr_subparsers) -> None:
    """Add ``colour readout|kmax|locality|features`` to the ``clevr`` subcommands."""
    p = clevr_subparsers.add_parser("colour", help="colour-conditioned CLEVR: read-out, Kmax, locality")
    sub = p.add_subparsers(dest="colour_command", required=True, metavar="STEP")

    r = sub.add_parser("readout", help="fit and validate the colour read-out at detected centres")
    r.add_argument("--data", required=True, help="rendered CLEVR directory (fit on its first --fit-images)")
    r.add_argument("--fit-images", type=int, default=4500)
    r.add_argument("--eval-data", default=None, help="a second held-out dataset to validate on")
    r.add_argument("--eval-images", type=int, default=300)
    r.add_argument("--detector", default="results/detector/detector.pt")
    r.add_argument("--epochs", type=int, default=30)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", required=True)
    r.add_argument("--force", action="store_true")
    r.set_defaults(func=_readout)

    k = sub.add_parser("kmax", help="colour Kmax: K = 0..max-k requested colours, multiset match")
    k.add_argument("--run", required=True)
    k.add_argument("--detector", required=True)
    k.add_argument("--readout", required=True, help="readout.pt of `clevr colour readout`")
    k.add_argument("--max-k", type=int, default=8)
    k.add_argument("--num-sets", type=int, default=16, help="colour sets per K")
    k.add_argument("--n", type=int, default=1, help="samples per colour set")
    k.add_argument("--sampler-steps", type=int, default=12)
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--out", required=True)
    k.add_argument("--force", action="store_true")
    k.set_defaults(func=_kmax)

    lo = sub.add_parser("locality", help="pixel-space footprint share of each removed colour")
    lo.add_argument("--run", required=True)
    lo.add_argument("--detector", default="results/detector/detector.pt")
    lo.add_argument("--readout", default=None, help="colour runs: readout.pt")
    lo.add_argument("--samples", default=None, help="colour runs: colour_kmax_samples.npz of the run")
    lo.add_argument("--ks", default="2,3", help="colour runs: which K of the samples to use")
    lo.add_argument("--data", default=None, help="location runs: renders (items with >= 2 objects)")
    lo.add_argument("--start", type=int, default=4500, help="location runs: first image index of --data")
    lo.add_argument("--num-images", type=int, default=32)
    lo.add_argument("--radius", type=float, default=None, help="footprint disc radius in pixels (H / 8)")
    lo.add_argument("--sigmas", default="0.1,0.5,2.0")
    lo.add_argument("--seed", type=int, default=0)
    lo.add_argument("--out", required=True)
    lo.add_argument("--force", action="store_true")
    lo.set_defaults(func=_locality)

    f = sub.add_parser("features", help="T8 mean-shift cosines and removal overlaps, pixel vs feature space")
    f.add_argument("--run", required=True)
    f.add_argument("--data", required=True, help="renders (held-out images from --start)")
    f.add_argument("--start", type=int, default=4500)
    f.add_argument("--num-images", type=int, default=16)
    f.add_argument("--sigmas", default="0.1,0.5,2.0")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", required=True)
    f.add_argument("--force", action="store_true")
    f.set_defaults(func=_features)


def _prepare(out: str, files: list[str], force: bool) -> Path:
    from localcomp.provenance import check_writable_dir, refuse_overwrite
    path = Path(out)
    check_writable_dir(path, "--out")
    refuse_overwrite([path / name for name in files], force)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _record(out: Path, args, name: str, extra: dict | None = None) -> None:
    from localcomp.provenance import write_run_record
    config = {k: v for k, v in vars(args).items() if k != "func"}
    write_run_record(out, {**config, **(extra or {})}, args.seed, name=name)


def _confusion_figure(summaries: dict):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    fig, axes = plt.subplots(1, len(summaries), figsize=(4.2 * len(summaries), 4), squeeze=False)
    for ax, (title, s) in zip(axes[0], summaries.items()):
        m = np.asarray(s["confusion"], np.float64)
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(s["colours"])), s["colours"], rotation=90)
        ax.set_yticks(range(len(s["colours"])), s["colours"])
        ax.set_title(f"{title}\nacc {s['accuracy']:.3f}, min/colour {s['min_per_colour']:.3f}", fontsize=8)
        ax.set_xlabel("read")
        ax.set_ylabel("true")
    return fig


def _readout(args) -> int:
    from empirical.clevr.dataset import load_dataset
    from empirical.detection.colour_readout import fit_readout, readout_pairs, training_patches
    from empirical.detection.detector import load_detector
    from empirical.evaluation.colour import confusion_summary
    from localcomp.provenance import write_json_atomic
    from numerics.experiments.common import save_figure

    out = _prepare(args.out, ["readout.json", "readout.pt"], args.force)
    data = load_dataset(args.data)
    if not 0 < args.fit_images < len(data.metadata):
        raise UserError(f"--fit-images: must be in 1..{len(data.metadata) - 1} (the rest is held out)")
    features, labels = training_patches(data, range(args.fit_images), seed=args.seed)
    readout = fit_readout(features, labels, epochs=args.epochs, seed=args.seed)
    readout.info.update(data=str(args.data), fit_images=args.fit_images)
    readout.save(out / "readout.pt")
    detector = load_detector(args.detector)
    report = {"fit": readout.info, "held_out": {}}
    figures = {}
    sets = [("data_held_out", data, range(args.fit_images, len(data.metadata)), str(args.data))]
    if args.eval_data:
        eval_data = load_dataset(args.eval_data)
        sets.append(("eval_data", eval_data, range(min(args.eval_images, len(eval_data.metadata))),
                     str(args.eval_data)))
    for name, dataset, indices, path in sets:
        pairs = readout_pairs(readout, detector, dataset, indices)
        entry = {key: pairs[key] for key in ("images", "objects", "matched_detections", "tolerance")}
        entry["path"], entry["indices"] = path, [indices.start, indices.stop]
        for where in ("at_detections", "at_true_centres"):
            entry[where] = confusion_summary(*pairs[where])
            figures[f"{name} {where}"] = entry[where]
        report["held_out"][name] = entry
        s = entry["at_detections"]
        print(f"{name}: {s['n']} matched detections, accuracy {s['accuracy']:.4f}, "
              f"lowest per colour {s['min_per_colour']:.4f}")
    write_json_atomic(out / "readout.json", report)
    save_figure(_confusion_figure(figures), out / "confusion.png")
    _record(out, args, "readout.run.json")
    return 0


def _kmax(args) -> int:
    import numpy as np
    import torch

    from empirical.clevr.colour import colour_onehot, random_colour_sets
    from empirical.detection.colour_readout import load_readout
    from empirical.detection.detector import load_detector
    from empirical.evaluation.colour import colour_table, evaluate_colour_kmax
    from empirical.evaluation.kmax import annotated_grid
    from empirical.models.sampling import sample_for_sets, to_uint8, write_png
    from empirical.training.train import load_trained
    from localcomp.provenance import write_bytes_atomic, write_json_atomic

    if args.max_k < 0 or args.num_sets < 1 or args.n < 1:
        raise UserError("--max-k must be >= 0, --num-sets and --n >= 1")
    for flag, path in (("--detector", args.detector), ("--readout", args.readout)):
        if not Path(path).exists():
            raise UserError(f"{flag}: {path} does not exist")
    out = _prepare(args.out, ["colour_kmax.json"], args.force)
    model, config, step = load_trained(args.run)
    if getattr(config.unet, "cond_input", "location") != "colour":
        raise UserError(f"--run: {args.run} is not a colour-conditioned run ({config.experiment})")
    samples_by_k, requested_by_k, arrays = {}, {}, {"checkpoint_step": np.array(step)}
    for k in range(args.max_k + 1):
        sets = random_colour_sets(k, args.num_sets, args.seed)
        conds = [torch.from_numpy(colour_onehot(s)) for s in sets]
        pixels = to_uint8(sample_for_sets(model, conds, config.resolution, args.n, args.sampler_steps,
                                          args.seed + k, progress=True))
        requested = np.stack([s for s in sets for _ in range(args.n)]).reshape(len(sets) * args.n, k)
        samples_by_k[k], requested_by_k[k] = pixels, requested
        arrays[f"images_k{k}"], arrays[f"colours_k{k}"] = pixels, requested
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes_atomic(out / "colour_kmax_samples.npz", buffer.getvalue())
    result = evaluate_colour_kmax(samples_by_k, requested_by_k, load_detector(args.detector),
                                  load_readout(args.readout), samples_per_set=args.n, seed=args.seed)
    for k, pixels in samples_by_k.items():
        marks = result["per_sample"][k]
        grid = annotated_grid(pixels, np.zeros((len(pixels), 0, 2)), k, marks["detections"], marks["success"],
                              min(len(pixels), 8), scale=max(1, 128 // pixels.shape[1]))
        write_png(out / f"colour_grid_k{k:02d}.png", grid)
    report = {"experiment": config.experiment, "kmax": result["kmax"],
              "kmax_requested_found": result["kmax_requested_found"], "evaluation": result,
              "run": str(args.run), "checkpoint_step": step, "sampler_steps": args.sampler_steps,
              "num_sets": args.num_sets, "samples_per_set": args.n, "detector": str(args.detector),
              "readout": str(args.readout), "colour_sets": "each colour i.i.d. uniform over the 8 "
              "(empirical.clevr.colour.random_colour_sets, default_rng([seed, K]))"}
    write_json_atomic(out / "colour_kmax.json", report)
    _record(out, args, "colour_kmax.run.json", {"checkpoint_step": step, "train_config": str(config)})
    print(colour_table(result))
    print(f"{config.experiment} (step {step}): colour Kmax = {result['kmax']} "
          f"{result['kmax_bootstrap95']} (extras allowed: {result['kmax_requested_found']} "
          f"{result['kmax_requested_found_bootstrap95']}); {out}/colour_kmax.json")
    return 0


def _held_out_items(dataset, start: int, count: int, min_objects: int) -> list[int]:
    items = [i for i in range(start, len(dataset)) if dataset[i][1].shape[0] >= min_objects][:count]
    if not items:
        raise UserError(f"--data: no image from index {start} on has >= {min_objects} objects")
    return items


def _locality(args) -> int:
    import numpy as np
    import torch

    from empirical.clevr.colour import colour_onehot
    from empirical.clevr.dataset import ClevrDataset, collate_sets
    from empirical.detection.colour_readout import load_readout
    from empirical.detection.detector import detect_objects, load_detector
    from empirical.diagnostics.colour import colour_footprints, footprint_share
    from empirical.diagnostics.locality import disc_footprints
    from empirical.training.train import load_trained
    from localcomp.provenance import write_json_atomic

    out = _prepare(args.out, ["footprint_share.json"], args.force)
    model, config, step = load_trained(args.run)
    sigmas = _sigmas(args.sigmas)
    res = config.resolution
    radius = args.radius if args.radius is not None else res / 8
    colour_run = getattr(config.unet, "cond_input", "location") == "colour"
    if colour_run:
        if not (args.samples and args.readout):
            raise UserError("--samples and --readout: required for a colour run")
        ks = [int(t) for t in args.ks.split(",")]
        with np.load(args.samples) as saved:
            images = np.concatenate([saved[f"images_k{k}"] for k in ks])[:args.num_images]
            colours = [c for k in ks for c in saved[f"colours_k{k}"]][:args.num_images]
        detections = detect_objects(load_detector(args.detector), images)
        read = load_readout(args.readout)(images, detections)
        kmax = max(len(c) for c in colours)
        cond = torch.zeros(len(images), kmax, 8)
        mask = torch.zeros(len(images), kmax, dtype=torch.bool)
        index = torch.zeros(len(images), kmax, dtype=torch.long)
        for b, c in enumerate(colours):
            cond[b, :len(c)] = torch.from_numpy(colour_onehot(c))
            mask[b, :len(c)] = True
            index[b, :len(c)] = torch.as_tensor(np.asarray(c, np.int64))
        clean = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
        footprints = colour_footprints(detections, read, index, mask, res, res, radius)
        source = {"samples": str(args.samples), "ks": ks,
                  "footprint": "discs at the detections whose read colour is the removed colour"}
    else:
        if not args.data:
            raise UserError("--data: required for a location run")
        dataset = ClevrDataset(args.data)
        items = _held_out_items(dataset, args.start, args.num_images, 2)
        clean, cond, mask = collate_sets([dataset[i] for i in items])
        footprints = disc_footprints(cond, mask, res, res, radius)
        source = {"data": str(args.data), "items": items, "footprint": "disc at the removed location"}
    result = footprint_share(model, clean, cond, mask, footprints, sigmas, args.seed)
    report = {"experiment": config.experiment, "checkpoint_step": step, "radius": radius,
              "images": int(len(clean)), **source, **result}
    write_json_atomic(out / "footprint_share.json", report)
    _record(out, args, "footprint_share.run.json", {"checkpoint_step": step})
    for entry in result["per_sigma"]:
        print(f"sigma {entry['sigma']}: inside {entry['inside']}, area {entry['area']}, "
              f"removals {entry['removals']} (no footprint: {entry['no_footprint']})")
    return 0


def _cosine_figure(report: dict):
    """|cos| matrices of the mean shifts: rows = sigmas, columns = spaces, one colour scale [0, 1]."""
    import numpy as np
    from numerics.experiments.common import matplotlib_headless

    plt = matplotlib_headless()
    per = report["mean_shift"]["per_sigma"]
    spaces = [s for s in ("pixel", "mid", "dec") if s in per[0]]
    fig, axes = plt.subplots(len(per), len(spaces), figsize=(3.2 * len(spaces), 3.3 * len(per)), squeeze=False)
    for r, entry in enumerate(per):
        for c, space in enumerate(spaces):
            ax = axes[r][c]
            image = ax.imshow(np.asarray(entry[space]["matrix"]), vmin=0, vmax=1, cmap="magma")
            ax.set_title(f"{space}, sigma {entry['sigma']}: mean off-diag {entry[space]['mean_offdiag']:.2f}",
                         fontsize=7)
            labels = report["conditioner_labels"]
            ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
            ax.set_yticks(range(len(labels)), labels, fontsize=6)
    fig.suptitle(f"|cos| of mean shifts d_i = mu_i - mu_empty ({report['experiment']})", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.92, 0.97))
    fig.colorbar(image, cax=fig.add_axes((0.93, 0.3, 0.015, 0.4)), label="|cos|")
    return fig


def _features(args) -> int:
    import numpy as np
    import torch

    from empirical.clevr.colour import ColourDataset, colour_onehot
    from empirical.clevr.dataset import ClevrDataset, collate_sets
    from empirical.clevr.scene import COLOR_NAMES
    from empirical.diagnostics.colour import mean_shift_cosines, removal_overlap
    from empirical.training.train import load_trained
    from localcomp.provenance import write_json_atomic
    from numerics.experiments.common import save_figure

    out = _prepare(args.out, ["features.json"], args.force)
    model, config, step = load_trained(args.run)
    if config.model_type != "unet":
        raise UserError(f"--run: feature taps need a UNet run, {args.run} is {config.model_type}")
    sigmas = _sigmas(args.sigmas)
    colour_run = getattr(config.unet, "cond_input", "location") == "colour"
    dataset = ColourDataset(args.data) if colour_run else ClevrDataset(args.data)
    first = list(range(args.start, min(args.start + args.num_images, len(dataset))))
    if not first:
        raise UserError(f"--start: {args.start} is past the {len(dataset)} images of --data")
    clean = torch.stack([dataset[i][0] for i in first])
    if colour_run:
        singletons = torch.from_numpy(colour_onehot(range(8)))
        labels = list(COLOR_NAMES)
    else:  # 8 real object locations: the first object of 8 held-out images
        singletons = torch.stack([dataset[i][1][0] for i in range(args.start, args.start + 8)])
        labels = [f"({u:.2f},{v:.2f})" for u, v in singletons.tolist()]
    shifts = mean_shift_cosines(model, clean, singletons, sigmas, args.seed)
    items = _held_out_items(dataset, args.start, args.num_images, 2)
    images, cond, mask = collate_sets([dataset[i] for i in items])
    overlaps = removal_overlap(model, images, cond, mask, sigmas, args.seed)
    report = {"experiment": config.experiment, "checkpoint_step": step, "conditioner": "colour" if colour_run
              else "location", "conditioner_labels": labels, "singletons": singletons.tolist(),
              "mean_shift_images": first, "overlap_items": items, "mean_shift": shifts, "removal_overlap": overlaps}
    write_json_atomic(out / "features.json", report)
    save_figure(_cosine_figure(report), out / "mean_shift_cosines.png")
    _record(out, args, "features.run.json", {"checkpoint_step": step})
    for entry, ov in zip(shifts["per_sigma"], overlaps["per_sigma"]):
        line = [f"sigma {entry['sigma']}:"]
        for space in ("pixel", "mid", "dec"):
            o = ov[space]
            line.append(f"{space} |cos| {entry[space]['mean_offdiag']:.3f} overlap {o['overlap']:.3f}/"
                        f"{o['overlap_shuffled']:.3f}")
        print("  ".join(line))
    return 0
