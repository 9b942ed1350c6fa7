"""Training mechanics on tiny configs: exact resume, NaN guard, DDP on 2 gloo processes, CLI errors."""

import os
import socket

import pytest
import torch

from localcomp.errors import UserError
from empirical.training.experiments import make_train_config
from empirical.clevr.synthetic import BlobDataset
from empirical.training.train import (NonFiniteLossError, batch_indices, load_checkpoint, select_conditioners,
                             train)


# one torch thread: the `torch_one_thread` fixture in conftest.py
pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def blobs():
    return BlobDataset(size=24, resolution=16, seed=3)


def _params(path):
    state = load_checkpoint(path)
    return state["step"], {**{f"model.{k}": v for k, v in state["model"].items()},
                           **{f"ema.{k}": v for k, v in state["ema"].items()}}


@pytest.mark.parametrize("experiment", ["exp2", "exp2l"])
def test_resume_after_kill_is_bit_identical(tmp_path, blobs, experiment):
    cfg = make_train_config(experiment, "tiny", seed=5, steps=12, batch_size=8, checkpoint_every=4)
    train(cfg, blobs, tmp_path / "full", progress=False)
    train(cfg, blobs, tmp_path / "killed", progress=False, stop_after=6)   # "killed" after step 6
    step, _ = _params(tmp_path / "killed" / "checkpoint.pt")
    assert step == 4                                                        # last checkpoint survives
    train(cfg, blobs, tmp_path / "killed", progress=False)                  # resume from step 4
    (s1, full), (s2, resumed) = _params(tmp_path / "full" / "checkpoint.pt"), _params(tmp_path / "killed" / "checkpoint.pt")
    assert s1 == s2 == 12 and full.keys() == resumed.keys()
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    first = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    assert any(not torch.equal(v, first["model"][k]) for k, v in first["ema"].items())  # EMA is its own


def test_resume_rejects_a_different_config(tmp_path, blobs):
    train(make_train_config("exp1", "tiny", steps=2, checkpoint_every=2), blobs, tmp_path, progress=False)
    with pytest.raises(UserError, match=r"different config: .*seed \(0 in the checkpoint, 9 now\)"):
        train(make_train_config("exp1", "tiny", steps=4, seed=9), blobs, tmp_path, progress=False)
    with pytest.raises(UserError, match=r"different config: schedule\.lr \([^)]* now\); use a new --out"):
        train(make_train_config("exp1", "tiny", steps=4, checkpoint_every=2, lr=0.5), blobs, tmp_path,
              progress=False)


def test_k_override_sets_a_patch_models_half_width_and_is_refused_for_a_unet(tmp_path, blobs):
    assert make_train_config("exp2l", "tiny").patch.k == 2
    wide = make_train_config("exp2l", "tiny", k=4)
    assert wide.patch.k == 4 and wide.experiment == "exp2l"
    with pytest.raises(UserError, match="--k: exp1 is a UNet experiment"):
        make_train_config("exp1", "tiny", k=3)
    with pytest.raises(UserError, match="--k: must be >= 0"):
        make_train_config("exp2l", "tiny", k=-1)
    train(make_train_config("exp2l", "tiny", steps=2, checkpoint_every=2, k=1), blobs, tmp_path, progress=False)
    with pytest.raises(UserError, match=r"patch\.k \(1 in the checkpoint, 2 now\)"):
        train(make_train_config("exp2l", "tiny", steps=4), blobs, tmp_path, progress=False)


class _KilledDuringStep(torch.utils.data.Dataset):
    """The wrapped dataset; raises KeyboardInterrupt (a kill) once ``limit`` items were read."""

    def __init__(self, base, limit):
        self.base, self.limit, self.reads = base, limit, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.reads += 1
        if self.reads > self.limit:
            raise KeyboardInterrupt
        return self.base[i]


def test_a_killed_run_keeps_its_loss_curve_in_train_json(tmp_path, blobs):
    import json
    cfg = make_train_config("exp1", "tiny", steps=10, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):  # killed while reading step 6's batch
        train(cfg, _KilledDuringStep(blobs, 5 * cfg.schedule.batch_size), tmp_path, progress=False)
    record = json.loads((tmp_path / "train.json").read_text())
    assert [h["step"] for h in record["history"]] == [2, 4]
    assert record["step"] == 4 and record["finished"] is False and record["steps"] == 10
    first_sitting = record["wall_seconds"]
    assert first_sitting > 0 and record["wall_seconds_from_step"] == 0
    train(cfg, blobs, tmp_path, progress=False)
    record = json.loads((tmp_path / "train.json").read_text())
    assert [h["step"] for h in record["history"]] == [2, 4, 6, 8, 10] and record["finished"] is True
    # the wall time adds up over the two sittings, counted from step 0
    assert record["wall_seconds"] > first_sitting and record["wall_seconds_from_step"] == 0


