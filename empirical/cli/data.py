"""CLEVR data jobs: ``clevr render``, ``clevr detector train|eval``."""

from __future__ import annotations

import json
import os


def add_data_commands(clevr_subparsers) -> None:
    """Add ``render`` and ``detector {train,eval}`` to the ``clevr`` subcommands."""
    from empirical.clevr.presets import PRESETS

    p = clevr_subparsers.add_parser("render", help="render a CLEVR dataset preset (resumable)")
    p.add_argument("--preset", required=True, help=f"one of: {', '.join(PRESETS)}")
    p.add_argument("--out", required=True, help="dataset directory (rerun to resume)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--num-images", type=int, default=None)
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--spp", type=int, default=None, help="samples per pixel")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--camera", default="clevr",
                   help="clevr (CLEVR's camera) or framed (axis-aligned, 70 degrees elevation, "
                        "framed on the placement square; docs/clevr-data.md)")
    p.set_defaults(func=_render)

    d = clevr_subparsers.add_parser("detector", help="train / evaluate the object detector")
    jobs = d.add_subparsers(dest="detector_command", required=True, metavar="JOB")
    t = jobs.add_parser("train", help="train the centre-heatmap detector on a rendered dataset")
    t.add_argument("--data", required=True, nargs="+", help="dataset directories (0-12 objects)")
    t.add_argument("--out", required=True, help="output directory (detector.pt, train.json)")
    t.add_argument("--steps", type=int, default=4000)
    t.add_argument("--width", type=int, default=32,
                   help="base channels of the encoder-decoder (x2, x4 at lower resolutions)")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (one-cycle)")
    t.add_argument("--val", nargs="+", default=None,
                   help="validation dataset directories: the decoding threshold is tuned on them")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    t.add_argument("--init", default=None,
                   help="detector.pt to start from (fine-tuning; its width must equal --width)")
    t.add_argument("--hard-fraction", type=float, default=0.0,
                   help="with --init: share of each batch drawn in proportion to the initial "
                        "network's loss on each image (hard-example mining)")
    t.add_argument("--working-resolution", type=int, default=32,
                   help="every image is resampled to this size first (a multiple of 4; 48 for "
                        "the framed 48 px data); stored in detector.pt")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=_detector_train)
    e = jobs.add_parser("eval", help="exact-count accuracy per K on held-out renders")
    e.add_argument("--detector", required=True, help="detector.pt")
    e.add_argument("--data", required=True, nargs="+", help="held-out dataset directories")
    e.add_argument("--json", required=True, help="output JSON path")
    e.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(func=_detector_eval)


def _render(args) -> int:
    from empirical.clevr.dataset import BuildConfig, build_dataset
    from empirical.clevr.presets import get_preset
    from localcomp.errors import UserError

    if args.workers < 1:
        raise UserError(f"--workers: must be >= 1, got {args.workers}")
    config = BuildConfig.from_preset(get_preset(args.preset), num_images=args.num_images,
                                     resolution=args.resolution, spp=args.spp, seed=args.seed,
                                     camera=args.camera)
    manifest = build_dataset(config, args.out, workers=args.workers)
    print(json.dumps({"out": args.out, "num_images": manifest["num_images"],
                      "shards": len(manifest["shards"]), "complete": manifest["complete"]}))
    return 0


def _detector_train(args) -> int:
    from empirical.detection.detector import train_detector_cli
    return train_detector_cli(args)


def _detector_eval(args) -> int:
    from empirical.detection.detector import eval_detector_cli
    return eval_detector_cli(args)
