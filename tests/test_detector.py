"""Matching, Kmax and the detector's decoding, on synthetic detections and heatmaps."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from empirical.detector import decode_heatmap, detect_objects, build_network, heatmap_targets
from empirical.kmax import evaluate_kmax, kmax, match_locations, sample_succeeds

points = st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1)), min_size=0, max_size=8)


@given(requested=points, seed=st.integers(0, 1000))
def test_permuted_jittered_detections_match(requested, seed):
    rng = np.random.default_rng(seed)
    requested = np.array(requested, dtype=float).reshape(-1, 2)
    detected = requested[rng.permutation(len(requested))] + rng.uniform(-0.05, 0.05,
                                                                        (len(requested), 2))
    matched, extra = match_locations(detected, requested, tolerance=0.1)
    assert matched.all() and extra == 0 and sample_succeeds(detected, requested, 0.1)


def test_hungarian_beats_greedy_and_counts_extras():
    requested = np.array([[0.0, 0.0], [0.2, 0.0]])
    # greedy nearest for the first request would take (0.1, 0) and strand the second
    detected = np.array([[0.1, 0.0], [-0.08, 0.0], [0.9, 0.9]])
    matched, extra = match_locations(detected, requested, tolerance=0.12)
    assert matched.tolist() == [True, True] and extra == 1
    assert not sample_succeeds(detected, requested, 0.12)          # one object too many
    assert not sample_succeeds(detected[:1], requested, 0.12)      # one missing
    far = requested + 0.5
    assert match_locations(far, requested, 0.12)[0].tolist() == [False, False]
    assert match_locations(np.zeros((0, 2)), requested)[1] == 0


def test_kmax_is_largest_k_before_first_failure():
    assert kmax({1: 1.0, 2: 0.9, 3: 0.5, 4: 0.49, 5: 0.8}) == 3
    assert kmax({1: 0.2, 2: 0.9}) == 0
    assert kmax({0: 0.0, 1: 0.6}) == 1
    assert kmax({1: 0.9, 2: 0.7}, threshold=0.8) == 1


def _blob_image(locations, size):
    """A synthetic 'heatmap' with a 3x3 blob at each location."""
    return heatmap_targets([np.asarray(locations)], size)[0, 0]


@given(st.integers(0, 6), st.integers(0, 100))
def test_decode_recovers_separated_centres(n, seed):
    rng = np.random.default_rng(seed)
    size = 32
    cells = rng.choice(16, size=n, replace=False)  # a 4x4 grid of well-separated cells
    locations = np.stack([(cells % 4) * 0.45 - 0.7, (cells // 4) * 0.45 - 0.7], 1) + \
        rng.uniform(-0.03, 0.03, (n, 2))
    found = decode_heatmap(_blob_image(locations.reshape(-1, 2), size)[None])[0]
    assert len(found) == n
    matched, extra = match_locations(found, locations, tolerance=1 / size)
    assert matched.all() and extra == 0


def test_evaluate_kmax_with_a_stub_detector(monkeypatch):
    import empirical.detector as det
    rng = np.random.default_rng(0)
    requested = {k: rng.uniform(-0.8, 0.8, (4, k, 2)) for k in (0, 1, 2, 3)}
    images = {k: np.zeros((4, 8, 8, 3), np.uint8) + k for k in (0, 1, 2, 3)}
    # the stub finds the requested objects for K <= 2 and drops one object at K = 3
    monkeypatch.setattr(det, "detect_objects", lambda detector, imgs: [
        requested[int(imgs[0, 0, 0, 0])][i][: 2] for i in range(len(imgs))])
    result = evaluate_kmax(images, requested, detector=None)
    assert result["per_k"] == {0: 1.0, 1: 1.0, 2: 1.0, 3: 0.0} and result["kmax"] == 2


def test_network_is_fully_convolutional():
    network = build_network(8)
    for size in (16, 32):
        out = detect_objects(network, np.zeros((2, size, size, 3), np.uint8))
        assert len(out) == 2 and all(o.shape[1] == 2 for o in out)
    with pytest.raises(ValueError, match="uint8"):
        detect_objects(network, np.zeros((2, 16, 16, 3), np.float32))
