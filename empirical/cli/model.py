"""CLEVR model jobs: ``clevr train``, ``clevr sample`` (heavy imports inside the handlers).

``localcomp clevr train --experiment NAME --preset tiny|mini|paper --data DIR|synthetic[:MIN-MAX]
--out RUN_DIR [--seed S] [--steps N] [--batch-size B] [--precision fp32|bf16]`` trains or resumes
(rerun the same command after a kill); under ``torchrun --nproc-per-node N`` it runs data-parallel on gloo.

``--precision`` (``train``, ``sample``, ``kmax``; ``empirical.models.precision``): the network's forward
in float32 or under bfloat16 autocast. Default: ``train`` resumes in the checkpoint's precision and
starts a new run in ``bf16`` where the hardware has bfloat16 arithmetic, else ``fp32``; ``sample``
and ``kmax`` use the same hardware default. The resolved value is recorded (``train.json``,
``run.json``, ``kmax.json``).

``localcomp clevr sample --run RUN_DIR (--locations "u,v;u,v" | --from-dataset DIR --k K) --out DIR``
writes ``samples.npz``, ``grid.png`` and ``run.json``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from localcomp.errors import UserError

from empirical.clevr.sources import load_data as load_training_data


def add_model_commands(clevr_subparsers) -> None:
    """Add ``train``, ``sample``, ``kmax`` and ``table`` to the ``clevr`` subcommands."""
    from empirical.models.precision import PRECISIONS
    from empirical.training.experiments import EXPERIMENTS, PRESETS

    precision_help = ("network forward in float32 or under bfloat16 autocast (default: bf16 where the "
                      "hardware has bfloat16 arithmetic, else fp32)")

    t = clevr_subparsers.add_parser("train", help="train (or resume) a CLEVR denoiser")
    t.add_argument("--experiment", required=True, help=f"one of: {', '.join(EXPERIMENTS)}")
    t.add_argument("--preset", default="mini", help=f"one of: {', '.join(PRESETS)}")
    t.add_argument("--data", required=True,
                   help="CLEVR dataset directory, or 'synthetic[:MIN-MAX]' (Gaussian blobs, smoke test)")
    t.add_argument("--out", required=True, help="run directory (rerun the same command to resume)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps", type=int, default=None, help="total training steps (default: preset)")
    t.add_argument("--batch-size", type=int, default=None, help="global batch size (default: preset)")
    t.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints")
    t.add_argument("--lr", type=float, default=None, help="learning rate (default: preset)")
    t.add_argument("--k", type=int, default=None,
                   help="patch experiments: patch half-width in cells (default: the experiment's)")
    t.add_argument("--keep-steps", default=None,
                   help="comma-separated steps at which to keep a copy of the model as a run directory "
                        "OUT/steps/STEP (checkpoint.pt, run.json): Kmax at part of the budget")
    t.add_argument("--precision", choices=PRECISIONS, default=None,
                   help=precision_help.replace("(default: ", "(default: the checkpoint's when resuming, else ")
                   + "; resuming in another precision than the checkpoint's is refused")
    t.set_defaults(func=_train)

    s = clevr_subparsers.add_parser("sample", help="sample a trained denoiser for given locations")
    s.add_argument("--run", required=True, help="training run directory (checkpoint.pt)")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--locations", help="'u1,v1;u2,v2;...' in [-1,1] (u right, v down); '' = empty set; "
                       "write --locations=-0.5,0.2 when the first value is negative")
    where.add_argument("--from-dataset", help="take location sets of K-object images from this dataset")
    s.add_argument("--k", type=int, default=None, help="with --from-dataset: number of objects")
    s.add_argument("--num-sets", type=int, default=8, help="with --from-dataset: how many location sets")
    s.add_argument("--n", type=int, default=4, help="samples per location set")
    s.add_argument("--sampler-steps", type=int, default=None, help="Heun steps (default: preset)")
    s.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="output directory (default: RUN_DIR/samples)")
    s.add_argument("--force", action="store_true", help="overwrite samples.npz already in --out")
    s.add_argument("--precision", choices=PRECISIONS, default=None, help=precision_help)
    s.set_defaults(func=_sample)

    k = clevr_subparsers.add_parser("kmax", help="per-K success rates (K = 0..12) and Kmax of a run")
    k.add_argument("--run", required=True, help="training run directory")
    k.add_argument("--data", required=True, help="dataset with 0..K objects: the requested location sets "
                   "(or synthetic:MIN-MAX blob scenes)")
    k.add_argument("--detector", required=True, help="detector checkpoint (localcomp clevr detector train)")
    k.add_argument("--max-k", type=int, default=12)
    k.add_argument("--ks", default=None, metavar="K,K,...",
                   help="sample only these K (comma-separated, e.g. 1,3,6,8) instead of 0..max-k: a "
                        "cheaper evaluation whose K are the same samples a full run draws (sample j of "
                        "set i at K is seeded by seed + K); strict Kmax then runs over the tested K")
    k.add_argument("--num-sets", type=int, default=16,
                   help="location sets per K (default 16: with --n 2, 32 samples per K, a Wilson 95%% "
                        "interval of at most about +-0.17; issue 11)")
    k.add_argument("--n", type=int, default=2, help="samples per location set")
    k.add_argument("--sampler-steps", type=int, default=None)
    k.add_argument("--training-objects", default=None,
                   help="row label such as 1-3 (default: from the run's dataset manifest)")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--out", default=None, help="output directory (default: RUN_DIR)")
    k.add_argument("--reuse-samples", action="store_true",
                   help="re-detect the samples in OUT/kmax_samples.npz (same checkpoint step, sets and "
                        "samples per set) instead of sampling again, e.g. with a newer detector; "
                        "without a checkpoint in RUN_DIR (a run copied to results/) the step, "
                        "experiment, sampler steps and row come from OUT/kmax.json; it rewrites "
                        "OUT/kmax.json and the grids in place (no --force needed)")
    k.add_argument("--force", action="store_true",
                   help="overwrite an existing OUT/kmax.json (and its samples) by sampling again")
    k.add_argument("--precision", choices=PRECISIONS, default=None,
                   help=precision_help + "; with --reuse-samples the precision the samples were drawn in")
    k.set_defaults(func=_kmax)

    tb = clevr_subparsers.add_parser("table", help="Table 1 (Markdown + JSON) from kmax.json files")
    tb.add_argument("--runs", required=True, nargs="+", help="run directories or kmax.json files")
    tb.add_argument("--out", required=True, help="output directory (table1.md, table1.json)")
    tb.add_argument("--force", action="store_true", help="overwrite table1.json / table1.md in --out")
    tb.set_defaults(func=_table)


def _train(args) -> int:
    from empirical.models.precision import resolve_precision
    from empirical.training.experiments import EXPERIMENTS, make_train_config
    from empirical.training.train import NonFiniteLossError, checkpoint_precision, train, training_device

    precision = (args.precision or checkpoint_precision(args.out)
                 or resolve_precision(None, training_device()))
    config = make_train_config(args.experiment, args.preset, args.seed, args.steps, args.batch_size,
                               args.checkpoint_every, args.lr, precision, args.k)
    keep_steps = parse_keep_steps(args.keep_steps, config.schedule.steps)
    conditioner = EXPERIMENTS[args.experiment].conditioner  # "colour": the colour view of --data
    dataset = load_training_data(args.data, config.resolution, args.seed, conditioner)
    try:
        summary = train(config, dataset, args.out, data_path=args.data, keep_steps=keep_steps)
    except NonFiniteLossError as error:
        raise UserError(str(error)) from None
    last = summary["history"][-1]["mean_loss"] if summary["history"] else float("nan")
    if summary["rank"] == 0:
        print(f"{args.experiment}: step {summary['step']}/{summary['steps']}, last mean loss {last:.4f} "
              f"({config.precision}), checkpoint in {args.out}")
    return 0


def parse_keep_steps(text: str | None, steps: int) -> tuple[int, ...]:
    """``--keep-steps "750,1500"`` -> ``(750, 1500)``; a UserError for a step outside 1..steps."""
    if not text:
        return ()
    try:
        kept = tuple(sorted({int(t) for t in text.split(",") if t.strip()}))
    except ValueError:
        raise UserError(f"--keep-steps: {text!r} is not a comma-separated list of steps") from None
    bad = [k for k in kept if not 1 <= k <= steps]
    if bad:
        raise UserError(f"--keep-steps: {', '.join(map(str, bad))} outside 1..{steps} (the training steps)")
    return kept


def location_sets_by_k(dataset, ks, num_sets: int) -> dict[int, list]:
    """:func:`empirical.evaluation.kmax.location_sets_by_k` with the error naming the flags."""
    from empirical.evaluation.kmax import location_sets_by_k as sets_by_k
    try:
        return sets_by_k(dataset, ks, num_sets)
    except ValueError as error:
        raise UserError(f"--k/--data: {error}") from None


def _sample(args) -> int:
    import numpy as np

    from localcomp.provenance import check_writable_dir, refuse_overwrite, write_bytes_atomic, write_run_record
    from empirical.models.precision import with_precision
    from empirical.models.sampling import image_grid, parse_locations, sample_for_sets, to_uint8, write_png
    from empirical.training.train import load_trained

    if args.n < 1:
        raise UserError(f"--n: must be >= 1, got {args.n}")
    if args.from_dataset is not None:
        if args.k is None or args.k < 0:
            raise UserError("--k: required (>= 0) with --from-dataset")
        from empirical.clevr.dataset import ClevrDataset
        sets = location_sets_by_k(ClevrDataset(args.from_dataset), [args.k], args.num_sets)[args.k]
    else:
        sets = [parse_locations(args.locations)]
    model, config, step = load_trained(args.run, use_ema=not args.raw)
    model, precision = with_precision(model, args.precision)
    steps = args.sampler_steps or config.schedule.sampler_steps
    out = Path(args.out or Path(args.run) / "samples")
    check_writable_dir(out, "--out")
    refuse_overwrite([out / "samples.npz"], args.force)
    images = sample_for_sets(model, sets, config.resolution, args.n, steps, args.seed, progress=True)
    pixels = to_uint8(images)
    kmax = max(s.shape[0] for s in sets)
    locations = np.zeros((len(sets), kmax, 2), np.float32)
    mask = np.zeros((len(sets), kmax), bool)
    for i, s in enumerate(sets):
        locations[i, :len(s)], mask[i, :len(s)] = s.numpy(), True
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=pixels.reshape(len(sets), args.n, *pixels.shape[1:]),
                        locations=locations, mask=mask)
    write_bytes_atomic(out / "samples.npz", buffer.getvalue())
    write_png(out / "grid.png", image_grid(pixels, args.n), scale=max(1, 128 // config.resolution))
    write_run_record(out, {"run": str(args.run), "checkpoint_step": step, "ema": not args.raw,
                           "sampler_steps": steps, "samples_per_set": args.n, "precision": precision,
                           "sets": [s.tolist() for s in sets]}, args.seed)
    print(f"{len(sets) * args.n} samples ({config.experiment}, step {step}, {precision}) -> "
          f"{out}/grid.png, samples.npz")
    return 0


def training_objects_label(run_dir: str) -> str:
    """``"1-3"`` etc. from the manifest of the dataset the run was trained on."""
    from empirical.evaluation.table import training_label
    record = json.loads((Path(run_dir) / "run.json").read_text())
    data = record.get("config", {}).get("data")
    manifest = Path(str(data)) / "manifest.json"
    if not data or not manifest.exists():
        raise UserError(f"--training-objects: required, {run_dir} was not trained on a CLEVR dataset "
                        f"directory with a manifest ({data})")
    info = json.loads(manifest.read_text())
    return training_label(int(info["min_objects"]), int(info["max_objects"]))


def load_kmax_samples(path: Path, step: int, sets_by_k: dict, n: int) -> tuple[dict, dict]:
    """``(samples_by_k, requested_by_k)`` from a ``kmax_samples.npz`` written by ``clevr kmax``;
    a UserError when it is missing or was made from another checkpoint or other location sets."""
    import numpy as np

    if not path.exists():
        raise UserError(f"--reuse-samples: {path} does not exist; run kmax without it first")
    with np.load(path) as saved:
        saved_step = int(saved["checkpoint_step"]) if "checkpoint_step" in saved else None
        if saved_step != step:
            raise UserError(f"--reuse-samples: {path} holds samples of checkpoint step {saved_step}, "
                            f"the run is at step {step}")
        samples_by_k, requested_by_k = {}, {}
        for k_objects, sets in sets_by_k.items():
            expected = np.stack([s.numpy() for s in sets for _ in range(n)]).reshape(
                len(sets) * n, k_objects, 2) if sets else None
            key = f"locations_k{k_objects}"
            if key not in saved or saved[key].shape != expected.shape or not np.allclose(saved[key], expected):
                raise UserError(f"--reuse-samples: {path} was sampled for other location sets at "
                                f"K = {k_objects} (check --data, --num-sets, --n, --max-k, --ks)")
            samples_by_k[k_objects] = saved[f"images_k{k_objects}"]
            requested_by_k[k_objects] = saved[key]
    return samples_by_k, requested_by_k


PARTIAL_SAMPLES = "kmax_samples.partial.npz"


def kmax_sample_arrays(identity: dict, samples_by_k: dict, requested_by_k: dict) -> dict:
    """The arrays of a ``kmax_samples.npz``: ``images_kK`` (uint8), ``locations_kK``, and
    ``identity``'s fields (checkpoint step, precision, seed, sampler steps, samples per set)."""
    import numpy as np

    arrays = {name: np.array(value) for name, value in identity.items()}
    for k_objects in sorted(samples_by_k):
        arrays[f"images_k{k_objects}"] = samples_by_k[k_objects]
        arrays[f"locations_k{k_objects}"] = requested_by_k[k_objects]
    return arrays


