"""Kmax bookkeeping: strict success versus the relaxed 'every requested object found' rate."""

import numpy as np
import pytest

from empirical.evaluation.kmax import evaluate_kmax


def test_extra_objects_fail_success_but_not_requested_found(monkeypatch):
    import empirical.detection.detector as det
    rng = np.random.default_rng(1)
    requested = {k: rng.uniform(-0.8, 0.8, (3, k, 2)) for k in (1, 2)}
    images = {k: np.zeros((3, 8, 8, 3), np.uint8) + k for k in (1, 2)}
    far = np.array([[0.95, 0.95]])  # a spontaneous extra object, away from every request
    monkeypatch.setattr(det, "detect_objects", lambda detector, imgs: [
        np.concatenate([requested[int(imgs[0, 0, 0, 0])][i], far]) for i in range(len(imgs))])
    result = evaluate_kmax(images, requested, detector=None)
    assert result["per_k"] == {1: 0.0, 2: 0.0} and result["kmax"] == 0
    assert result["kmax_requested_found"] == 2
    for k in (1, 2):
        assert result["counts"][k]["requested_found"] == 1.0
        assert result["counts"][k]["exact_count"] == 0.0
        assert result["counts"][k]["mean_detections"] == k + 1
        assert result["counts"][k]["location_found_rate"] == 1.0


def test_location_found_rate_is_the_share_of_requested_objects_found(monkeypatch):
    import empirical.detection.detector as det
    rng = np.random.default_rng(2)
    requested = {k: rng.uniform(-0.8, 0.8, (4, k, 2)) for k in (0, 4)}
    images = {k: np.zeros((4, 8, 8, 3), np.uint8) + k for k in (0, 4)}
    # sample i finds the first i of its 4 requested objects: shares 0, 1/4, 2/4, 3/4
    monkeypatch.setattr(det, "detect_objects", lambda detector, imgs: [
        requested[int(imgs[0, 0, 0, 0])][i][:i] for i in range(len(imgs))])
    result = evaluate_kmax(images, requested, detector=None)
    assert result["counts"][4]["location_found_rate"] == np.mean([0, 0.25, 0.5, 0.75])
    assert result["counts"][4]["requested_found"] == 0.0
    assert result["counts"][0]["location_found_rate"] is None


def test_per_k_figure_only_for_entries_with_an_evaluation():
    from empirical.evaluation.table import plot_per_k

    assert plot_per_k([{"experiment": "exp2", "training_objects": "1-3", "kmax": 1}]) is None
    evaluation = {"per_k": {"0": 1.0, "1": 0.5}, "threshold": 0.5,
                  "counts": {"0": {"requested_found": 1.0, "location_found_rate": None},
                             "1": {"requested_found": 1.0, "location_found_rate": 0.5}}}
    figure = plot_per_k([{"experiment": "exp2l", "training_objects": "1-3", "kmax": 1,
                          "evaluation": evaluation}])
    assert figure is not None and len(figure.axes[0].lines) >= 1
    assert list(figure.axes[2].lines[0].get_xdata()) == [1]   # no share at K = 0


# -- intervals (issue 11 item 3) -------------------------------------------------------------------

def test_wilson_interval_matches_the_closed_form_computed_independently():
    from scipy.stats import binomtest

    from empirical.evaluation.kmax import wilson_interval

    # n = 10, k = 3: the Wilson bounds are the roots in p of (p_hat - p)^2 = z^2 p (1 - p) / n
    z, n, k = 1.959963984540054, 10, 3
    a, b, c = 1 + z * z / n, -(2 * k / n + z * z / n), (k / n) ** 2
    roots = sorted(np.roots([a, b, c]).real)
    np.testing.assert_allclose(wilson_interval(k, n), roots, rtol=1e-12)
    np.testing.assert_allclose(wilson_interval(k, n), [0.1077912674, 0.6032218525], atol=1e-9)
    for k, n in ((0, 16), (16, 16), (5, 32), (31, 32), (1, 1)):
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        np.testing.assert_allclose(wilson_interval(k, n), [ci.low, ci.high], rtol=1e-10, atol=1e-12)
    assert wilson_interval(0, 0) == [0.0, 1.0]
    low, high = wilson_interval(0, 16)
    assert low == 0.0 and 0 < high < 0.25        # not degenerate at a rate of 0


