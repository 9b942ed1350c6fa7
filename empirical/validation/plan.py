"""The CLEVR validation as a plan: stages, each a list of slices, each slice one documented command.

A *slice* is the smallest unit a scheduler can run: rendering one dataset, training one model,
Kmax of one run, locality of one run, or the report. Each slice is exactly one ``localcomp clevr``
command line (``argv``), so what ``clevr validate`` does is what a researcher would type by hand,
and ``report.md`` lists those commands. ``fields`` are the settings the slice's outputs depend
on; they are recorded when the slice finishes, and a later run whose fields differ is refused
with the field named (never a silent overwrite).

Layout of a validation directory ``OUT``::

    OUT/data/ROW/            training data of a row (rendered; absent for synthetic data)
    OUT/data/eval/           0-12 object scenes: Kmax's requested location sets
    OUT/runs/ROW/EXP-sSEED/  one training run (checkpoint.pt, kmax.json, locality/)
    OUT/report/              table/ (Table 1), correlation/, report.md
    OUT/state/STAGE/SLICE.json  the record of each finished slice
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from localcomp.errors import UserError

STAGES = ("render", "train", "kmax", "locality", "report")
ROWS = {"1": (1, 1), "1-3": (1, 3), "1-5": (1, 5)}
LOCALITY_MAX_OBJECTS_OF_ONE_OBJECT_ROWS = 3  # the evaluation scenes a row-1 model's locality is measured on
TABLE_EXPERIMENTS = ("exp1", "exp2", "exp3", "exp2l", "exp3l", "exp2l-k8")


@dataclass(frozen=True)
class ValidationPreset:
    """Sizes of one validation: data, model preset, evaluation (see docs/clevr-validate.md)."""
    name: str
    model_preset: str                 # preset of `clevr train` (tiny | mini | paper)
    data_source: str                  # "clevr" (rendered) or "synthetic" (Gaussian blobs, no render)
    train_images: int
    eval_images: int
    resolution: int
    spp: int
    train_steps: int | None = None    # None: the model preset's steps
    max_k: int = 12
    num_sets: int = 8
    samples_per_set: int = 2
    sampler_steps: int | None = None  # None: the model preset's
    locality_images: int = 8
    locality_jacobian_images: int | None = None
    locality_pixels_per_image: int | None = None  # None: the locality command's default
    locality_sigmas: tuple[float, ...] | None = None  # None: the locality command's default
    data_seed: int = 100
    eval_seed: int = 21
    camera: str = "clevr"             # `clevr render --camera` (empirical.clevr.scene.CAMERAS)
    detector: str | None = None       # None: ValidationConfig's default (the 32 px detector)


PRESETS: dict[str, ValidationPreset] = {p.name: p for p in [
    # the test suite's end-to-end run: blobs, 16 px, a few steps; decides nothing
    ValidationPreset("tiny", "tiny", "synthetic", train_images=0, eval_images=0, resolution=16, spp=4,
                     train_steps=4, max_k=3, num_sets=2, samples_per_set=1, sampler_steps=3,
                     locality_images=2, locality_jacobian_images=1, locality_pixels_per_image=1,
                     locality_sigmas=(1.0,)),
    # the committed Table 1 (results/clevr/README.md): 32 px renders, the `mini` models
    ValidationPreset("mini", "mini", "clevr", train_images=5000, eval_images=1300, resolution=32, spp=64),
    # the paper's scale, for a GPU cluster
    ValidationPreset("paper", "paper", "clevr", train_images=10_000, eval_images=2000, resolution=64, spp=64),
    # issue 11's new data: the framed camera at 48 px (docs/clevr-data.md), `mini48` models and the
    # detector trained on that framing (results/detector/framed48/)
    ValidationPreset("framed", "mini48", "clevr", train_images=5000, eval_images=1300, resolution=48, spp=64,
                     num_sets=16,  # 16 sets x 2 samples = 32 per K (issue 11 item 3)
                     camera="framed", detector="results/detector/framed48/detector.pt"),
]}


@dataclass(frozen=True)
class ValidationConfig:
    preset: ValidationPreset
    rows: tuple[str, ...] = tuple(ROWS)
    experiments: tuple[str, ...] = TABLE_EXPERIMENTS
    seeds: tuple[int, ...] = (0,)
    detector: str = "results/detector/detector.pt"
    workers: int = 1


@dataclass(frozen=True)
class Slice:
    stage: str
    name: str                          # unique within the stage, e.g. "1-3/exp2-s0"
    argv: tuple[str, ...]              # the `localcomp` command line
    fields: dict = field(default_factory=dict)
    needs: tuple[tuple[str, str], ...] = ()   # (stage, slice name) that must be finished first
    outputs: tuple[str, ...] = ()      # files whose existence the slice promises

    @property
    def key(self) -> str:
        return self.name.replace("/", "__")


def parse_list(text: str | None, known, flag: str, cast=str) -> tuple | None:
    """``"a,b"`` -> ``("a", "b")``; a UserError naming ``flag`` for an unknown or repeated item."""
    if text is None:
        return None
    try:
        items = tuple(cast(t.strip()) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(f"{flag}: {text!r} is not a comma-separated list of {cast.__name__}") from None
    if not items:
        raise UserError(f"{flag}: empty list")
    unknown = [i for i in items if known is not None and i not in known]
    if unknown:
        raise UserError(f"{flag}: unknown {', '.join(map(str, unknown))}; choose from {', '.join(map(str, known))}")
    if len(set(items)) != len(items):
        raise UserError(f"{flag}: {text!r} repeats an item")
    return items


def make_config(preset: str, rows: str | None = None, experiments: str | None = None,
                seeds: str | None = None, detector: str | None = None, workers: int = 1,
                train_steps: int | None = None) -> ValidationConfig:
    from empirical.training.experiments import EXPERIMENTS

    if preset not in PRESETS:
        raise UserError(f"--preset: unknown {preset!r}; choose from {', '.join(PRESETS)}")
    chosen = PRESETS[preset]
    if train_steps is not None:
        if train_steps < 1:
            raise UserError(f"--steps: must be >= 1, got {train_steps}")
        chosen = replace(chosen, train_steps=train_steps)
    if workers < 1:
        raise UserError(f"--workers: must be >= 1, got {workers}")
    seed_list = parse_list(seeds, None, "--seeds", int)
    if seed_list is not None and any(s < 0 for s in seed_list):
        raise UserError(f"--seeds: must be >= 0, got {seeds}")
    config = ValidationConfig(preset=chosen, workers=workers)
    if detector is None and chosen.detector is not None:
        detector = chosen.detector
    return replace(config, **{k: v for k, v in {
        "rows": parse_list(rows, ROWS, "--rows"),
        "experiments": parse_list(experiments, EXPERIMENTS, "--experiments"),
        "seeds": seed_list, "detector": detector}.items() if v is not None})


def _data_spec(config: ValidationConfig, out: Path, row: str | None) -> str:
    """The ``--data`` of a row's training data (``row=None``: the evaluation scenes)."""
    lo, hi = (0, 12) if row is None else ROWS[row]
    if config.preset.data_source == "synthetic":
        return f"synthetic:{lo}-{hi}"
    return str(out / "data" / ("eval" if row is None else row))