def write_npz_atomic(path: Path, arrays: dict) -> None:
    import numpy as np

    from localcomp.provenance import write_bytes_atomic
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def load_partial_kmax_samples(path: Path, identity: dict, sets_by_k: dict, n: int) -> tuple[dict, dict]:
    """The K already sampled by an interrupted ``clevr kmax`` (``(samples_by_k, requested_by_k)``,
    empty when there is no partial file). A partial file made with another checkpoint, precision,
    seed, sampler steps or samples per set, or for other location sets, is set aside (renamed
    ``*.stale.npz``, not deleted) and sampling starts from K = 0."""
    import numpy as np

    if not path.exists():
        return {}, {}
    samples_by_k, requested_by_k = {}, {}
    reason = None
    with np.load(path) as saved:
        for name, value in identity.items():
            if name not in saved or saved[name].item() != value:
                reason = f"{name} {saved[name].item() if name in saved else None} != {value}"
                break
        else:
            for k_objects, sets in sets_by_k.items():
                key = f"locations_k{k_objects}"
                if key not in saved:
                    continue
                expected = np.stack([s.numpy() for s in sets for _ in range(n)]).reshape(
                    len(sets) * n, k_objects, 2)
                if saved[key].shape != expected.shape or not np.allclose(saved[key], expected):
                    reason = f"other location sets at K = {k_objects}"
                    break
                samples_by_k[k_objects], requested_by_k[k_objects] = saved[f"images_k{k_objects}"], saved[key]
    if reason is not None:
        stale = path.with_name(path.name.replace(".npz", ".stale.npz"))
        path.replace(stale)
        print(f"{path}: made for another evaluation ({reason}); moved to {stale.name}, sampling from K = 0")
        return {}, {}
    return samples_by_k, requested_by_k