def test_a_checkpoint_from_before_the_wall_time_counts_it_from_its_step(tmp_path, blobs):
    import json
    from empirical.training.train import load_checkpoint, save_checkpoint
    cfg = make_train_config("exp1", "tiny", steps=6, checkpoint_every=2)
    train(cfg, blobs, tmp_path, progress=False, stop_after=4)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    del state["wall_seconds"], state["wall_seconds_from_step"]
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    train(cfg, blobs, tmp_path, progress=False)
    record = json.loads((tmp_path / "train.json").read_text())
    assert record["step"] == 6 and record["wall_seconds_from_step"] == 4 and record["wall_seconds"] > 0


class _PoisonedAfter(torch.utils.data.Dataset):
    """The wrapped dataset, with NaN images once ``flag['on']`` is set."""

    def __init__(self, base):
        self.base, self.flag = base, {"on": False}

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        image, cond = self.base[i]
        return (image * float("nan"), cond) if self.flag["on"] else (image, cond)


def test_nan_guard_names_the_step_and_keeps_the_last_checkpoint(tmp_path, blobs):
    data = _PoisonedAfter(blobs)
    cfg = make_train_config("exp1", "tiny", steps=10, checkpoint_every=2)
    train(cfg, data, tmp_path, progress=False, stop_after=4)
    data.flag["on"] = True
    with pytest.raises(NonFiniteLossError, match=r"at step 5 of exp1.*Last checkpoint: step 4"):
        train(cfg, data, tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4


def test_bad_inputs_raise_user_errors_before_writing(tmp_path, blobs):
    with pytest.raises(UserError, match="--experiment"):
        make_train_config("exp9", "tiny")
    with pytest.raises(UserError, match="--steps"):
        make_train_config("exp1", "tiny", steps=0)
    with pytest.raises(UserError, match="expects 32x32"):
        train(make_train_config("exp1", "mini", steps=1, batch_size=4), blobs, tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_one_mode_keeps_exactly_one_real_conditioner():
    cond = torch.arange(12.0).view(2, 3, 2)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    c, m = select_conditioners(cond, mask, "one", torch.Generator().manual_seed(0))
    assert c.shape == (2, 1, 2) and m.tolist() == [[True], [False]]
    assert any(torch.equal(c[0, 0], cond[0, j]) for j in range(2))


def test_data_order_visits_each_image_once_per_epoch():
    seen, epoch, cursor = [], 0, 0
    for _ in range(5):
        idx, epoch, cursor = batch_indices(10, 3, 0, epoch, cursor)
        seen.append(idx)
    first_epoch = sum(seen[:3], [])
    assert sorted(first_epoch) == sorted(set(first_epoch)) and len(first_epoch) == 9
    assert epoch == 1


def test_ddp_two_gloo_processes_keep_identical_parameters(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_rank_main, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    p0, p1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert p0.keys() == p1.keys() and all(torch.equal(p0[k], p1[k]) for k in p0)
    init = torch.load(tmp_path / "init.pt")
    assert any(not torch.equal(p0[k], init[k]) for k in p0)            # it trained
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 3


def _ddp_rank_main(rank, world, port, out_dir):
    """One rank: train 3 steps of exp1/tiny with world size 2, save this rank's final parameters."""
    import empirical.training.train as training
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    captured = {}
    original = training.build_model

    def capturing_build(cfg):
        captured["model"] = model = original(cfg)
        if rank == 0:
            torch.save({k: v.clone() for k, v in model.state_dict().items()}, f"{out_dir}/init.pt")
        return model

    training.build_model = capturing_build
    cfg = make_train_config("exp1", "tiny", seed=1, steps=3, batch_size=8, checkpoint_every=3)
    training.train(cfg, BlobDataset(size=24, resolution=16, seed=3), f"{out_dir}/run", progress=False)
    torch.save(captured["model"].state_dict(), f"{out_dir}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_checkpoints_written_before_the_subpackage_split_still_load(tmp_path, monkeypatch):
    """A checkpoint pickles its TrainConfig by module path; old runs name ``empirical.experiments``."""
    import sys

    import empirical.training.experiments as experiments
    from empirical.training.train import load_checkpoint, save_checkpoint

    config = make_train_config("exp1", "tiny")
    monkeypatch.setitem(sys.modules, "empirical.experiments", experiments)
    monkeypatch.setattr(experiments.TrainConfig, "__module__", "empirical.experiments")
    save_checkpoint(tmp_path / "old.pt", {"config": config, "step": 3})
    assert b"empirical.experiments" in (tmp_path / "old.pt").read_bytes()
    monkeypatch.undo()
    assert "empirical.experiments" not in sys.modules
    state = load_checkpoint(tmp_path / "old.pt")
    assert type(state["config"]) is experiments.TrainConfig and state["config"] == config


@pytest.mark.parametrize("experiment", ["exp1", "exp2l"])
def test_mini48_preset_denoises_48_px_images(experiment):
    from empirical.training.experiments import build_model
    config = make_train_config(experiment, "mini48")
    assert config.resolution == 48
    model = build_model(config).eval()
    x = torch.randn(2, 3, 48, 48)
    cond, mask = torch.rand(2, 3, 2) * 2 - 1, torch.tensor([[True, True, False], [True, False, False]])
    with torch.no_grad():
        out = model(x, torch.full((2,), 0.5), cond, mask)
    assert out.shape == x.shape and torch.isfinite(out).all()
