"""Kmax bookkeeping: strict success versus the relaxed 'every requested object found' rate."""

import numpy as np

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