def kmax_samples_precision(path: Path, requested: str | None) -> str:
    """The precision the samples in ``path`` were drawn in (``fp32`` for files written before it was
    recorded); a UserError when ``requested`` (``--precision``) names another one."""
    import numpy as np

    from empirical.models.precision import LEGACY_PRECISION
    with np.load(path) as saved:
        precision = str(saved["precision"]) if "precision" in saved else LEGACY_PRECISION
    if requested is not None and requested != precision:
        raise UserError(f"--precision: the samples in {path} were drawn in {precision}, not {requested}; "
                        f"drop --precision or sample again with --force")
    return precision


def previous_kmax_record(out: Path) -> dict:
    """The ``kmax.json`` in ``out`` (for ``--reuse-samples`` without a checkpoint); a UserError
    when it is missing or lacks the fields a re-detection needs."""
    path = out / "kmax.json"
    if not path.exists():
        raise UserError(f"--reuse-samples: no checkpoint in --run and no {path} to take the "
                        "checkpoint step, experiment and sampler steps from")
    record = json.loads(path.read_text())
    missing = [k for k in ("experiment", "checkpoint_step", "sampler_steps", "training_objects")
               if k not in record]
    if missing:
        raise UserError(f"--reuse-samples: {path} lacks {', '.join(missing)}")
    return record


