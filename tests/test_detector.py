"""Matching, Kmax and the detector's decoding, on synthetic detections and heatmaps."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from empirical.detection.detector import (HEATMAP_SCALE, WORKING_RESOLUTION, augment, build_network,
                                count_accuracy, decode_heatmap, detect_objects, focal_loss,
                                focal_loss_per_image, hard_example_weights, heatmap_targets,
                                load_detector, save_detector, to_working_resolution,
                                train_detector, tune_threshold)
from empirical.detection.matching import match_locations, sample_succeeds
from empirical.evaluation.kmax import evaluate_kmax, kmax

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
    """A synthetic 'heatmap': the training target of objects at ``locations``."""
    return heatmap_targets([np.asarray(locations)], size)[0, 0]


@given(st.integers(0, 6), st.integers(0, 100))
def test_decode_recovers_separated_centres(n, seed):
    rng = np.random.default_rng(seed)
    size = 64
    cells = rng.choice(16, size=n, replace=False)  # a 4x4 grid of well-separated cells
    locations = np.stack([(cells % 4) * 0.45 - 0.7, (cells // 4) * 0.45 - 0.7], 1) + \
        rng.uniform(-0.03, 0.03, (n, 2))
    found = decode_heatmap(_blob_image(locations.reshape(-1, 2), size)[None])[0]
    assert len(found) == n
    matched, extra = match_locations(found, locations, tolerance=1 / size)
    assert matched.all() and extra == 0


@given(st.floats(-0.8, 0.8), st.floats(-0.8, 0.8), st.floats(0, 2 * np.pi))
def test_targets_keep_centres_1_2_px_apart_separate(u, v, angle):
    """At 32 px two projected centres can lie 1.2 px apart; on the 2x heatmap (64 cells)
    the targets still decode to two peaks at the right places."""
    step = 1.2 * 2 / 32                       # 1.2 px of a 32 px image in [-1, 1] units
    locations = np.array([[u, v], [u + step * np.cos(angle), v + step * np.sin(angle)]])
    target = heatmap_targets([locations], WORKING_RESOLUTION * HEATMAP_SCALE)
    assert target.max() == 1.0 and (target == 1.0).sum() == 2
    found = decode_heatmap(target[:, 0], threshold=0.5)[0]
    # within one pixel (the neighbour's blob pulls the 3x3 refinement by up to ~1/3 px);
    # Kmax's tolerance is 2 px
    matched, extra = match_locations(found, locations, tolerance=2 / 32)
    assert len(found) == 2 and matched.all() and extra == 0


def test_working_resolution_area_averages_64_px_images():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    big = np.repeat(np.repeat(small, 2, axis=1), 2, axis=2)   # each pixel as a 2x2 block
    np.testing.assert_allclose(to_working_resolution(big).numpy(),
                               to_working_resolution(small).numpy(), atol=1e-6)
    assert tuple(to_working_resolution(small[:, :16, :16]).shape) == (2, 3, 32, 32)


def test_augment_is_seeded_bounded_and_changes_images():
    import torch
    x = torch.rand(16, 3, 32, 32) * 2 - 1
    a, b = augment(x, np.random.default_rng(1)), augment(x, np.random.default_rng(1))
    assert torch.equal(a, b) and a.shape == x.shape and a.abs().max() <= 1
    changed = (a - x).abs().flatten(1).max(1).values > 1e-6
    assert 0 < int(changed.sum()) <= 16  # each of 3 augmentations is on with prob. 1/2


def test_focal_loss_prefers_the_target():
    import torch
    target = torch.from_numpy(heatmap_targets([np.array([[0.1, -0.3], [0.5, 0.5]])], 64))
    good = torch.where(target >= 1, torch.tensor(6.0), torch.tensor(-6.0))
    assert float(focal_loss(good, target)) < 0.05 < float(focal_loss(-good, target))


def _blob_dataset(n, seed, max_objects=3):
    """ClevrData-like stand-in: 32 px images of 0..max_objects well-separated blobs."""
    from types import SimpleNamespace
    from empirical.clevr.synthetic import blob_image
    rng = np.random.default_rng(seed)
    images, metadata = [], []
    for _ in range(n):
        k = int(rng.integers(0, max_objects + 1))
        cells = rng.choice(9, size=k, replace=False)   # 3x3 grid: no touching blobs
        locs = np.stack([(cells % 3) * 0.6 - 0.6, (cells // 3) * 0.6 - 0.6], 1) + \
            rng.uniform(-0.1, 0.1, (k, 2))
        colours = rng.uniform(0.3, 1, (k, 3))
        image = blob_image(locs, colours, 32, radius=1.5)
        images.append(np.round((image.transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8))
        metadata.append({"objects": [{"location": list(map(float, l))} for l in locs]})
    return SimpleNamespace(images=np.stack(images), metadata=metadata)


def test_training_on_blobs_lowers_loss_and_counts_them(torch_one_thread, tmp_path):
    train = _blob_dataset(64, seed=0)
    network, losses = train_detector([train], steps=150, seed=0, batch_size=16, width=8,
                                     lr=1e-2, progress=False, checkpoint=tmp_path / "d.pt",
                                     checkpoint_every=100)
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    assert (tmp_path / "d.pt").exists()                        # the periodic checkpoint
    held_out = _blob_dataset(40, seed=1)
    tuning = tune_threshold(network, [held_out])
    assert 0.1 <= tuning["threshold"] <= 0.9
    per_k = count_accuracy(network, held_out, threshold=tuning["threshold"])
    assert tuning["min_accuracy"] == min(e["exact_count_accuracy"] for e in per_k.values())
    assert all(e["exact_count_accuracy"] >= 0.9 for e in per_k.values()), per_k
    # the saved checkpoint reproduces the detections and keeps the tuned threshold
    network.threshold.fill_(tuning["threshold"])
    save_detector(network, tmp_path / "det.pt")
    loaded = load_detector(tmp_path / "det.pt")
    assert float(loaded.threshold) == pytest.approx(tuning["threshold"])
    for a, b in zip(detect_objects(loaded, held_out.images), detect_objects(network, held_out.images)):
        np.testing.assert_allclose(a, b)


def test_load_rejects_another_architecture(tmp_path):
    import torch
    from localcomp.errors import UserError
    torch.save({"width": 8, "state_dict": {"0.weight": torch.zeros(8, 5, 3, 3)}}, tmp_path / "old.pt")
    with pytest.raises(UserError, match="architecture"):
        load_detector(tmp_path / "old.pt")
    torch.save({"width": 4, "state_dict": build_network(4).state_dict()}, tmp_path / "bare.pt")
    assert load_detector(tmp_path / "bare.pt").width == 4   # a bare state dict of this net loads


def test_evaluate_kmax_with_a_stub_detector(monkeypatch):
    import empirical.detection.detector as det
    rng = np.random.default_rng(0)
    requested = {k: rng.uniform(-0.8, 0.8, (4, k, 2)) for k in (0, 1, 2, 3)}
    images = {k: np.zeros((4, 8, 8, 3), np.uint8) + k for k in (0, 1, 2, 3)}
    # the stub finds the requested objects for K <= 2 and drops one object at K = 3
    monkeypatch.setattr(det, "detect_objects", lambda detector, imgs: [
        requested[int(imgs[0, 0, 0, 0])][i][: 2] for i in range(len(imgs))])
    result = evaluate_kmax(images, requested, detector=None)
    assert result["per_k"] == {0: 1.0, 1: 1.0, 2: 1.0, 3: 0.0} and result["kmax"] == 2


def test_detect_objects_takes_any_square_size():
    network = build_network(8)
    for size in (16, 32, 64):
        out = detect_objects(network, np.zeros((2, size, size, 3), np.uint8))
        assert len(out) == 2 and all(o.shape[1] == 2 for o in out)
    with pytest.raises(ValueError, match="uint8"):
        detect_objects(network, np.zeros((2, 16, 16, 3), np.float32))


def _train_args(tmp_path, **kw):
    from argparse import Namespace
    args = dict(data=["blobs"], val=None, out=str(tmp_path / "run"), steps=3, width=8,
                batch_size=8, lr=1e-3, threads=1, seed=0, init=None)
    args.update(kw)
    return Namespace(**args)


def test_fine_tuning_starts_from_the_init_weights(torch_one_thread, tmp_path, monkeypatch):
    import json
    import empirical.clevr.dataset
    from empirical.detection.detector import train_detector_cli
    from localcomp.errors import UserError
    train = _blob_dataset(32, seed=0)
    trained, _ = train_detector([train], steps=60, seed=0, batch_size=16, width=8, lr=1e-2,
                                progress=False)
    trained.threshold.fill_(0.3)
    save_detector(trained, tmp_path / "init.pt")
    # a (near) zero learning rate keeps the init network: same detections, low first loss
    kept, kept_losses = train_detector([train], steps=2, seed=1, batch_size=16, width=8,
                                       lr=1e-12, progress=False, init=load_detector(tmp_path / "init.pt"))
    _, scratch_losses = train_detector([train], steps=2, seed=1, batch_size=16, width=8,
                                       lr=1e-12, progress=False)
    assert kept_losses[0] < 0.5 * scratch_losses[0]
    assert float(kept.threshold) == pytest.approx(0.3)
    for a, b in zip(detect_objects(kept, train.images), detect_objects(trained, train.images)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # the CLI: --init is checked (width, existence) before anything is written, and recorded
    monkeypatch.setattr(empirical.clevr.dataset, "load_dataset", lambda path: train)
    with pytest.raises(UserError, match="--init.*width 8.*--width is 16"):
        train_detector_cli(_train_args(tmp_path, init=str(tmp_path / "init.pt"), width=16))
    with pytest.raises(UserError, match="--init.*does not exist"):
        train_detector_cli(_train_args(tmp_path, init=str(tmp_path / "missing.pt")))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="--init"):
        train_detector_cli(_train_args(tmp_path, init=str(tmp_path / "junk.pt")))
    assert not (tmp_path / "run").exists()
    assert train_detector_cli(_train_args(tmp_path, init=str(tmp_path / "init.pt"))) == 0
    report = json.loads((tmp_path / "run" / "train.json").read_text())
    assert report["init"] == str(tmp_path / "init.pt")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["init"] == report["init"]
    # a 32 px network fine-tunes at another working resolution (conv weights do not depend on it)
    with pytest.raises(UserError, match="--working-resolution"):
        train_detector_cli(_train_args(tmp_path, out=str(tmp_path / "w30"), working_resolution=30))
    assert not (tmp_path / "w30").exists()
    assert train_detector_cli(_train_args(tmp_path, out=str(tmp_path / "w48"), working_resolution=48,
                                          init=str(tmp_path / "init.pt"))) == 0
    assert load_detector(tmp_path / "w48" / "detector.pt").working_resolution == 48
    assert json.loads((tmp_path / "w48" / "train.json").read_text())["working_resolution"] == 48


def test_hard_example_weights_single_out_the_image_the_network_gets_wrong(torch_one_thread):
    import torch
    train = _blob_dataset(32, seed=0)
    network, _ = train_detector([train], steps=100, seed=0, batch_size=16, width=8, lr=1e-2,
                                progress=False)
    images = to_working_resolution(train.images)
    locations = [np.array([o["location"] for o in m["objects"]]).reshape(-1, 2)
                 for m in train.metadata]
    with_blobs = [i for i, loc in enumerate(locations) if len(loc)]
    wrong = with_blobs[0]
    locations[wrong] = np.zeros((0, 2))          # a mislabelled image: its blobs count as errors
    targets = torch.from_numpy(heatmap_targets(locations, WORKING_RESOLUTION * HEATMAP_SCALE))
    weights = hard_example_weights(network, images, targets)
    assert weights.shape == (32,) and weights.sum() == pytest.approx(1.0)
    assert int(np.argmax(weights)) == wrong
    # per-image losses are each image's own focal loss
    from empirical.detection.detector import add_coordinates
    with torch.no_grad():
        logits = network(add_coordinates(images[:4]))
        per_image = focal_loss_per_image(logits, targets[:4])
        for i in range(4):
            assert float(per_image[i]) == pytest.approx(float(focal_loss(logits[i:i + 1], targets[i:i + 1])),
                                                        rel=1e-5)


def test_hard_fraction_needs_an_init_network(torch_one_thread, tmp_path, monkeypatch):
    import json
    import empirical.clevr.dataset
    from empirical.detection.detector import train_detector_cli
    from localcomp.errors import UserError
    train = _blob_dataset(16, seed=0)
    with pytest.raises(ValueError, match="init"):
        train_detector([train], steps=1, seed=0, batch_size=8, width=8, progress=False,
                       hard_fraction=0.5)
    monkeypatch.setattr(empirical.clevr.dataset, "load_dataset", lambda path: train)
    with pytest.raises(UserError, match="--hard-fraction.*--init"):
        train_detector_cli(_train_args(tmp_path, hard_fraction=0.5))
    with pytest.raises(UserError, match="--hard-fraction.*\\[0, 1\\)"):
        train_detector_cli(_train_args(tmp_path, hard_fraction=1.0))
    assert not (tmp_path / "run").exists()
    save_detector(build_network(8), tmp_path / "init.pt")
    assert train_detector_cli(_train_args(tmp_path, init=str(tmp_path / "init.pt"),
                                          hard_fraction=0.5)) == 0
    assert json.loads((tmp_path / "run" / "train.json").read_text())["hard_fraction"] == 0.5


def _hardness_module():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "detector_hardness.py"
    spec = importlib.util.spec_from_file_location("detector_hardness", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_error_breakdown_splits_by_visibility_and_error_sign():
    hardness = _hardness_module()
    true = np.array([3, 3, 3, 3, 0])
    found = np.array([3, 2, 4, 2, 0])
    min_pixels = np.array([10.0, 3.0, 10.0, 4.0, np.inf])
    hidden = np.array([False, True, False, True, False])
    table = hardness.error_breakdown(true, found, min_pixels, hidden, thresholds=(1, 5))
    k3 = table[3]
    assert (k3["n"], k3["exact_count_accuracy"], k3["errors"]) == (4, 0.25, 3)
    assert k3["min_visible_ge"][1] == {"n": 4, "exact_count_accuracy": 0.25}
    assert k3["min_visible_ge"][5] == {"n": 2, "exact_count_accuracy": 0.5}
    assert k3["frac_errors_undercount"] == pytest.approx(2 / 3)
    assert k3["frac_errors_overcount"] == pytest.approx(1 / 3)
    assert k3["hidden_centre"] == {"n": 2, "exact_count_accuracy": 0.0}
    assert table[0]["errors"] == 0 and table[0]["frac_errors_undercount"] is None
    bins = hardness.miss_rate_by_pixels(np.array([3.0, 4.0, 9.0, 40.0]),
                                        np.array([True, False, False, False]), edges=(0, 5, np.inf))
    assert [(b["objects"], b["missed"]) for b in bins] == [(2, 1), (2, 0)]
    kept = hardness.accuracy_per_k(true, found, np.array([True, False, True, True, True]))
    assert kept == {0: {"n": 1, "exact_count_accuracy": 1.0},
                    3: {"n": 3, "exact_count_accuracy": pytest.approx(1 / 3)}}
    by_colour = hardness.miss_rate_by_colour(np.array(["gray", "red", "gray"], dtype=object),
                                             np.array([True, False, False]))
    assert by_colour == {"gray": {"objects": 2, "missed": 1, "miss_rate": 0.5},
                         "red": {"objects": 1, "missed": 0, "miss_rate": 0.0}}
    # the centre of object 1 (mask value 1) lies on object 2's pixels: hidden
    mask = np.zeros((32, 32), np.uint8)
    mask[16, 16], mask[0, 0] = 2, 2
    hidden = hardness.centre_hidden(mask, np.array([[1 / 32, 1 / 32], [-1 + 1 / 32, -1 + 1 / 32]]))
    assert hidden.tolist() == [True, False]
    assert hardness.visible_pixels(np.kron(mask, np.ones((2, 2), np.uint8)), 2).tolist() == [0, 2]


def test_working_resolution_is_stored_with_the_detector(tmp_path):
    network = build_network(4, working_resolution=48)
    save_detector(network, tmp_path / "d48.pt")
    loaded = load_detector(tmp_path / "d48.pt")
    assert loaded.working_resolution == 48
    from empirical.detection.detector import predict_heatmaps
    assert predict_heatmaps(loaded, np.zeros((2, 48, 48, 3), np.uint8)).shape == (2, 96, 96)
    assert predict_heatmaps(loaded, np.zeros((1, 32, 32, 3), np.uint8)).shape == (1, 96, 96)
    assert load_detector(tmp_path / "d48.pt").width == 4
    assert tuple(to_working_resolution(np.zeros((1, 96, 96, 3), np.uint8), 48).shape) == (1, 3, 48, 48)
    with pytest.raises(ValueError, match="working_resolution"):
        build_network(4, working_resolution=30)