def build_plan(config: ValidationConfig, out: str | Path) -> dict[str, list[Slice]]:
    """Every slice of every stage, in order; ``out`` is the validation directory."""
    out = Path(out)
    p = config.preset
    plan: dict[str, list[Slice]] = {stage: [] for stage in STAGES}
    if p.data_source == "clevr":
        data_presets = [(row, f"clevr{row}", p.train_images, p.data_seed) for row in config.rows]
        data_presets.append((None, "clevr0-12", p.eval_images, p.eval_seed))
        for row, data_preset, images, seed in data_presets:
            name = "eval" if row is None else row
            argv = ("clevr", "render", "--preset", data_preset, "--out", _data_spec(config, out, row),
                    "--num-images", str(images), "--resolution", str(p.resolution), "--spp", str(p.spp),
                    "--seed", str(seed), "--workers", str(config.workers))
            fields = {"data_preset": data_preset, "num_images": images, "resolution": p.resolution,
                      "spp": p.spp, "seed": seed}
            if p.camera != "clevr":  # CLEVR's camera stays implicit: records made before it match
                argv += ("--camera", p.camera)
                fields["camera"] = p.camera
            plan["render"].append(Slice("render", name, argv, fields,
                                        outputs=(f"{_data_spec(config, out, row)}/manifest.json",)))
    render_needs = {s.name: ("render", s.name) for s in plan["render"]}
    runs = []
    for row in config.rows:
        for experiment in config.experiments:
            for seed in config.seeds:
                name = f"{row}/{experiment}-s{seed}"
                run_dir = out / "runs" / row / f"{experiment}-s{seed}"
                runs.append((row, experiment, seed, name, run_dir))
                argv = ["clevr", "train", "--experiment", experiment, "--preset", p.model_preset,
                        "--data", _data_spec(config, out, row), "--out", str(run_dir), "--seed", str(seed)]
                if p.train_steps is not None:
                    argv += ["--steps", str(p.train_steps)]
                needs = tuple(render_needs[r] for r in (row,) if r in render_needs)
                plan["train"].append(Slice("train", name, tuple(argv), {
                    "experiment": experiment, "model_preset": p.model_preset, "row": row, "seed": seed,
                    "train_steps": p.train_steps, "data_source": p.data_source}, needs,
                    outputs=(f"{run_dir}/checkpoint.pt",)))
    eval_needs = (render_needs["eval"],) if "eval" in render_needs else ()  # the evaluation scenes' render
    for row, experiment, seed, name, run_dir in runs:
        argv = ["clevr", "kmax", "--run", str(run_dir), "--data", _data_spec(config, out, None),
                "--detector", config.detector, "--max-k", str(p.max_k), "--num-sets", str(p.num_sets),
                "--n", str(p.samples_per_set), "--training-objects", row, "--seed", str(seed),
                "--force"]  # an unfinished slice (killed after writing kmax.json) is run again
        if p.sampler_steps is not None:
            argv += ["--sampler-steps", str(p.sampler_steps)]
        needs = (("train", name),) + eval_needs
        plan["kmax"].append(Slice("kmax", name, tuple(argv), {
            "detector": config.detector, "max_k": p.max_k, "num_sets": p.num_sets,
            "samples_per_set": p.samples_per_set, "sampler_steps": p.sampler_steps}, needs,
            outputs=(f"{run_dir}/kmax.json",)))
        # conditional locality removes one conditioner of several: a row of one-object scenes has no
        # second to remove, so its models are measured on the evaluation scenes with 2-3 objects
        one_object_row = ROWS[row][1] < 2
        argv = ["clevr", "locality", "--run", str(run_dir),
                "--data", _data_spec(config, out, None if one_object_row else row),
                "--num-images", str(p.locality_images), "--seed", str(seed), "--force"]
        if one_object_row:
            argv += ["--max-objects", str(LOCALITY_MAX_OBJECTS_OF_ONE_OBJECT_ROWS)]
        if p.locality_jacobian_images is not None:
            argv += ["--jacobian-images", str(p.locality_jacobian_images)]
        if p.locality_pixels_per_image is not None:
            argv += ["--pixels-per-image", str(p.locality_pixels_per_image)]
        if p.locality_sigmas is not None:
            argv += ["--sigmas", *map(str, p.locality_sigmas)]
        plan["locality"].append(Slice("locality", name, tuple(argv), {
            "locality_images": p.locality_images, "jacobian_images": p.locality_jacobian_images,
            "pixels_per_image": p.locality_pixels_per_image,
            "sigmas": list(p.locality_sigmas) if p.locality_sigmas else None},
            (("train", name),) + (eval_needs if one_object_row else ()),
            outputs=(f"{run_dir}/locality/locality.json",)))
    needs = tuple(("kmax", s.name) for s in plan["kmax"]) + tuple(("locality", s.name) for s in plan["locality"])
    plan["report"].append(Slice("report", "report", ("clevr", "validate-report"), {
        "runs": [s.name for s in plan["kmax"]]}, needs, outputs=(str(out / "report" / "report.md"),)))
    return plan


def config_record(config: ValidationConfig) -> dict:
    return asdict(config)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` (0 <= i < n) -> ``(i, n)``; ``None`` -> ``(0, 1)``."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(t) for t in text.split("/"))
    except ValueError:
        raise UserError(f"--shard: {text!r} is not 'i/n'") from None
    if not (n >= 1 and 0 <= i < n):
        raise UserError(f"--shard: need 0 <= i < n, got {text!r}")
    return i, n