def parse_ks(spec: str | None, max_k: int) -> list[int]:
    """``--ks`` ("1,3,6") -> sorted distinct K; None -> 0..max_k. A UserError names a bad entry."""
    if spec is None:
        return list(range(max_k + 1))
    ks = set()
    for part in spec.split(","):
        try:
            value = int(part)
        except ValueError:
            raise UserError(f"--ks: {part.strip()!r} is not an integer (expected e.g. 1,3,6,8)") from None
        if value < 0:
            raise UserError(f"--ks: K must be >= 0, got {value}")
        ks.add(value)
    return sorted(ks)


def _kmax(args) -> int:
    """Sample every K = 0..max_k (or each of --ks) for location sets from ``--data``, then ``empirical.evaluation.kmax.evaluate_kmax``."""
    import numpy as np

    from localcomp.provenance import check_writable_dir, refuse_overwrite, write_json_atomic, write_run_record
    from empirical.clevr.dataset import ClevrDataset
    from empirical.detection.detector import load_detector
    from empirical.evaluation.kmax import annotated_grid, evaluate_kmax, per_k_table
    from empirical.models.precision import with_precision
    from empirical.models.sampling import sample_for_sets, to_uint8, write_png
    from empirical.training.train import has_model, load_trained

    if not Path(args.detector).exists():  # checked before the (long) sampling
        raise UserError(f"--detector: {args.detector} does not exist")
    if args.max_k < 0 or args.num_sets < 1 or args.n < 1:
        raise UserError("--max-k must be >= 0, --num-sets and --n >= 1")
    ks = parse_ks(args.ks, args.max_k)
    out = Path(args.out or args.run)
    samples_path = out / "kmax_samples.npz"
    check_writable_dir(out, "--out")
    if not args.reuse_samples:  # re-detecting kept samples rewrites kmax.json in place, by design
        refuse_overwrite([out / "kmax.json"], args.force)
    if args.reuse_samples and not has_model(args.run):
        previous = previous_kmax_record(out)
        experiment, step = previous["experiment"], int(previous["checkpoint_step"])
        steps, label = previous["sampler_steps"], args.training_objects or previous["training_objects"]
    else:
        label = args.training_objects or training_objects_label(args.run)
        model, config, step = load_trained(args.run)
        experiment, steps = config.experiment, args.sampler_steps or config.schedule.sampler_steps
        if not args.reuse_samples:
            model, precision = with_precision(model, args.precision)
    if args.data.startswith("synthetic"):  # blob scenes (smoke runs, `clevr validate --preset tiny`)
        if not has_model(args.run):
            raise UserError("--data synthetic: needs the run's checkpoint (its resolution)")
        location_source = load_training_data(args.data, config.resolution, args.seed)
    else:
        location_source = ClevrDataset(args.data)
    sets_by_k = location_sets_by_k(location_source, ks, args.num_sets)
    if args.reuse_samples:
        samples_by_k, requested_by_k = load_kmax_samples(samples_path, step, sets_by_k, args.n)
        precision = kmax_samples_precision(samples_path, args.precision)
    else:
        # every finished K is kept in OUT/kmax_samples.partial.npz, so a killed run resumes at
        # the first unfinished K (sample j of set i at K is seeded by (seed + K, i, j): resumed
        # samples are the ones an uninterrupted run draws)
        partial_path = out / PARTIAL_SAMPLES
        identity = {"checkpoint_step": step, "precision": precision, "seed": args.seed,
                    "sampler_steps": steps, "samples_per_set": args.n}
        samples_by_k, requested_by_k = load_partial_kmax_samples(partial_path, identity, sets_by_k, args.n)
        if samples_by_k:
            print(f"resuming from {partial_path}: K = {', '.join(map(str, sorted(samples_by_k)))} "
                  "already sampled")
        for k_objects, sets in sets_by_k.items():
            if k_objects in samples_by_k:
                continue
            pixels = to_uint8(sample_for_sets(model, sets, config.resolution, args.n, steps,
                                              args.seed + k_objects, progress=True))
            requested = np.stack([s.numpy() for s in sets for _ in range(args.n)]).reshape(
                len(sets) * args.n, k_objects, 2)
            samples_by_k[k_objects], requested_by_k[k_objects] = pixels, requested
            write_npz_atomic(partial_path, kmax_sample_arrays(identity, samples_by_k, requested_by_k))
        write_npz_atomic(samples_path, kmax_sample_arrays(identity, samples_by_k, requested_by_k))
        partial_path.unlink(missing_ok=True)
    result = evaluate_kmax(samples_by_k, requested_by_k, load_detector(args.detector))
    kmax_value = result["kmax"]
    for k_objects, pixels in samples_by_k.items():  # each sample: K, detections, pass/fail
        marks = result.get("per_sample", {}).get(k_objects, {})
        grid = annotated_grid(pixels, requested_by_k[k_objects], k_objects, marks.get("detections"),
                              marks.get("success"), args.n * 4, scale=max(1, 128 // pixels.shape[1]))
        write_png(out / f"kmax_grid_k{k_objects:02d}.png", grid)
    report = {"experiment": experiment, "training_objects": label, "kmax": kmax_value,
              "kmax_requested_found": result["kmax_requested_found"],
              "evaluation": result,
              "run": str(args.run), "checkpoint_step": step, "sampler_steps": steps,
              "num_sets": args.num_sets, "samples_per_set": args.n, "ks": ks, "detector": str(args.detector),
              "reused_samples": bool(args.reuse_samples), "precision": precision}
    write_json_atomic(out / "kmax.json", report)
    write_run_record(out, {k: v for k, v in vars(args).items() if k != "func"}, args.seed, name="kmax.run.json")
    print(per_k_table(result))
    print(f"{experiment} ({label}): Kmax = {kmax_value} (extras allowed: "
          f"{result['kmax_requested_found']}); {out}/kmax.json")
    return 0


def _table(args) -> int:
    from localcomp.provenance import (check_writable_dir, refuse_overwrite, write_bytes_atomic,
                                      write_json_atomic, write_run_record)
    from empirical.evaluation.table import assemble, load_entries, plot_per_k, to_markdown
    from numerics.experiments.common import save_figure

    entries = load_entries(args.runs)
    table = assemble(entries)
    out = Path(args.out)
    check_writable_dir(out, "--out")
    refuse_overwrite([out / "table1.json", out / "table1.md"], args.force)
    write_json_atomic(out / "table1.json", table)
    markdown = to_markdown(table)
    write_bytes_atomic(out / "table1.md", markdown.encode())
    figure = plot_per_k(entries)
    if figure is not None:
        save_figure(figure, out / "per_k.png")
    write_run_record(out, {"runs": args.runs}, None)
    print(markdown)
    return 0
