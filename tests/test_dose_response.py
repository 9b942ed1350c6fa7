"""The locality dose-response figure's reader and command (``localcomp clevr dose-response``)."""

import json

import pytest

from empirical.evaluation.dose_response import NONLOCAL, load_point, parse_point, x_position
from localcomp.cli import main
from localcomp.errors import UserError


def _run(folder, kmax, found6, leakage=None):
    folder.mkdir(parents=True)
    counts = {str(K): {"n": 16, "location_found_rate": found6 if K == 6 else 0.5, "found_share_chance": 0.2}
              for K in range(9)}
    (folder / "kmax.json").write_text(json.dumps({
        "experiment": f"machine-{folder.name}", "training_objects": "1-3", "kmax": kmax,
        "kmax_requested_found": kmax + 1, "num_sets": 16, "samples_per_set": 1,
        "evaluation": {"counts": counts, "kmax_bootstrap95": [kmax - 1, kmax + 1],
                       "kmax_requested_found_bootstrap95": [kmax, kmax + 2]}}))
    if leakage is not None:
        (folder / "locality").mkdir()
        (folder / "locality" / "locality.json").write_text(json.dumps({"summary": {"conditional_leakage": leakage}}))
    return folder


def test_a_point_is_series_k_and_run_and_bad_specs_name_the_flag():
    assert parse_point("machine:2:some/run") == ("machine", 2, parse_point("m:0:some/run")[2])
    assert parse_point("learned exp2l:nonlocal:a:b")[1:] == (NONLOCAL, parse_point("x:1:a:b")[2])
    for bad, words in (("machine:2", "SERIES:K:RUN_DIR"), ("machine:two:run", "integer"),
                       ("machine:-1:run", ">= 0"), (":1:run", "SERIES:K:RUN_DIR")):
        with pytest.raises(UserError, match=words):
            parse_point(bad)


def test_nonlocal_sits_past_the_largest_k():
    assert x_position(NONLOCAL, [1, 2, 8, NONLOCAL]) == 10
    assert x_position(3, [1, NONLOCAL]) == 3


def test_load_point_reads_kmax_found_share_and_leakage(tmp_path):
    run = _run(tmp_path / "k2", kmax=4, found6=0.7, leakage=0.3)
    p = load_point(f"machine:2:{run}", found_ks=(6, 8))
    assert (p["kmax"], p["kmax_bootstrap95"], p["kmax_requested_found"]) == (4, [3, 5], 5)
    assert p["found_share"]["6"] == {"found": 0.7, "chance": 0.2, "n": 16}
    assert p["conditional_leakage"] == 0.3
    assert load_point(f"machine:2:{run}", found_ks=(12,))["found_share"]["12"] is None
    bare = _run(tmp_path / "k3", kmax=2, found6=0.4)
    assert load_point(f"machine:3:{bare}")["conditional_leakage"] is None
    with pytest.raises(UserError, match="does not exist"):
        load_point(f"machine:3:{tmp_path / 'missing'}")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "kmax.json").write_text(json.dumps({"kmax": 1}))
    with pytest.raises(UserError, match="evaluation.counts"):
        load_point(f"machine:3:{tmp_path / 'bad'}")


def test_dose_response_command_writes_the_figure_and_json_and_refuses_overwrite(tmp_path, capsys):
    a = _run(tmp_path / "k1", kmax=5, found6=0.9, leakage=0.05)
    b = _run(tmp_path / "nl", kmax=3, found6=0.1, leakage=0.9)
    out = tmp_path / "out"
    args = ["clevr", "dose-response", "--point", f"machine:1:{a}", f"machine:nonlocal:{b}", "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "dose_response.json").read_text())
    assert [p["k"] for p in report["points"]] == [1, NONLOCAL]
    assert (out / "dose_response.png").stat().st_size > 0
    capsys.readouterr()
    assert main(args) == 2
    assert "dose_response.json" in capsys.readouterr().err
