"""results/clevr/framed/reliability.py: Kmax with extras allowed predicted from per-object shares."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("reliability", ROOT / "results/clevr/framed/reliability.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kmax_json(shares: dict[int, float], all_found: dict[int, float], kmax=0, kmax_found=0) -> dict:
    counts = {str(k): {"location_found_rate": p, "requested_found": all_found[k], "n": 32} for k, p in shares.items()}
    return {"experiment": "exp2l", "training_objects": "1-3", "kmax": kmax, "kmax_requested_found": kmax_found,
            "evaluation": {"counts": {"0": {"n": 32}, **counts}, "per_k": {str(k): 0.0 for k in shares}}}


def test_a_flat_share_of_independent_objects_predicts_its_kmax():
    rel = _module()
    shares = {k: 0.9 for k in range(1, 11)}
    r = rel.reliability(_kmax_json(shares, {k: 0.9 ** k for k in shares}, kmax_found=6))
    # 0.9 ** 6 = 0.53 passes the 0.5 rule, 0.9 ** 7 = 0.48 fails
    assert r["kmax_extras_allowed_predicted"] == 6 and r["all_found_mean_abs_error"] == pytest.approx(0)
    assert r["kmax_of_a_flat_share"] == pytest.approx(math.log(0.5) / math.log(0.9))
    assert r["share_found_mean_k1_to_8"] == pytest.approx(0.9)
    assert rel.agreement({"a": r})["kmax_exact"] == 1


def test_correlated_misses_show_as_an_error_and_a_wrong_prediction(tmp_path):
    """Samples that are all-or-nothing (every object found in 70 % of them, none in the rest) have
    p_K = 0.7 at every K but "all found" 0.7: the independence prediction 0.7 ** K is far off."""
    rel = _module()
    shares = {k: 0.7 for k in range(1, 9)}
    r = rel.reliability(_kmax_json(shares, {k: 0.7 for k in shares}, kmax_found=8))
    assert r["kmax_extras_allowed_predicted"] == 1 and r["all_found_mean_abs_error"] > 0.3
    a = rel.agreement({"a": r})
    assert a["kmax_off_by_2_or_more"] == 1 and a["all_found_points"] == 7   # K = 1 is left out
    # the script end to end: JSON, Markdown and figure beside each other
    run = tmp_path / "run"
    run.mkdir()
    (run / "kmax.json").write_text(json.dumps(_kmax_json(shares, {k: 0.7 for k in shares}, kmax_found=8)))
    import sys
    argv, sys.argv = sys.argv, ["reliability.py", str(run), "--out", str(tmp_path / "out")]
    try:
        rel.main()
    finally:
        sys.argv = argv
    saved = json.loads((tmp_path / "out" / "reliability.json").read_text())
    assert saved["agreement"]["kmax_off_by_2_or_more"] == 1
    assert (tmp_path / "out" / "reliability.png").stat().st_size > 0
    assert "| 8 (1) |" in (tmp_path / "out" / "reliability.md").read_text()


def test_a_kmax_with_untested_k_below_the_first_failure_is_marked_open():
    rel = _module()
    # tested at 1, 6, 8: passing K = 1 and failing K = 6 leaves Kmax anywhere in 1..5
    assert not rel.kmax_is_determined(1, [1, 6, 8])
    assert rel.kmax_is_determined(0, [1, 6, 8])          # K = 1 failed: nothing is left open
    assert rel.kmax_is_determined(3, [1, 2, 3, 4, 6, 8])  # K = 4 tested and failed
    assert not rel.kmax_is_determined(3, [1, 2, 3, 6, 8])
    assert rel.kmax_is_determined(10, list(range(1, 11)))  # passed every tested K
    r = rel.reliability(_kmax_json({1: 0.9, 6: 0.6, 8: 0.5}, {1: 0.9, 6: 0.05, 8: 0.0}, kmax=1, kmax_found=1))
    assert not r["kmax_extras_allowed_determined"] and not r["kmax_strict_determined"]
    assert "| 1\\* (1) | 1\\* |" in rel.markdown({"a": r})


def test_runs_at_the_same_kmax_and_nearly_the_same_share_share_one_label():
    rel = _module()
    runs = {name: {"kmax_extras_allowed": k, "share_found_mean_k1_to_8": p}
            for name, k, p in (("a", 1, 0.60), ("b", 5, 0.90), ("c", 1, 0.61), ("d", 1, 0.80))}
    clusters = rel.label_clusters(runs)
    assert [(k, numbers) for _, k, numbers in clusters] == [(1, ["1", "3"]), (1, ["4"]), (5, ["2"])]
    assert clusters[0][0] == pytest.approx(0.605)
