"""``localcomp t2i locality --model DIR --prompts SPEC.json --out OUT``: locality of a diffusers
text-to-image UNet (SD or SDXL) on disk (``empirical.t2i``; docs/t2i-locality.md).

Writes ``OUT/locality.json`` (the report: model, spec, per prompt set and sigma the spatial,
conditional and feature-space numbers), ``OUT/energy_vs_r.png``, ``OUT/cosines.png`` and
``OUT/run.json`` (provenance: versions, git revision, arguments). The spec, the model folder and
``OUT`` are checked before anything is computed; an existing ``locality.json`` is kept unless
``--force``.
"""

from __future__ import annotations

from pathlib import Path

_EXTRA_PACKAGES = ("diffusers", "transformers", "tokenizers", "safetensors", "huggingface_hub")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("t2i", help="locality of a diffusers text-to-image UNet (SD, SDXL) on disk")
    jobs = p.add_subparsers(dest="t2i_command", required=True, metavar="JOB")
    loc = jobs.add_parser("locality", help="spatial, conditional and feature-space locality over a sigma grid")
    loc.add_argument("--model", required=True, help="pipeline folder written by save_pretrained (local files only)")
    loc.add_argument("--prompts", required=True, help="prompt spec JSON (docs/t2i-locality.md)")
    loc.add_argument("--out", required=True, help="output directory")
    loc.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    loc.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                     help="model dtype (default float32; VJPs in half precision are noisier)")
    loc.add_argument("--force", action="store_true", help="overwrite locality.json already in --out")
    loc.set_defaults(func=_locality)


def _locality(args) -> int:
    import torch

    from empirical.t2i.figures import cosine_figure, energy_curve_figure
    from empirical.t2i.model import check_model_folder, load_denoiser
    from empirical.t2i.run import run_locality
    from empirical.t2i.spec import load_spec
    from localcomp.provenance import (check_writable_dir, package_versions, refuse_overwrite, run_metadata,
                                      write_json_atomic, write_run_record)
    from numerics.experiments.common import save_figure

    spec = load_spec(args.prompts)
    out = Path(args.out)
    check_writable_dir(out, "--out")
    refuse_overwrite([out / "locality.json"], args.force)
    check_model_folder(args.model)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    denoiser = load_denoiser(args.model, spec.latent_size, device, args.dtype)
    report = run_locality(denoiser, spec, progress=True)
    config = {k: v for k, v in vars(args).items() if k != "func"}
    provenance = run_metadata(config, list(spec.seeds))
    provenance["packages"].update(package_versions(_EXTRA_PACKAGES))
    report = {"command": "t2i locality", "model_folder": str(args.model), **report, "provenance": provenance}
    save_figure(energy_curve_figure(report), out / "energy_vs_r.png")
    save_figure(cosine_figure(report), out / "cosines.png")
    write_json_atomic(out / "locality.json", report)
    write_run_record(out, config, list(spec.seeds))
    for row in report["summary"]:
        radius = row["effective_radius"]
        print(f"{row['prompt_set']} sigma={row['sigma']:g}: effective radius "
              f"{'n/a' if radius is None else f'{radius:.2f}'} latent px; output mean |cos| "
              f"{_fmt(row['output_mean_abs_cosine'])}; "
              + "; ".join(f"{k.removesuffix('_mean_abs_cosine')} mean |cos| {_fmt(v)}"
                          for k, v in row.items() if k.endswith("_mean_abs_cosine") and not k.startswith("output")))
    print(f"{out}/locality.json, energy_vs_r.png, cosines.png")
    return 0


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
