"""``localcomp clevr validate``: the whole CLEVR validation (render, train, Kmax, locality, report).

``localcomp clevr validate --preset mini --out DIR [--rows 1,1-3,1-5] [--experiments exp1,...]
[--seeds 0,1] [--dry-run] [--stage NAME --shard i/n]`` -- see docs/clevr-validate.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from localcomp.errors import UserError


def add_validate_command(clevr_subparsers) -> None:
    from empirical.validation.plan import PRESETS, ROWS, STAGES, TABLE_EXPERIMENTS

    v = clevr_subparsers.add_parser("validate", help="the whole CLEVR validation, resumable and shardable")
    v.add_argument("--preset", default="mini", help=f"one of: {', '.join(PRESETS)} (tiny: synthetic smoke run)")
    v.add_argument("--out", required=True, help="validation directory (rerun the same command to resume)")
    v.add_argument("--rows", default=None, help=f"training object counts, comma-separated (default {','.join(ROWS)})")
    v.add_argument("--experiments", default=None,
                   help=f"comma-separated (default {','.join(TABLE_EXPERIMENTS)})")
    v.add_argument("--seeds", default=None, help="training seeds, comma-separated (default 0)")
    v.add_argument("--steps", type=int, default=None, help="training steps per model (default: the preset's)")
    v.add_argument("--detector", default=None, help="detector checkpoint (default results/detector/detector.pt)")
    v.add_argument("--workers", type=int, default=1, help="render processes per dataset")
    v.add_argument("--stage", default=None, help=f"run only this stage: {', '.join(STAGES)}")
    v.add_argument("--shard", default=None, help="with --stage: 'i/n' runs slices i, i+n, ... (0 <= i < n)")
    v.add_argument("--dry-run", action="store_true",
                   help="print the plan and each stage's estimated time (from a short probe); run nothing")
    v.add_argument("--no-probe", action="store_true", help="with --dry-run: print the plan without timing")
    v.set_defaults(func=_validate)


def _format_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def print_plan(config, out: Path, pieces, estimate: dict | None) -> None:
    from empirical.validation.plan import STAGES
    from empirical.validation.state import state_path

    total = 0.0
    print(f"plan for {out} (preset {config.preset.name}, data {config.preset.data_source}):")
    print(f"{'stage':<9} {'slices':>6} {'done':>5} {'estimate (left)':>16}")
    for stage in STAGES:
        stage_pieces = [p for p in pieces if p.stage == stage]
        if not stage_pieces:
            continue
        done = [p for p in stage_pieces if state_path(out, p).exists()]
        left = None
        if estimate is not None:
            left = sum(estimate["seconds"][stage].get(p.name, 0.0) for p in stage_pieces if p not in done)
            total += left
        print(f"{stage:<9} {len(stage_pieces):>6} {len(done):>5} "
              f"{'-' if left is None else _format_seconds(left):>16}")
        for p in stage_pieces:
            seconds = None if estimate is None else estimate["seconds"][stage].get(p.name)
            mark = "done" if p in done else ("~" + _format_seconds(seconds) if seconds is not None else "")
            print(f"    {p.name:<24} {mark:>10}  localcomp {' '.join(p.argv) or '(report)'}")
    if estimate is not None:
        print(f"total estimate: {_format_seconds(total)} on this machine, one slice at a time "
              "(probe-based; see docs/clevr-validate.md)")


def _validate(args) -> int:
    from empirical.validation.plan import build_plan, make_config, parse_shard
    from empirical.validation.run import check_same_preset, finished_record, select, validate

    config = make_config(args.preset, args.rows, args.experiments, args.seeds, args.detector, args.workers,
                         args.steps)
    shard = parse_shard(args.shard)
    out = Path(args.out)
    if not args.dry_run and args.stage in (None, "kmax") and not Path(config.detector).exists():
        raise UserError(f"--detector: {config.detector} does not exist (train one with `localcomp clevr "
                        "detector train`, or run from the repository root for the committed one)")
    if args.dry_run:
        plan = build_plan(config, out)
        pieces = select(plan, args.stage, shard)
        if out.is_dir():
            check_same_preset(config, out)
            for piece in pieces:
                finished_record(out, piece)  # a changed setting is reported now, not after the run
        estimate = None
        if not args.no_probe:
            from empirical.validation.probe import estimate as probe
            estimate = probe(config, plan)
        print_plan(config, out, pieces, estimate)
        if estimate is not None:
            print(json.dumps({"probe": estimate["probe"]}, default=float))
        return 0
    result = validate(config, out, args.stage, shard)
    report = out / "report" / "report.md"
    print(f"validate: ran {len(result['ran'])} slice(s), skipped {len(result['skipped'])} finished"
          + (f"; {report}" if report.exists() else ""))
    return 0