def _sets(rates_by_k: dict, copies: int, per_set: int = 2) -> dict:
    """Location sets whose samples succeed in the given proportion: 8 sets per copy, each of
    ``per_set`` equal outcomes, ``round(8 rate)`` of them successes."""
    out = {}
    for k, rate in rates_by_k.items():
        wins = round(8 * rate)
        out[k] = [[1] * per_set] * (wins * copies) + [[0] * per_set] * ((8 - wins) * copies)
    return out


def test_bootstrap_kmax_contains_the_point_estimate_and_narrows_with_more_sets():
    from empirical.evaluation.kmax import bootstrap_kmax, kmax

    rates = {1: 0.875, 2: 0.75, 3: 0.625, 4: 0.375, 5: 0.25}
    assert kmax(rates) == 3
    widths = []
    for copies in (1, 4, 16):
        low, high = bootstrap_kmax(_sets(rates, copies), seed=0)
        assert low <= 3 <= high
        widths.append(high - low)
    assert widths[0] > widths[-1] and widths == sorted(widths, reverse=True)
    assert bootstrap_kmax(_sets(rates, 1), seed=5) == bootstrap_kmax(_sets(rates, 1), seed=5)
    # certain outcomes: no spread at all
    assert bootstrap_kmax(_sets({1: 1.0, 2: 1.0, 3: 0.0}, 1)) == [2, 2]


def test_set_groups_from_identical_locations_or_a_given_size():
    from empirical.evaluation.kmax import set_groups

    a, b = [[0.1, 0.2]], [[0.5, 0.5]]
    requested = np.array([a, a, b, b, b])
    assert [g.tolist() for g in set_groups(requested)] == [[0, 1], [2, 3, 4]]
    assert [g.tolist() for g in set_groups(requested[:4], 2)] == [[0, 1], [2, 3]]
    assert len(set_groups(np.zeros((3, 0, 2)))) == 3       # K = 0: every sample its own set
    with pytest.raises(ValueError, match="does not divide"):
        set_groups(requested, 2)


def test_evaluate_kmax_carries_intervals_and_keeps_its_fields(monkeypatch):
    import json

    import empirical.detection.detector as det
    rng = np.random.default_rng(3)
    # 4 sets x 2 samples per K; at K = 2 the samples of the first 3 sets succeed, at K = 1 all do
    requested = {k: np.repeat(rng.uniform(-0.8, 0.8, (4, k, 2)), 2, axis=0) for k in (1, 2)}
    images = {k: np.zeros((8, 8, 8, 3), np.uint8) + k for k in (1, 2)}
    monkeypatch.setattr(det, "detect_objects", lambda detector, imgs: [
        requested[int(imgs[0, 0, 0, 0])][i] if (imgs[0, 0, 0, 0] == 1 or i < 6) else np.zeros((0, 2))
        for i in range(len(imgs))])
    result = evaluate_kmax(images, requested, detector=None)
    assert result["per_k"] == {1: 1.0, 2: 0.75} and result["kmax"] == 2
    assert {"counts", "kmax_requested_found", "tolerance", "threshold"} <= set(result)
    from empirical.evaluation.kmax import wilson_interval
    assert result["per_k_wilson95"][2] == wilson_interval(6, 8)
    assert result["counts"][2]["success_wilson95"] == wilson_interval(6, 8)
    assert result["counts"][2]["requested_found_wilson95"] == wilson_interval(6, 8)
    assert result["counts"][1]["sets"] == 4 and result["counts"][1]["n"] == 8
    low, high = result["kmax_bootstrap95"]
    assert low <= 2 <= high and low >= 1
    assert result["bootstrap"]["unit"] == "location set" and result["bootstrap"]["resamples"] == 1000
    json.dumps(result)          # goes into kmax.json as it is
    again = evaluate_kmax(images, requested, detector=None, samples_per_set=2)
    assert again["kmax_bootstrap95"] == result["kmax_bootstrap95"]


