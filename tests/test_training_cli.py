"""`clevr train` / `clevr sample` handlers end to end on the tiny preset, and sampling helpers."""

import argparse

import numpy as np
import pytest
import torch

from localcomp.errors import UserError
from empirical.cli.model import add_model_commands
from empirical.models.sampling import image_grid, parse_locations, sample_for_sets


# one torch thread: the `torch_one_thread` fixture in conftest.py
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _run(argv):
    parser = argparse.ArgumentParser()
    add_model_commands(parser.add_subparsers(dest="job", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_train_then_sample_writes_run_files(tmp_path):
    run = tmp_path / "run"
    assert _run(["train", "--experiment", "exp3l", "--preset", "tiny", "--data", "synthetic:0-2",
                 "--out", str(run), "--steps", "3", "--checkpoint-every", "3"]) == 0
    assert {"run.json", "checkpoint.pt", "train.json"} <= {p.name for p in run.iterdir()}
    assert _run(["sample", "--run", str(run), "--locations=-0.5,0.5;0.2,0.1", "--n", "2",
                 "--sampler-steps", "2", "--out", str(tmp_path / "s")]) == 0
    data = np.load(tmp_path / "s" / "samples.npz")
    assert data["images"].shape == (1, 2, 16, 16, 3) and data["images"].dtype == np.uint8
    assert data["locations"].shape == (1, 2, 2) and data["mask"].all()
    assert (tmp_path / "s" / "grid.png").stat().st_size > 0


def test_bad_cli_inputs(tmp_path):
    with pytest.raises(UserError, match="--data"):
        _run(["train", "--experiment", "exp1", "--preset", "tiny", "--data", str(tmp_path / "nope"),
              "--out", str(tmp_path / "r")])
    with pytest.raises(UserError, match="--run"):
        _run(["sample", "--run", str(tmp_path), "--locations", "0,0"])
    with pytest.raises(UserError, match="item 2"):
        parse_locations("0,0;0.5")
    with pytest.raises(UserError, match="outside"):
        parse_locations("0,1.5")
    assert parse_locations("").shape == (0, 2)
    with pytest.raises(UserError, match="--detector"):
        _run(["kmax", "--run", str(tmp_path), "--data", "D", "--detector", str(tmp_path / "none.pt")])


def test_samples_do_not_depend_on_batching():
    torch.manual_seed(0)

    def model(x, sigma, cond, mask):  # a stand-in denoiser that uses the conditioners
        shift = (cond * mask[..., None]).sum(dim=(1, 2))[:, None, None, None]
        return 0.5 * x / (1 + sigma[:, None, None, None]) + 0.1 * shift

    sets = [torch.zeros(0, 2), torch.tensor([[0.5, -0.5]]), torch.tensor([[0.1, 0.2], [0.3, 0.4]])]
    a = sample_for_sets(model, sets, 8, samples_per_set=2, num_steps=3, seed=1, batch_size=6)
    b = sample_for_sets(model, sets, 8, samples_per_set=2, num_steps=3, seed=1, batch_size=1)
    assert a.shape == (6, 3, 8, 8) and torch.allclose(a, b, atol=1e-6)


def test_image_grid_layout():
    images = np.zeros((5, 4, 4, 3), np.uint8)
    grid = image_grid(images, ncols=3, pad=1)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1, 3)
    assert grid[0, 0, 0] == 255 and grid[1, 1, 0] == 0


def test_table_puts_our_kmax_next_to_the_papers(tmp_path):
    import json
    for exp, kmax in (("exp2", 2), ("exp2l", 7), ("exp2l-k8", 3)):
        (tmp_path / exp).mkdir()
        (tmp_path / exp / "kmax.json").write_text(json.dumps(
            {"experiment": exp, "training_objects": "1-3", "kmax": kmax}))
    assert _run(["table", "--runs", *(str(tmp_path / e) for e in ("exp2", "exp2l", "exp2l-k8")),
                 "--out", str(tmp_path / "t")]) == 0
    table = json.loads((tmp_path / "t" / "table1.json").read_text())
    own = {"ours": 7, "ours_requested_found": None, "share_found_beyond_training": None,
           "share_found_beyond_training_bootstrap95": None, "share_found_beyond_training_chance": None,
           "training_steps": None, "training_images": None, "training_wall_seconds": None,
           "training_wall_from_step": None,
           "source": str(tmp_path / "exp2l" / "kmax.json"), "seed": None}
    assert table["rows"]["1-3"]["exp2l"] == {**own, "paper": 9, "seeds": {"None": own}}
    assert table["rows"]["1"]["exp2"]["ours"] is None and table["rows"]["1"]["exp2"]["paper"] == 1
    md = (tmp_path / "t" / "table1.md").read_text()
    assert "| 1-3 | · (–) | 2 (2) | 7 (9) | · (3) | · (9) | 3 (–) | · (–) |" in md
    assert "Share of the K requested objects found" not in md      # no evaluation, no second table
    assert "Training budget" not in md                              # no train.json, no third table
    # with per-K counts: the mean share over the K above the training maximum (K = 4, 5 here)
    counts = {"2": {"location_found_rate": 1.0}, "3": {"location_found_rate": 0.9},
              "4": {"location_found_rate": 0.8}, "5": {"location_found_rate": 0.6}}
    (tmp_path / "exp2l" / "kmax.json").write_text(json.dumps(
        {"experiment": "exp2l", "training_objects": "1-3", "kmax": 7,
         "evaluation": {"counts": counts, "per_k": {k: 0.5 for k in counts}}}))
    assert _run(["table", "--runs", str(tmp_path / "exp2l"), "--out", str(tmp_path / "t2")]) == 0
    cell = json.loads((tmp_path / "t2" / "table1.json").read_text())["rows"]["1-3"]["exp2l"]
    assert cell["share_found_beyond_training"] == pytest.approx(0.7)
    # a kmax.json from before the chance baseline: n/a beside the share (issue 15 item 2)
    assert cell["share_found_beyond_training_chance"] is None
    assert "| 1-3 | · | · | 0.70 (chance n/a) | · | · | · | · |" in (tmp_path / "t2" / "table1.md").read_text()
    for k, chance in (("2", 0.5), ("3", 0.4), ("4", 0.3), ("5", 0.1)):
        counts[k]["found_share_chance"] = chance
    (tmp_path / "exp2l" / "kmax.json").write_text(json.dumps(
        {"experiment": "exp2l", "training_objects": "1-3", "kmax": 7,
         "evaluation": {"counts": counts, "per_k": {k: 0.5 for k in counts}}}))
    assert _run(["table", "--runs", str(tmp_path / "exp2l"), "--out", str(tmp_path / "t3")]) == 0
    cell = json.loads((tmp_path / "t3" / "table1.json").read_text())["rows"]["1-3"]["exp2l"]
    assert cell["share_found_beyond_training_chance"] == pytest.approx(0.2)
    assert "| 1-3 | · | · | 0.70 (chance 0.20) | · | · | · | · |" in (tmp_path / "t3" / "table1.md").read_text()
    with pytest.raises(UserError, match="second result"):
        _run(["table", "--runs", str(tmp_path / "exp2"), str(tmp_path / "exp2"), "--out", str(tmp_path / "u")])


def test_table_lists_every_seed_of_a_cell_with_the_found_share_interval(tmp_path):
    """Two seeds of one cell: both Kmax in seed order; the found share beyond the training
    maximum gets its bootstrap interval from per-sample shares; a repeated seed is refused."""
    import json

    def write(name, seed, kmax, shares):
        folder = tmp_path / name
        folder.mkdir()
        counts = {str(k): {"location_found_rate": float(np.mean(v)), "found_share_chance": 0.1}
                  for k, v in shares.items()}
        per_sample = {str(k): {"found_share": v} for k, v in shares.items()}
        (folder / "kmax.json").write_text(json.dumps(
            {"experiment": "exp2l", "training_objects": "1-3", "kmax": kmax, "kmax_requested_found": kmax + 2,
             "evaluation": {"counts": counts, "per_k": {k: 0.5 for k in counts}, "per_sample": per_sample,
                            "bootstrap": {"samples_per_set": 2}}}))
        (folder / "run.json").write_text(json.dumps(
            {"config": {"train": {"seed": seed, "schedule": {"batch_size": 32}}}}))
        (folder / "train.json").write_text(json.dumps(
            {"step": 3000 * (seed + 1), "wall_seconds": 600.0 * (seed + 1), "wall_seconds_from_step": 3000 * seed}))
        return folder

    varied = {4: [1.0, 0.5, 0.75, 0.25, 1.0, 1.0], 5: [0.8, 0.6, 1.0, 0.4, 0.2, 0.6]}
    constant = {4: [0.5] * 6, 5: [0.6] * 6}
    a, b = write("s1", 1, 3, varied), write("s0", 0, 2, constant)
    assert _run(["table", "--runs", str(a), str(b), "--out", str(tmp_path / "t")]) == 0
    cell = json.loads((tmp_path / "t" / "table1.json").read_text())["rows"]["1-3"]["exp2l"]
    assert cell["seed"] == 0 and cell["ours"] == 2 and sorted(cell["seeds"]) == ["0", "1"]
    assert cell["seeds"]["0"]["share_found_beyond_training_bootstrap95"] == pytest.approx([0.55, 0.55])
    low, high = cell["seeds"]["1"]["share_found_beyond_training_bootstrap95"]
    assert cell["seeds"]["1"]["share_found_beyond_training"] == pytest.approx(0.675)
    assert low < 0.675 < high
    md = (tmp_path / "t" / "table1.md").read_text()
    assert "| 1-3 | · (–) | · (2) | 2 [4] / 3 [5] (9) |" in md
    assert "0.55 [0.55, 0.55] (chance 0.10) / 0.68 [" in md
    # the budget of each seed's model, as trained (train.json's step, times run.json's batch)
    assert cell["seeds"]["1"]["training_steps"] == 6000 and cell["seeds"]["1"]["training_images"] == 192000
    assert "| 1-3 | · | · | 3,000 (96,000; 10 min) / 6,000 (192,000; 20 min from step 3,000) |" in md
    with pytest.raises(UserError, match="second result for .1-3, exp2l, seed 1"):
        _run(["table", "--runs", str(a), str(a), "--out", str(tmp_path / "u")])


def test_kmax_samples_every_k_and_records_the_evaluation(tmp_path, monkeypatch, capsys):
    """The kmax job end to end with a stand-in dataset (blobs, 0-2 objects) and an untrained detector."""
    import json

    import empirical.clevr.dataset
    import empirical.evaluation.kmax
    from empirical.detection.detector import build_network
    from empirical.clevr.synthetic import BlobDataset

    calls = {}
    real_evaluate = empirical.evaluation.kmax.evaluate_kmax

    def evaluate_kmax(samples_by_k, requested_by_k, detector):
        calls.update(ks=sorted(samples_by_k), shapes={k: v.shape for k, v in samples_by_k.items()},
                     requested=requested_by_k)
        return real_evaluate(samples_by_k, requested_by_k, detector)

    monkeypatch.setattr(empirical.evaluation.kmax, "evaluate_kmax", evaluate_kmax)
    torch.save({"width": 4, "state_dict": build_network(4).state_dict()}, tmp_path / "det.pt")  # untrained
    monkeypatch.setattr(empirical.clevr.dataset, "ClevrDataset",
                        lambda path: BlobDataset(size=40, resolution=16, min_objects=0, max_objects=2))
    run = tmp_path / "run"
    _run(["train", "--experiment", "exp2", "--preset", "tiny", "--data", "synthetic", "--out", str(run),
          "--steps", "2", "--checkpoint-every", "2"])
    capsys.readouterr()
    assert _run(["kmax", "--run", str(run), "--data", "D", "--detector", str(tmp_path / "det.pt"), "--max-k", "2",
                 "--num-sets", "2", "--n", "1", "--sampler-steps", "2", "--training-objects", "1-3"]) == 0
    printed = capsys.readouterr().out.splitlines()   # the per-K table (issue 15 item 5)
    head = next(i for i, line in enumerate(printed) if line.split()[:3] == ["K", "n", "success"])
    assert [line.split()[:2] for line in printed[head + 1:head + 4]] == [["0", "2"], ["1", "2"], ["2", "2"]]
    assert calls["ks"] == [0, 1, 2] and calls["shapes"][2] == (2, 16, 16, 3)
    assert calls["requested"][2].shape == (2, 2, 2) and calls["requested"][0].shape == (2, 0, 2)
    report = json.loads((run / "kmax.json").read_text())
    assert report["kmax"] == report["evaluation"]["kmax"] and set(report["evaluation"]["per_k"]) == {"0", "1", "2"}
    assert report["experiment"] == "exp2" and report["training_objects"] == "1-3"
    assert (run / "kmax_grid_k02.png").exists() and (run / "kmax_samples.npz").exists()
    from PIL import Image   # each tile bordered green (pass) or red (fail), as recorded
    from empirical.evaluation.kmax import FAIL_COLOUR, PASS_COLOUR
    grid = np.asarray(Image.open(run / "kmax_grid_k02.png").convert("RGB"))
    outcomes = report["evaluation"]["per_sample"]["2"]["success"]
    assert [tuple(grid[2 + 64, 2 + i * 130]) for i in range(2)] == [
        PASS_COLOUR if ok else FAIL_COLOUR for ok in outcomes]
    # sampling again over an existing kmax.json needs --force (issue 15 item 3)
    with pytest.raises(UserError, match=r"kmax\.json exists; pass --force"):
        _run(["kmax", "--run", str(run), "--data", "D", "--detector", str(tmp_path / "det.pt"), "--max-k", "2",
              "--num-sets", "2", "--n", "1", "--sampler-steps", "2", "--training-objects", "1-3"])
    # a copy without the checkpoint (as in results/) is re-detected from its kmax.json
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoint.pt"))
    kmax_args = ["--data", "D", "--detector", str(tmp_path / "det.pt"), "--max-k", "2",
                 "--num-sets", "2", "--n", "1", "--reuse-samples"]
    assert _run(["kmax", "--run", str(copy), *kmax_args]) == 0
    again = json.loads((copy / "kmax.json").read_text())
    assert again["reused_samples"] and again["evaluation"] == report["evaluation"]
    assert (again["experiment"], again["training_objects"]) == ("exp2", "1-3")
    (copy / "kmax.json").unlink()
    with pytest.raises(UserError, match="no checkpoint.*kmax.json"):
        _run(["kmax", "--run", str(copy), *kmax_args])
    assert _run(["sample", "--run", str(run), "--from-dataset", "D", "--k", "2", "--num-sets", "2", "--n", "1",
                 "--sampler-steps", "2", "--out", str(tmp_path / "s")]) == 0
    assert np.load(tmp_path / "s" / "samples.npz")["locations"].shape == (2, 2, 2)


def test_kmax_samples_are_reused_only_for_the_same_step_and_sets(tmp_path):
    from empirical.cli.model import load_kmax_samples

    sets_by_k = {0: [torch.zeros(0, 2)], 2: [torch.tensor([[0.1, 0.2], [-0.3, 0.4]])]}
    images = {k: np.full((2, 8, 8, 3), k, np.uint8) for k in sets_by_k}
    path = tmp_path / "kmax_samples.npz"
    np.savez(path, checkpoint_step=np.array(7),
             images_k0=images[0], locations_k0=np.zeros((2, 0, 2), np.float32),
             images_k2=images[2], locations_k2=np.repeat(sets_by_k[2][0].numpy()[None], 2, axis=0))
    samples, requested = load_kmax_samples(path, 7, sets_by_k, n=2)
    assert (samples[2] == 2).all() and requested[2].shape == (2, 2, 2)
    with pytest.raises(UserError, match="step 7"):
        load_kmax_samples(path, 8, sets_by_k, n=2)
    moved = {0: sets_by_k[0], 2: [sets_by_k[2][0] + 0.1]}
    with pytest.raises(UserError, match="K = 2"):
        load_kmax_samples(path, 7, moved, n=2)
    with pytest.raises(UserError, match="does not exist"):
        load_kmax_samples(tmp_path / "none.npz", 7, sets_by_k, n=2)


def _tiny_run_and_detector(tmp_path, monkeypatch):
    """A 2-step tiny exp2 run in tmp_path/run, an untrained detector in tmp_path/det.pt, and
    ClevrDataset replaced by blob scenes with 0-2 objects (any --data path reads them)."""
    import empirical.clevr.dataset
    from empirical.clevr.synthetic import BlobDataset
    from empirical.detection.detector import build_network

    torch.save({"width": 4, "state_dict": build_network(4).state_dict()}, tmp_path / "det.pt")
    monkeypatch.setattr(empirical.clevr.dataset, "ClevrDataset",
                        lambda path: BlobDataset(size=40, resolution=16, min_objects=0, max_objects=2))
    run = tmp_path / "run"
    _run(["train", "--experiment", "exp2", "--preset", "tiny", "--data", "synthetic", "--out", str(run),
          "--steps", "2", "--checkpoint-every", "2"])
    return run


def test_an_interrupted_kmax_resumes_at_the_first_unfinished_k(tmp_path, monkeypatch):
    """Killed after K = 0 and 1, `clevr kmax` samples only K = 2 on the rerun, and its samples are
    those of an uninterrupted run (issue 11 item 7: long jobs resume)."""
    import empirical.models.sampling

    run = _tiny_run_and_detector(tmp_path, monkeypatch)
    real_sample = empirical.models.sampling.sample_for_sets
    sampled = []

    def sample_then_die_at_k2(model, sets, *args, **kwargs):
        k_objects = sets[0].shape[0]
        if k_objects == 2 and die[0]:
            raise KeyboardInterrupt
        sampled.append(k_objects)
        return real_sample(model, sets, *args, **kwargs)

    monkeypatch.setattr(empirical.models.sampling, "sample_for_sets", sample_then_die_at_k2)
    argv = ["kmax", "--run", str(run), "--data", "D", "--detector", str(tmp_path / "det.pt"), "--max-k", "2",
            "--num-sets", "2", "--n", "1", "--sampler-steps", "2", "--training-objects", "1-3",
            "--precision", "fp32"]
    die = [True]
    with pytest.raises(KeyboardInterrupt):
        _run(argv)
    partial = run / "kmax_samples.partial.npz"
    assert sampled == [0, 1] and partial.exists() and not (run / "kmax.json").exists()
    die[0] = False
    assert _run(argv) == 0
    assert sampled == [0, 1, 2] and not partial.exists()
    resumed = dict(np.load(run / "kmax_samples.npz"))
    # the same evaluation without interruption gives the same samples
    assert _run(argv + ["--force", "--out", str(tmp_path / "whole")]) == 0
    whole = dict(np.load(tmp_path / "whole" / "kmax_samples.npz"))
    assert sorted(resumed) == sorted(whole)
    assert all(np.array_equal(resumed[key], whole[key]) for key in whole)
    # a partial file of another evaluation (another seed) is set aside, not used
    np.savez(tmp_path / "whole" / "kmax_samples.partial.npz", **{**whole, "seed": np.array(5)})
    sampled.clear()
    assert _run(argv + ["--force", "--out", str(tmp_path / "whole")]) == 0
    assert sampled == [0, 1, 2] and (tmp_path / "whole" / "kmax_samples.partial.stale.npz").exists()


def test_kmax_over_chosen_ks_draws_the_samples_of_a_full_run(tmp_path, monkeypatch):
    """`clevr kmax --ks 0,2` samples only K = 0 and 2, and those are the samples the full 0..2
    evaluation draws (the cheap evaluation of the learned k sweep, issue 11 item 5)."""
    import json

    import empirical.models.sampling
    from empirical.cli.model import parse_ks

    run = _tiny_run_and_detector(tmp_path, monkeypatch)
    real_sample = empirical.models.sampling.sample_for_sets
    sampled = []

    def recording_sampler(model, sets, *args, **kwargs):
        sampled.append(sets[0].shape[0])
        return real_sample(model, sets, *args, **kwargs)

    monkeypatch.setattr(empirical.models.sampling, "sample_for_sets", recording_sampler)
    argv = ["kmax", "--run", str(run), "--data", "D", "--detector", str(tmp_path / "det.pt"), "--max-k", "2",
            "--num-sets", "2", "--n", "1", "--sampler-steps", "2", "--training-objects", "1-3",
            "--precision", "fp32"]
    assert _run(argv + ["--ks", "2,0", "--out", str(tmp_path / "some")]) == 0
    assert sampled == [0, 2]
    record = json.loads((tmp_path / "some" / "kmax.json").read_text())
    assert record["ks"] == [0, 2] and sorted(record["evaluation"]["per_k"]) == ["0", "2"]
    assert _run(argv + ["--out", str(tmp_path / "all")]) == 0
    some, whole = np.load(tmp_path / "some" / "kmax_samples.npz"), np.load(tmp_path / "all" / "kmax_samples.npz")
    assert "images_k1" not in some and "images_k1" in whole
    assert all(np.array_equal(some[f"images_k{k}"], whole[f"images_k{k}"]) for k in (0, 2))
    assert parse_ks(None, 3) == [0, 1, 2, 3]
    for bad, message in (("1,x", "'x' is not an integer"), ("-1", "must be >= 0")):
        with pytest.raises(UserError, match=message):
            parse_ks(bad, 3)


def test_keep_steps_leaves_run_directories_of_part_of_the_budget(tmp_path):
    """`clevr train --keep-steps 1` keeps the model at step 1 as a run directory; resuming past a
    kept step does not need it, and a step outside the budget is refused (issue 11 item 4)."""
    from empirical.training.train import load_trained

    run = tmp_path / "run"
    argv = ["train", "--experiment", "exp2l", "--preset", "tiny", "--data", "synthetic:1-2", "--out", str(run),
            "--steps", "3", "--checkpoint-every", "2", "--keep-steps", "1", "--precision", "fp32"]
    assert _run(argv) == 0
    early, _, step = load_trained(run / "steps" / "1")
    final, _, last = load_trained(run)
    assert (step, last) == (1, 3)
    assert not all(torch.equal(a, b) for a, b in zip(early.state_dict().values(), final.state_dict().values()))
    with pytest.raises(UserError, match="--keep-steps: 9 outside 1..3"):
        _run(argv[:-4] + ["--keep-steps", "9"])
