"""`localcomp clevr validate`: the whole CLEVR validation, end to end on synthetic data, killed and
resumed without repeating a finished slice; plans, shards and changed settings."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from localcomp.cli import main
from localcomp.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
DETECTOR = str(ROOT / "results" / "detector" / "detector.pt")
TINY = ["clevr", "validate", "--preset", "tiny", "--rows", "1-3", "--experiments", "exp1,exp2",
        "--detector", DETECTOR]


def log_events(out: Path) -> Counter:
    events = Counter()
    for line in (out / "validate.log").read_text().splitlines():
        _, event, stage, name = line.split()[:4]
        events[(event, stage, name)] += 1
    return events


def test_validate_killed_and_rerun_repeats_no_finished_slice(tmp_path, capsys):
    out = tmp_path / "v"
    command = [sys.executable, "-m", "localcomp.cli", *TINY, "--out", str(out)]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.time() + 90
    while not list((out / "state" / "kmax").glob("*.json")) and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)   # mid-way: both models trained, one Kmax done
    process.wait()
    finished_first = {(stage, name) for (event, stage, name) in log_events(out) if event == "finish"}
    assert ("train", "1-3/exp1-s0") in finished_first and ("report", "report") not in finished_first

    assert main([*TINY, "--out", str(out)]) == 0
    events = log_events(out)
    stages = {(stage, name) for (_, stage, name) in events}
    assert {s for s, _ in stages} == {"train", "kmax", "locality", "report"}
    assert all(events[("finish", *s)] == 1 for s in stages), events        # each slice finished once
    assert all(events[("start", *s)] == 1 for s in finished_first), events  # and none was redone
    report = (out / "report" / "report.md").read_text()
    assert "## Table 1" in report and "| 1-3 |" in report and "1-3/exp2-s0" in report
    kmax = json.loads((out / "runs" / "1-3" / "exp2-s0" / "kmax.json").read_text())
    assert kmax["experiment"] == "exp2" and set(kmax["evaluation"]["per_k"]) == {"0", "1", "2", "3"}

    capsys.readouterr()
    assert main([*TINY, "--out", str(out)]) == 0                       # a third run only skips
    assert "ran 0 slice(s), skipped 7 finished" in capsys.readouterr().out
    assert log_events(out) == events

    # a changed setting is refused with the field named, before anything runs or is rewritten
    record = (out / "state" / "train" / "1-3__exp1-s0.json").read_text()
    assert main([*TINY, "--out", str(out), "--steps", "5"]) == 2
    assert "train_steps" in capsys.readouterr().err
    assert (out / "state" / "train" / "1-3__exp1-s0.json").read_text() == record
    assert log_events(out) == events


def test_plan_of_the_full_table_and_its_shards(tmp_path):
    from empirical.validation.plan import build_plan, make_config
    from empirical.validation.run import select

    config = make_config("mini", seeds="0,1")
    plan = build_plan(config, tmp_path)
    assert [p.name for p in plan["render"]] == ["1", "1-3", "1-5", "eval"]
    assert len(plan["train"]) == len(plan["kmax"]) == len(plan["locality"]) == 3 * 6 * 2
    assert all(("train", p.name) in p.needs for p in plan["kmax"])
    assert ("render", "1-5") in next(p for p in plan["train"] if p.name == "1-5/exp3-s1").needs
    # locality removes one conditioner of several: row 1 (one object per scene) is measured on the
    # evaluation scenes with 2-3 objects, the other rows on their own training scenes
    for piece in plan["locality"]:
        data = piece.argv[piece.argv.index("--data") + 1]
        if piece.name.startswith("1/"):
            assert data.endswith("eval") and piece.argv[piece.argv.index("--max-objects") + 1] == "3"
            assert ("render", "eval") in piece.needs
        else:
            assert data.endswith(piece.name.split("/")[0]) and "--max-objects" not in piece.argv
    # shards of a stage cover it exactly once
    shards = [select(plan, "train", (i, 5)) for i in range(5)]
    names = [p.name for shard in shards for p in shard]
    assert sorted(names) == sorted(p.name for p in plan["train"]) and len(set(names)) == len(names)
    with pytest.raises(UserError, match="--shard: needs --stage"):
        select(plan, None, (0, 2))
    with pytest.raises(UserError, match="--rows: unknown 2-4"):
        make_config("mini", rows="1,2-4")
    with pytest.raises(UserError, match="--experiments: unknown exp9"):
        make_config("mini", experiments="exp1,exp9")


def test_framed_preset_renders_through_the_framed_camera_with_its_own_detector(tmp_path):
    from empirical.validation.plan import build_plan, make_config

    plan = build_plan(make_config("framed", rows="1-3"), tmp_path)
    for render in plan["render"]:
        assert render.argv[-2:] == ("--camera", "framed") and render.fields["camera"] == "framed"
        assert render.argv[render.argv.index("--resolution") + 1] == "48"
    assert all(("--preset", "mini48") == t.argv[t.argv.index("--preset"):][:2] for t in plan["train"])
    assert all("results/detector/framed48/detector.pt" in k.argv for k in plan["kmax"])
    # the mini plan is unchanged: no --camera, no camera field (records made before it still match)
    mini = build_plan(make_config("mini", rows="1-3"), tmp_path)
    assert all("--camera" not in r.argv and "camera" not in r.fields for r in mini["render"])
    assert make_config("framed", detector="mine.pt").detector == "mine.pt"


def test_a_stage_run_alone_needs_its_inputs_finished(tmp_path, capsys):
    assert main([*TINY, "--out", str(tmp_path / "v"), "--stage", "kmax", "--shard", "1/2"]) == 2
    assert "needs train 1-3/exp2-s0 finished first" in capsys.readouterr().err
    assert main([*TINY, "--out", str(tmp_path / "v"), "--shard", "3/2", "--stage", "kmax"]) == 2
    assert "--shard" in capsys.readouterr().err


def test_dry_run_on_mini_prints_the_plan_with_measured_estimates(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["clevr", "validate", "--preset", "mini", "--out", str(out), "--rows", "1-3",
                 "--experiments", "exp1,exp2l", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "total estimate:" in printed and "localcomp clevr render --preset clevr1-3" in printed
    probe = json.loads(printed.strip().splitlines()[-1])["probe"]
    assert probe["models"]["exp1"]["train_step"] > 0 and probe["render_per_image"] > 0
    assert not out.exists()                                           # a dry run writes nothing


def test_adding_an_experiment_reruns_only_the_new_slices_and_the_report(tmp_path, capsys):
    from empirical.validation.plan import build_plan, make_config
    from empirical.validation.run import finished_record
    from empirical.validation.state import state_path
    from localcomp.provenance import write_json_atomic

    def fake_finish(config):
        for stage, pieces in build_plan(config, tmp_path).items():
            for piece in pieces:
                write_json_atomic(state_path(tmp_path, piece), {"fields": piece.fields})

    fake_finish(make_config("tiny", experiments="exp1"))
    grown = build_plan(make_config("tiny", experiments="exp1,exp2"), tmp_path)
    assert finished_record(tmp_path, grown["train"][0]) is not None        # exp1 (row 1) is kept
    assert finished_record(tmp_path, next(p for p in grown["train"] if "exp2" in p.name)) is None
    assert finished_record(tmp_path, grown["report"][0]) is None             # rebuilt over both
    steps = build_plan(make_config("tiny", experiments="exp1", train_steps=9), tmp_path)
    with pytest.raises(UserError, match="train_steps = 4.*train_steps = 9"):
        finished_record(tmp_path, steps["train"][0])
