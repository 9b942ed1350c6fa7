"""Result files: group-readable under any umask; commands refuse to overwrite results without
``--force`` (issue 15 item 3)."""

import dataclasses
import os
import stat

import pytest

from localcomp.provenance import write_bytes_atomic, write_json_atomic


@pytest.fixture
def umask():
    def set_mask(mask):
        os.umask(mask)
    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o640)])
def test_atomic_writes_are_group_readable_under_any_umask(tmp_path, umask, mask, expected):
    umask(mask)
    write_bytes_atomic(tmp_path / "a.bin", b"x")
    write_json_atomic(tmp_path / "sub" / "b.json", {"a": 1})
    for path in (tmp_path / "a.bin", tmp_path / "sub" / "b.json"):
        assert stat.S_IMODE(path.stat().st_mode) == expected


# -- refusing to overwrite results -------------------------------------------------------------------

def _refused(capsys, path):
    err = capsys.readouterr().err
    assert str(path) in err and "--force" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("name", ["approximate_cpc", "bumps"])
def test_toy_experiment_refuses_existing_results_before_computing(tmp_path, capsys, monkeypatch, name):
    from localcomp.cli import main
    from numerics.experiments import EXPERIMENTS

    out = tmp_path / name
    out.mkdir()
    (out / f"{name}.json").write_text("{}")
    calls = []
    monkeypatch.setitem(EXPERIMENTS, name, dataclasses.replace(
        EXPERIMENTS[name], run=lambda args: calls.append(args.force) or 0))
    assert main(["toy", name, "--out", str(out)]) == 2
    _refused(capsys, out / f"{name}.json")
    assert calls == [] and (out / f"{name}.json").read_text() == "{}"
    assert main(["toy", name, "--out", str(out), "--force"]) == 0 and calls == [True]


def test_toy_all_refuses_before_running_any(tmp_path, capsys, monkeypatch):
    from localcomp.cli import main
    from numerics.experiments import EXPERIMENTS

    ran = []
    for name, experiment in list(EXPERIMENTS.items()):
        monkeypatch.setitem(EXPERIMENTS, name, dataclasses.replace(
            experiment, run=lambda args, name=name: ran.append(name) or 0))
    last = list(EXPERIMENTS)[-1]
    (tmp_path / last).mkdir()
    (tmp_path / last / f"{last}.png").write_bytes(b"png")
    assert main(["toy", "all", "--out", str(tmp_path)]) == 2
    _refused(capsys, tmp_path / last / f"{last}.png")
    assert ran == []
    assert main(["toy", "all", "--out", str(tmp_path), "--force"]) == 0 and ran == list(EXPERIMENTS)


def test_toy_learned_refuses_existing_results(tmp_path, capsys):
    from localcomp.cli import main

    (tmp_path / "learned.json").write_text("{}")
    assert main(["toy", "learned", "--out", str(tmp_path), "--steps", "1"]) == 2
    _refused(capsys, tmp_path / "learned.json")


def test_clevr_table_and_correlate_refuse_existing_results(tmp_path, capsys):
    import json

    from localcomp.cli import main

    kmax = tmp_path / "exp2.json"
    kmax.write_text(json.dumps({"experiment": "exp2", "training_objects": "1-3", "kmax": 1}))
    out = tmp_path / "table"
    assert main(["clevr", "table", "--runs", str(kmax), "--out", str(out)]) == 0
    before = (out / "table1.json").read_bytes()
    assert main(["clevr", "table", "--runs", str(kmax), "--out", str(out)]) == 2
    _refused(capsys, out / "table1.json")
    assert (out / "table1.json").read_bytes() == before
    assert main(["clevr", "table", "--runs", str(kmax), "--out", str(out), "--force"]) == 0


def test_detector_eval_refuses_an_existing_json_before_loading(tmp_path, capsys):
    from localcomp.cli import main

    (tmp_path / "det.pt").write_bytes(b"not loaded")
    (tmp_path / "eval.json").write_text("{}")
    assert main(["clevr", "detector", "eval", "--detector", str(tmp_path / "det.pt"), "--data", "D",
                 "--json", str(tmp_path / "eval.json")]) == 2
    _refused(capsys, tmp_path / "eval.json")
