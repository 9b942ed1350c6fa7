"""Running a validation plan: resumable slice by slice, shardable, with progress bars.

A slice is *finished* when ``OUT/state/STAGE/SLICE.json`` exists (written atomically after the
slice's command returned 0 and its promised outputs exist). A finished slice is skipped, after
checking that the settings it was run with (``fields``) equal this run's; a difference is a
UserError naming the field. An unfinished slice (never run, or killed) is run again; its
command resumes what it can (rendering and training resume from their own checkpoints).
Every start and finish is appended to ``OUT/validate.log`` (what a reader, or a test, checks
to see that nothing was repeated).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from localcomp.errors import UserError
from localcomp.provenance import write_json_atomic, write_run_record

from empirical.validation.plan import STAGES, Slice, ValidationConfig, build_plan
from empirical.validation.state import run_command, state_path

CONFIG_FILE = "validate.json"
LOG_FILE = "validate.log"


def finished_record(out: Path, piece: Slice) -> dict | None:
    """The record of a finished slice, after checking it was run with the same settings."""
    path = state_path(out, piece)
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    wanted = json.loads(json.dumps(piece.fields))
    for key in sorted(set(wanted) | set(record.get("fields", {}))):
        old, new = record.get("fields", {}).get(key), wanted.get(key)
        if old != new and piece.stage == "report":
            return None  # the report is a function of the finished runs: rebuilt when they change
        if old != new:
            raise UserError(f"{piece.stage} {piece.name}: was run with {key} = {old!r}, this run asks for "
                            f"{key} = {new!r}; rerun with the old settings or use another --out "
                            f"(nothing was changed)")
    return record


def check_same_preset(config: ValidationConfig, out: Path) -> None:
    """OUT keeps the preset and detector it was made with (rows, experiments, seeds may grow)."""
    path = out / CONFIG_FILE
    if not path.exists():
        return
    old = json.loads(path.read_text()).get("config", {})
    new = json.loads(json.dumps(asdict(config)))
    for key in sorted(set(old.get("preset", {})) | set(new["preset"])):
        if old.get("preset", {}).get(key) != new["preset"].get(key):
            raise UserError(f"--preset: {out} was made with preset field {key} = "
                            f"{old.get('preset', {}).get(key)!r}, this run has {new['preset'].get(key)!r}; "
                            "use another --out")
    if old.get("detector") != new["detector"]:
        raise UserError(f"--detector: {out} was evaluated with {old.get('detector')!r}, this run asks for "
                        f"{new['detector']!r}; use another --out")


def log(out: Path, event: str, piece: Slice, extra: str = "") -> None:
    with open(out / LOG_FILE, "a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {event} {piece.stage} {piece.name} {extra}".rstrip() + "\n")


def run_slice(config: ValidationConfig, out: Path, piece: Slice, plan) -> dict:
    from empirical.validation.report import build_report

    missing = [f"{stage} {name}" for stage, name in piece.needs
               if not state_path(out, next(s for s in plan[stage] if s.name == name)).exists()]
    if missing:
        raise UserError(f"--stage {piece.stage}: {piece.name} needs {', '.join(missing)} finished first "
                        f"(run those stages, or validate without --stage)")
    log(out, "start", piece)
    started = time.time()
    if piece.stage == "report":
        build_report(config, out, plan)
    else:
        run_command(piece.argv)
    absent = [o for o in piece.outputs if not Path(o).exists()]
    if absent:
        raise UserError(f"{piece.stage} {piece.name}: finished without writing {', '.join(absent)}")
    record = {"stage": piece.stage, "slice": piece.name, "fields": piece.fields, "argv": list(piece.argv),
              "seconds": round(time.time() - started, 3), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json_atomic(state_path(out, piece), record)
    log(out, "finish", piece, f"{record['seconds']:.1f}s")
    return record


def select(plan, stage: str | None, shard: tuple[int, int]) -> list[Slice]:
    """The slices this invocation runs: every stage in order, or one stage's ``i``-th of ``n`` shards."""
    if stage is not None and stage not in STAGES:
        raise UserError(f"--stage: unknown {stage!r}; choose from {', '.join(STAGES)}")
    if stage is None and shard != (0, 1):
        raise UserError("--shard: needs --stage (a shard is a slice of one stage)")
    i, n = shard
    return [piece for name in STAGES if stage in (None, name) for piece in plan[name][i::n]]


def validate(config: ValidationConfig, out: str | Path, stage: str | None = None,
             shard: tuple[int, int] = (0, 1), progress: bool = True) -> dict:
    """Run (or resume) the selected slices; returns ``{"ran": [...], "skipped": [...]}``."""
    from tqdm import tqdm

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {out} exists and is not a directory")
    plan = build_plan(config, out)
    pieces = select(plan, stage, shard)
    check_same_preset(config, out)
    done = {(p.stage, p.name) for p in pieces if finished_record(out, p) is not None}  # checks fields first
    out.mkdir(parents=True, exist_ok=True)
    if not (out / CONFIG_FILE).exists():
        write_run_record(out, asdict(config), None, name=CONFIG_FILE)
    ran, skipped = [], []
    overall = tqdm(total=len(pieces), desc="validate", unit="slice", disable=not progress, position=0)
    for name in STAGES:
        stage_pieces = [p for p in pieces if p.stage == name]
        if not stage_pieces:
            continue
        bar = tqdm(total=len(stage_pieces), desc=name, unit="slice", disable=not progress, position=1,
                   leave=False)
        for piece in stage_pieces:
            if (piece.stage, piece.name) in done:
                skipped.append(f"{piece.stage} {piece.name}")
            else:
                bar.set_postfix_str(piece.name)
                run_slice(config, out, piece, plan)
                ran.append(f"{piece.stage} {piece.name}")
            bar.update()
            overall.update()
        bar.close()
    overall.close()
    return {"ran": ran, "skipped": skipped}
