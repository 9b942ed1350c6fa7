"""``localcomp clevr machine``: a training-free run folder holding the local conditional machine.

``localcomp clevr machine --data DATA (--k K | --non-local) --out RUN_DIR [--tau T] [--limit N]
[--method auto|matmul|boxsum] [--window W] [--conditioning all|one]``
writes ``RUN_DIR/machine.json``; ``clevr sample``, ``clevr kmax`` and ``clevr locality`` then read
``RUN_DIR`` like a trained run (the machine is rebuilt from ``DATA`` when they load it).
See docs/local-machine.md.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from localcomp.errors import UserError


def add_machine_command(clevr_subparsers) -> None:
    m = clevr_subparsers.add_parser("machine", help="the ideal patch-local (or non-local) denoiser of a "
                                    "training set, as a run folder (no training)")
    m.add_argument("--data", required=True, help="training data: CLEVR directory or synthetic[:MIN-MAX]")
    which = m.add_mutually_exclusive_group(required=True)
    which.add_argument("--k", type=int, help="patch half-width in cells (16 x 16 cells, as the patch model)")
    which.add_argument("--non-local", action="store_true", help="the patch is the whole image")
    m.add_argument("--out", required=True, help="run folder to write")
    m.add_argument("--tau", type=float, default=0.05,
                   help="width of the kernel on conditioner positions, image units (default 0.05)")
    m.add_argument("--limit", type=int, default=None, help="use the first N training images (default all)")
    m.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="patch distances (float32: faster; the difference is measured in docs)")
    m.add_argument("--method", choices=("auto", "matmul", "boxsum"), default="auto",
                   help="how the patch distances are computed: per-cell matrix products, box sums of "
                        "per-pixel squared differences, or the cheaper for this patch (default)")
    m.add_argument("--window", type=int, default=0,
                   help="position window in cells: also use the training patches of cells up to W cells "
                        "away, conditioners compared by offset (default 0: the same cell only)")
    m.add_argument("--conditioning", choices=("all", "one"), default="all",
                   help="training pairs: each image with all its locations (Exp.1/3 data, default) or with "
                        "one of them, every choice at prior 1/m (Exp.2 data)")
    m.add_argument("--sampler-steps", type=int, default=18, help="Heun steps used when sampling it")
    m.add_argument("--force", action="store_true", help="replace an existing machine.json in --out")
    m.set_defaults(func=_machine)


def _machine(args) -> int:
    from empirical.clevr.sources import load_data
    from empirical.models.machine import MACHINE_FILE, MachineConfig, write_machine_run

    if args.k is not None and args.k < 0:
        raise UserError(f"--k: must be >= 0, got {args.k}")
    if not (args.tau > 0 and math.isfinite(args.tau)):
        raise UserError(f"--tau: must be positive and finite, got {args.tau}")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit: must be >= 1, got {args.limit}")
    if args.window < 0:
        raise UserError(f"--window: must be >= 0, got {args.window}")
    if args.window and args.non_local:
        raise UserError("--window: the non-local machine has one cell; use --k with --window")
    if args.window and args.method == "matmul":
        raise UserError("--window: computed by the box-sum path only; use --method auto or boxsum")
    if args.sampler_steps < 2:
        raise UserError(f"--sampler-steps: must be >= 2, got {args.sampler_steps}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {out} exists and is not a directory")
    if (out / MACHINE_FILE).exists() and not args.force:
        raise UserError(f"--out: {out / MACHINE_FILE} exists; pass --force to replace it")
    if (out / "checkpoint.pt").exists():
        raise UserError(f"--out: {out} holds a trained checkpoint; use another folder")
    resolution = 16 if args.data.startswith("synthetic") else None
    dataset = load_data(args.data, resolution or 32)
    image, _ = dataset[0]
    resolution = int(image.shape[-1])
    config = (MachineConfig(resolution, 1, 0, args.tau, args.dtype, args.sampler_steps, args.method)
              if args.non_local
              else MachineConfig(resolution, 16, args.k, args.tau, args.dtype, args.sampler_steps, args.method,
                                 args.window))
    config = replace(config, conditioning=args.conditioning)
    write_machine_run(out, config, args.data, args.limit)
    print(f"{config.experiment}: {min(len(dataset), args.limit or len(dataset))} training images at "
          f"{resolution} px -> {out}/{MACHINE_FILE}")
    return 0