def test_per_k_figure_draws_the_intervals():
    from empirical.evaluation.table import plot_per_k

    counts = {"0": {"requested_found": 1.0, "location_found_rate": None, "success_wilson95": [0.8, 1.0],
                    "requested_found_wilson95": [0.8, 1.0]},
              "1": {"requested_found": 1.0, "location_found_rate": 0.5, "success_wilson95": [0.3, 0.7],
                    "requested_found_wilson95": [0.8, 1.0]}}
    evaluation = {"per_k": {"0": 1.0, "1": 0.5}, "threshold": 0.5, "kmax": 1, "kmax_bootstrap95": [0, 1],
                  "counts": counts}
    figure = plot_per_k([{"experiment": "exp2l", "training_objects": "1-3", "kmax": 1,
                          "evaluation": evaluation}])
    bands = figure.axes[0].collections
    assert len(bands) == 1 and len(figure.axes[1].collections) == 1
    low_edge = bands[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(low_edge.min(), 0.3) and np.isclose(low_edge.max(), 1.0)
    assert "Kmax 1 [0, 1]" in figure.axes[0].lines[0].get_label()


def test_per_k_figure_names_the_seed_only_where_a_cell_has_several():
    from empirical.evaluation.table import plot_per_k

    evaluation = {"per_k": {"0": 1.0, "1": 0.5}, "threshold": 0.5,
                  "counts": {"0": {"requested_found": 1.0, "location_found_rate": None},
                             "1": {"requested_found": 1.0, "location_found_rate": 0.5}}}
    runs = [{"experiment": "exp2l", "training_objects": "1-3", "seed": seed, "evaluation": evaluation}
            for seed in (0, 1)] + [{"experiment": "exp2", "training_objects": "1-3", "seed": 0,
                                    "evaluation": evaluation}]
    lines = plot_per_k(runs).axes[0].lines
    labels = [line.get_label() for line in lines if not line.get_label().startswith("_")]  # not the threshold
    assert labels == ["Exp.2L (1-3), seed 0", "Exp.2L (1-3), seed 1", "Exp.2 (1-3)"]
    faces = {line.get_label(): line.get_markerfacecolor() for line in lines}
    assert faces["Exp.2L (1-3), seed 1"] == "white" != faces["Exp.2L (1-3), seed 0"]


# -- chance baseline of the found share (issue 15 item 2) -----------------------------------------

_SETS = np.array([[[-0.5, -0.5], [0.5, 0.5]], [[-0.5, -0.5], [0.0, 0.6]], [[0.7, -0.7], [0.2, -0.2]]])


def test_found_share_chance_rescores_against_another_scenes_locations(monkeypatch):
    import empirical.detection.detector as det
    requested = {2: _SETS, 0: np.zeros((3, 0, 2))}
    images = {k: np.zeros((3, 8, 8, 3), np.uint8) + k for k in requested}
    # a model that draws exactly what was asked: share 1; against another set (either of the two
    # derangements of 3 sets) one sample in three finds half its locations by accident: 1/6
    monkeypatch.setattr(det, "detect_objects", lambda detector, imgs: list(requested[int(imgs[0, 0, 0, 0])]))
    for seed in range(5):
        result = evaluate_kmax(images, requested, detector=None, seed=seed)
        assert result["counts"][2]["location_found_rate"] == 1.0
        assert result["counts"][2]["found_share_chance"] == pytest.approx(1 / 6)
        assert result["counts"][0]["found_share_chance"] is None
    assert result["chance"]["field"] == "found_share_chance"
    assert result["per_sample"][2] == {"detections": [2, 2, 2], "success": [True, True, True],
                                       "found_share": [1.0, 1.0, 1.0]}
    assert result["per_sample"][0]["found_share"] is None
    # a model that ignores the locations and draws every location of every set: chance = share
    everything = _SETS.reshape(-1, 2)
    monkeypatch.setattr(det, "detect_objects", lambda detector, imgs: [everything] * len(imgs))
    result = evaluate_kmax({2: images[2]}, {2: _SETS}, detector=None)
    assert result["counts"][2]["location_found_rate"] == result["counts"][2]["found_share_chance"] == 1.0
    # one location set: no other scene to score against
    result = evaluate_kmax({2: images[2][:1]}, {2: _SETS[:1]}, detector=None)
    assert result["counts"][2]["found_share_chance"] is None


def test_found_share_beyond_pools_the_k_above_the_training_maximum_over_location_sets():
    from empirical.evaluation.kmax import found_share_beyond

    # K = 4: two sets of two samples, set means 1.0 and 0.5; K = 5: set means 0.8 and 0.2; K <= 3
    # is not pooled whatever it holds
    evaluation = {"bootstrap": {"samples_per_set": 2}, "per_sample": {
        "3": {"found_share": [0.0, 0.0, 0.0, 0.0]},
        "4": {"found_share": [1.0, 1.0, 0.5, 0.5]}, "5": {"found_share": [0.8, 0.8, 0.2, 0.2]}}}
    pooled = found_share_beyond(evaluation, top=3, seed=1)
    assert pooled["mean"] == pytest.approx((0.75 + 0.5) / 2) and pooled["ks"] == [4, 5]
    low, high = pooled["bootstrap95"]
    # resampling whole sets: the extremes are (0.5 + 0.2) / 2 and (1.0 + 0.8) / 2, and with
    # 1000 resamples of 2 x 2 sets both are drawn (each with probability 1/16)
    assert low == pytest.approx(0.35) and high == pytest.approx(0.9)
    assert found_share_beyond(evaluation, top=3, seed=1) == pooled
    assert found_share_beyond(evaluation, top=5) is None                          # nothing above 5
    assert found_share_beyond({"per_sample": {"4": {"success": [True]}}}, top=3) is None  # older file


def test_derangement_has_no_fixed_point_and_is_seeded():
    from empirical.evaluation.kmax import derangement
    for n in (2, 3, 8):
        for seed in range(20):
            perm = derangement(n, np.random.default_rng(seed))
            assert sorted(perm) == list(range(n)) and not np.any(perm == np.arange(n))
            assert np.array_equal(perm, derangement(n, np.random.default_rng(seed)))
    assert derangement(1, np.random.default_rng(0)) is None


# -- reporting (issue 15 item 5) --------------------------------------------------------------------

def test_per_k_table_lists_n_success_share_and_chance(monkeypatch):
    import empirical.detection.detector as det
    from empirical.evaluation.kmax import per_k_table
    requested = {0: np.zeros((3, 0, 2)), 2: _SETS}
    images = {k: np.zeros((3, 8, 8, 3), np.uint8) + k for k in requested}
    monkeypatch.setattr(det, "detect_objects", lambda detector, imgs: list(requested[int(imgs[0, 0, 0, 0])]))
    lines = per_k_table(evaluate_kmax(images, requested, detector=None)).splitlines()
    assert lines[0].split() == ["K", "n", "success", "found", "share", "chance"]
    assert lines[1].split() == ["0", "3", "1.00", "n/a", "n/a"]
    assert lines[2].split() == ["2", "3", "1.00", "1.00", "0.17"]


def test_annotated_grid_borders_pass_green_fail_red_and_writes_the_counts():
    from empirical.evaluation.kmax import FAIL_COLOUR, PASS_COLOUR, annotated_grid
    pixels = np.full((2, 16, 16, 3), 128, np.uint8)
    grid = annotated_grid(pixels, _SETS[:2], 2, [2, 5], [True, False], ncols=2, scale=8)
    assert grid.shape == (2 + 128 + 2, 2 * (128 + 2) + 2, 3)
    first, second = grid[2:130, 2:130], grid[2:130, 132:260]
    assert tuple(first[64, 0]) == PASS_COLOUR and tuple(second[64, 0]) == FAIL_COLOUR
    assert tuple(first[127, 64]) == PASS_COLOUR and tuple(second[0, 64]) == FAIL_COLOUR
    corner = first[3:20, 3:40]
    assert (corner > 200).all(-1).any() and (corner == 0).all(-1).any()   # light text on black
    # the texts differ ("K2 d2" vs "K2 d5"); without outcomes there is no border
    assert not np.array_equal(first[3:20, 3:60], second[3:20, 3:60])
    plain = annotated_grid(pixels, _SETS[:2], 2, None, None, ncols=2, scale=8)
    assert tuple(plain[2 + 64, 2]) == (128, 128, 128)
