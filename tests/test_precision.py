"""`--precision fp32|bf16` (issue 11 item 1): resolution of the default, autocast where it belongs,
fp32 state under bf16, matching loss curves, resume rules, the value recorded in every JSON."""

import argparse
import json

import pytest
import torch

from localcomp.errors import UserError
from empirical.clevr.synthetic import BlobDataset
from empirical.cli.diagnostics import add_diagnostics_commands
from empirical.cli.model import add_model_commands
from empirical.models import precision as precision_module
from empirical.models.precision import PrecisionDenoiser, resolve_precision, with_precision
from empirical.training import train as train_module
from empirical.training.experiments import build_model, make_train_config
from empirical.training.train import load_checkpoint, save_checkpoint, train

# one torch thread: the `torch_one_thread` fixture in conftest.py
pytestmark = pytest.mark.usefixtures("torch_one_thread")

# docs/clevr-experiments.md "Precision": the largest relative difference between the fp32 and the
# bf16 mean loss of a checkpoint interval of a short run (same seed, same data)
LOSS_CURVE_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def blobs():
    return BlobDataset(size=24, resolution=16, seed=3)


def _run(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="job", required=True)
    add_model_commands(sub)
    add_diagnostics_commands(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def _conv_output_dtypes(model):
    """Dtypes of every Conv2d output during the next forward passes (a forward hook each)."""
    seen = []
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    return seen


def test_the_default_resolves_to_bf16_only_where_the_hardware_has_it(monkeypatch):
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(UserError, match="--precision: unknown value 'fp16'"):
        resolve_precision("fp16", "cpu")
    for supported, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(precision_module, "bf16_supported", lambda device, s=supported: s)
        assert resolve_precision(None, "cpu") == expected
    with pytest.raises(SystemExit):  # argparse's choices
        _run(["train", "--experiment", "exp1", "--data", "synthetic", "--out", "x", "--precision", "fp16"])
    parser = argparse.ArgumentParser()
    add_diagnostics_commands(parser.add_subparsers(dest="job"))
    assert parser.parse_args(["locality", "--run", "r", "--data", "d"]).precision == "fp32"  # on any hardware


def test_autocast_reaches_the_network_and_the_output_keeps_x_dtype(blobs):
    model = build_model(make_train_config("exp1", "tiny")).eval()   # bf16 is emulated on AVX2: the
    seen = _conv_output_dtypes(model)                                 # tiny UNet is the cheap network
    x = torch.randn(2, 3, 16, 16)
    sigma, cond, mask = torch.full((2,), 0.5), torch.zeros(2, 1, 2), torch.ones(2, 1, dtype=torch.bool)
    fp32, p32 = with_precision(model, "fp32")
    assert fp32 is model and p32 == "fp32"
    assert fp32(x, sigma, cond, mask).dtype == torch.float32 and set(seen) == {torch.float32}
    seen.clear()
    bf16, p16 = with_precision(model, "bf16")
    assert isinstance(bf16, PrecisionDenoiser) and p16 == "bf16"
    assert list(bf16.parameters())[0] is list(model.parameters())[0]   # the sampler finds the device
    out = bf16(x, sigma, cond, mask)
    assert out.dtype == torch.float32 and set(seen) == {torch.bfloat16}
    assert (out - fp32(x, sigma, cond, mask)).abs().max() < 0.1      # the same function, rounded


def test_bf16_is_refused_for_a_machine_run_which_has_no_network():
    def machine(x, sigma, cond, mask):
        return x
    assert with_precision(machine, None) == (machine, "fp32")
    with pytest.raises(UserError, match="--precision bf16: this run has no network"):
        with_precision(machine, "bf16")


def test_bf16_training_autocasts_the_forward_and_keeps_every_state_fp32(tmp_path, blobs, monkeypatch):
    seen = []

    def hooked(config):
        model = build_model(config)
        seen.append(_conv_output_dtypes(model))
        return model

    monkeypatch.setattr(train_module, "build_model", hooked)
    cfg = make_train_config("exp2l", "tiny", steps=2, checkpoint_every=2, precision="bf16")
    summary = train(cfg, blobs, tmp_path, progress=False)
    assert summary["precision"] == "bf16" and set(seen[0]) == {torch.bfloat16}
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    tensors = [*state["model"].values(), *state["ema"].values(),
               *(v for s in state["optimizer"]["state"].values() for v in s.values() if v.dim())]
    assert tensors and all(t.dtype == torch.float32 for t in tensors)
    assert all(isinstance(h["mean_loss"], float) for h in summary["history"])
    assert json.loads((tmp_path / "train.json").read_text())["precision"] == "bf16"
    assert json.loads((tmp_path / "run.json").read_text())["config"]["train"]["precision"] == "bf16"


def test_short_runs_in_fp32_and_bf16_have_matching_loss_curves(tmp_path, blobs):
    curves = {}
    for precision in ("fp32", "bf16"):
        cfg = make_train_config("exp2l", "tiny", seed=1, steps=8, checkpoint_every=2, precision=precision)
        curves[precision] = [h["mean_loss"] for h in train(cfg, blobs, tmp_path / precision,
                                                           progress=False)["history"]]
    assert len(curves["fp32"]) == len(curves["bf16"]) == 4
    assert curves["fp32"] != curves["bf16"]                              # bf16 did change the arithmetic
    for a, b in zip(curves["fp32"], curves["bf16"]):
        assert abs(b / a - 1) < LOSS_CURVE_TOLERANCE, curves


def test_resume_keeps_the_checkpoints_precision_and_refuses_another(tmp_path, monkeypatch):
    monkeypatch.setattr(precision_module, "bf16_supported", lambda device: True)  # default: bf16
    run = tmp_path / "run"
    argv = ["train", "--experiment", "exp2l", "--preset", "tiny", "--data", "synthetic:0-2",
            "--out", str(run), "--checkpoint-every", "2"]
    _run(argv + ["--steps", "2", "--precision", "fp32"])
    _run(argv + ["--steps", "4"])                                         # no flag: the checkpoint's
    record = json.loads((run / "train.json").read_text())
    assert record["step"] == 4 and record["precision"] == "fp32"
    with pytest.raises(UserError, match=r"different config: precision \('fp32' in the checkpoint, 'bf16' now\)"):
        _run(argv + ["--steps", "6", "--precision", "bf16"])
    _run(["train", "--experiment", "exp2l", "--preset", "tiny", "--data", "synthetic:0-2",
          "--out", str(tmp_path / "new"), "--steps", "1"])                # a new run: the hardware default
    assert json.loads((tmp_path / "new" / "train.json").read_text())["precision"] == "bf16"


def test_a_checkpoint_from_before_precision_existed_loads_and_resumes_as_fp32(tmp_path, blobs):
    cfg = make_train_config("exp2l", "tiny", steps=2, checkpoint_every=2)
    train(cfg, blobs, tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    old = state["config"]
    object.__delattr__(old, "precision")           # pickled without the field, as older checkpoints are
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    assert "precision" not in vars(load_checkpoint(tmp_path / "checkpoint.pt")["config"])
    assert train_module.checkpoint_precision(tmp_path) == "fp32"
    longer = make_train_config("exp2l", "tiny", steps=3, checkpoint_every=2)
    assert train(longer, blobs, tmp_path, progress=False)["step"] == 3
    with pytest.raises(UserError, match=r"precision \('fp32' in the checkpoint, 'bf16' now\)"):
        train(make_train_config("exp2l", "tiny", steps=4, precision="bf16"), blobs, tmp_path, progress=False)


def test_sample_and_locality_record_their_precision(tmp_path):
    run = tmp_path / "run"
    _run(["train", "--experiment", "exp1", "--preset", "tiny", "--data", "synthetic:1-3",
          "--out", str(run), "--steps", "1", "--precision", "fp32"])
    for precision in ("fp32", "bf16"):
        _run(["sample", "--run", str(run), "--locations", "0,0", "--n", "1", "--sampler-steps", "1",
              "--out", str(tmp_path / f"s-{precision}"), "--precision", precision])
        assert json.loads((tmp_path / f"s-{precision}" / "run.json").read_text())["config"]["precision"] == precision
    _run(["locality", "--run", str(run), "--data", "synthetic:2-3", "--num-images", "1", "--sigmas", "0.5",
          "--pixels-per-image", "1", "--out", str(tmp_path / "loc"), "--precision", "bf16"])
    assert json.loads((tmp_path / "loc" / "locality.json").read_text())["precision"] == "bf16"


def test_kmax_records_the_samples_precision_and_reuse_keeps_it(tmp_path):
    import numpy as np

    from empirical.cli.model import kmax_samples_precision
    from empirical.detection.detector import build_network

    torch.save({"width": 4, "state_dict": build_network(4).state_dict()}, tmp_path / "det.pt")  # untrained
    run = tmp_path / "run"
    _run(["train", "--experiment", "exp1", "--preset", "tiny", "--data", "synthetic:0-2",
          "--out", str(run), "--steps", "1", "--precision", "fp32"])
    kmax = ["kmax", "--run", str(run), "--data", "synthetic:0-2", "--detector", str(tmp_path / "det.pt"),
            "--max-k", "1", "--num-sets", "1", "--n", "1", "--sampler-steps", "1", "--training-objects", "1-2"]
    _run(kmax + ["--precision", "bf16"])
    assert json.loads((run / "kmax.json").read_text())["precision"] == "bf16"
    _run(kmax + ["--reuse-samples"])                                      # re-detection: the samples' precision
    assert json.loads((run / "kmax.json").read_text())["precision"] == "bf16"
    with pytest.raises(UserError, match="drawn in bf16, not fp32"):
        _run(kmax + ["--reuse-samples", "--precision", "fp32"])
    old = tmp_path / "old.npz"                                            # written before precision was recorded
    np.savez(old, checkpoint_step=np.array(1))
    assert kmax_samples_precision(old, None) == "fp32"
