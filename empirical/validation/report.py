"""The report stage: Table 1, the locality-Kmax correlation and ``report.md`` from finished runs.

It calls the same commands a researcher would (``clevr table``, ``clevr correlate``) and then
writes ``OUT/report/report.md``: the tables, links to the figures, each run's training budget
(steps, images seen, wall time of its train slice) and every command the validation ran.
"""

from __future__ import annotations

import json
from pathlib import Path

from localcomp.provenance import git_revision, write_bytes_atomic

from empirical.validation.state import run_command, state_path


def _run_dir(piece) -> str:
    return piece.argv[piece.argv.index("--run") + 1]


def training_budget(out: Path, train_piece) -> dict:
    run_dir = Path(train_piece.argv[train_piece.argv.index("--out") + 1])
    summary = json.loads((run_dir / "train.json").read_text())
    record = json.loads((run_dir / "run.json").read_text())
    batch = record["config"]["train"]["schedule"]["batch_size"]
    state = json.loads(state_path(out, train_piece).read_text())
    return {"steps": summary["step"], "batch_size": batch, "images_seen": summary["step"] * batch,
            "wall_seconds": state["seconds"]}


def build_report(config, out: Path, plan) -> Path:
    report = out / "report"
    runs = [_run_dir(p) for p in plan["kmax"]]
    run_command(["clevr", "table", "--runs", *runs, "--out", str(report / "table"), "--force"])
    correlation = None
    if len(runs) >= 3:  # a rank correlation of fewer points says nothing
        run_command(["clevr", "correlate", "--entries", *[f"{r}/locality" for r in runs],
                     "--kmax", *[f"{r}/kmax.json" for r in runs], "--out", str(report / "correlation"), "--force"])
        correlation = json.loads((report / "correlation" / "correlation.json").read_text())
    lines = [f"# CLEVR validation: preset `{config.preset.name}`", "",
             f"Rows {', '.join(config.rows)}; experiments {', '.join(config.experiments)}; seeds "
             f"{', '.join(map(str, config.seeds))}; data: {config.preset.data_source}; git revision "
             f"`{git_revision() or 'unknown'}`. Made by `localcomp clevr validate` (config in "
             f"`{out.name}/validate.json`).", ""]
    if config.preset.data_source == "synthetic":
        lines += ["**Smoke run on synthetic blob scenes: these numbers test the pipeline and decide "
                  "nothing about the paper's claim.**", ""]
    lines += ["## Table 1", "", (report / "table" / "table1.md").read_text().strip(), ""]
    if (report / "table" / "per_k.png").exists():
        lines += ["![per-K success](table/per_k.png)", ""]
    lines += ["## Locality vs Kmax", ""]
    if correlation is None:
        lines += [f"Not computed: {len(runs)} run(s); a Spearman correlation needs at least 3.", ""]
    else:
        lines += ["| metric | Spearman rho | p | n |", "|---|---|---|---|"]
        for metric, value in correlation["spearman"].items():
            rho, p = value.get("rho"), value.get("p_value")
            lines.append(f"| {metric} | {'n/a' if rho is None else f'{rho:+.3f}'} | "
                         f"{'n/a' if p is None else f'{p:.3f}'} | {value.get('n', 0)} |")
        lines += ["", "![correlation](correlation/correlation.png)", ""]
    lines += ["## Training budget", "", "| run | steps | batch | images seen | wall time (s) |",
              "|---|---|---|---|---|"]
    for piece in plan["train"]:
        b = training_budget(out, piece)
        lines.append(f"| {piece.name} | {b['steps']} | {b['batch_size']} | {b['images_seen']} | "
                     f"{b['wall_seconds']:.0f} |")
    lines += ["", "## Commands", "", "Each slice is one command; rerunning it alone gives the same files.", "",
              "```"]
    for stage in ("render", "train", "kmax", "locality"):
        lines += [f"localcomp {' '.join(p.argv)}" for p in plan[stage]]
    lines += [f"localcomp clevr table --runs {' '.join(runs)} --out {report / 'table'}", "```", ""]
    path = report / "report.md"
    write_bytes_atomic(path, "\n".join(lines).encode())
    return path
