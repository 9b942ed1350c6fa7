"""The local conditional machine: its fast path equals the estimator's definition, it is local in
pixels and in conditioners by construction, it memorizes when non-local, and it converges to
the exact denoiser on a CPC family; run folders work with the clevr commands."""

import json
from pathlib import Path

import pytest
import torch

from empirical.clevr.synthetic import BlobDataset
from empirical.models.machine import (LocalConditionalMachine, MachineConfig, load_machine_run,
                                      machine_from_dataset, reference_denoise)
from localcomp.cli import main

ROOT = Path(__file__).resolve().parent.parent


def batch(dataset, indices):
    items = [dataset[i] for i in indices]
    most = max(max(len(c) for _, c in items), 1)
    cond, mask = torch.zeros(len(items), most, 2), torch.zeros(len(items), most, dtype=torch.bool)
    for i, (_, c) in enumerate(items):
        cond[i, :len(c)], mask[i, :len(c)] = c, True
    return torch.stack([im for im, _ in items]), cond, mask


@pytest.mark.parametrize("grid,k,tau", [(8, 1, 0.3), (4, 0, 0.5), (1, 0, 0.3)])
def test_fast_path_equals_the_estimator_by_a_plain_loop(grid, k, tau):
    train = BlobDataset(size=24, resolution=8, min_objects=0, max_objects=2, seed=1)
    images, cond, mask = batch(train, range(24))
    config = MachineConfig(8, grid, k, tau)
    machine = LocalConditionalMachine(config, images, cond, mask)
    query = BlobDataset(size=3, resolution=8, min_objects=1, max_objects=3, seed=2)
    clean, qcond, qmask = batch(query, range(3))
    x = clean + 0.4 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.4, 0.4, 0.4])
    fast = machine(x, sigma, qcond, qmask)
    slow = reference_denoise(config, images, cond, mask, x, sigma, qcond, qmask)
    assert torch.allclose(fast, slow, atol=1e-5), float((fast - slow).abs().max())


def test_nonlocal_machine_reproduces_a_training_image_and_local_one_is_local():
    train = BlobDataset(size=60, resolution=16, min_objects=1, max_objects=3, seed=0)
    images, cond, mask = batch(train, range(60))
    nonlocal_machine = LocalConditionalMachine(MachineConfig(16, 1, 0), images, cond, mask)
    x = images[7:8] + 0.02 * torch.randn(1, 3, 16, 16)
    out = nonlocal_machine(x, torch.tensor([0.02]), cond[7:8], mask[7:8])
    assert torch.allclose(out[0], images[7], atol=1e-4)                  # memorization

    local = LocalConditionalMachine(MachineConfig(16, 16, 1), images, cond, mask)
    x = torch.randn(1, 3, 16, 16, requires_grad=True)
    query_cond = torch.tensor([[[-0.6, -0.6], [0.6, 0.6]]])
    query_mask = torch.ones(1, 2, dtype=torch.bool)
    out = local(x, torch.tensor([1.0]), query_cond, query_mask)
    out[0, :, 8, 8].sum().backward()
    support = (x.grad[0].abs().sum(0) > 0).nonzero()
    assert support[:, 0].min() >= 7 and support[:, 0].max() <= 9      # the 3 x 3 patch around (8, 8)
    assert support[:, 1].min() >= 7 and support[:, 1].max() <= 9
    # removing the conditioner at (0.6, 0.6) changes only the cells whose patch holds it
    with torch.no_grad():
        both = local(x, torch.tensor([1.0]), query_cond, query_mask)
        one = local(x, torch.tensor([1.0]), query_cond[:, :1], query_mask[:, :1])
    changed = ((both - one).abs().sum(1)[0] > 0).nonzero()
    cell = ((0.6 + 1) / 2 * 16)  # pixel column/row 12.8 -> cell 12
    assert len(changed) and changed.min() >= int(cell) - 1 and changed.max() <= int(cell) + 1


def test_machine_converges_to_the_exact_cpc_denoiser_and_leaks_nothing():
    from empirical.toy.machine_check import MachineCheckConfig, run_check

    result = run_check(MachineCheckConfig(sizes=(30, 3000), ks=(0,), sigmas=(0.5,), points=32), progress=False)
    cpc = {r["n"]: r for r in result["rows"] if r["family"] == "cpc"}
    shadow = {r["n"]: r for r in result["rows"] if r["family"] == "shadow"}
    assert cpc[3000]["denoiser_mse"] < cpc[30]["denoiser_mse"] / 10
    assert cpc[3000]["leakage"] == 0.0 and cpc[30]["leakage"] == 0.0
    # the shadow family's k = 0 machine keeps a bias (its patch does not see the left neighbour)
    assert shadow[3000]["denoiser_mse"] > 10 * cpc[3000]["denoiser_mse"]


def test_float32_inner_products_change_the_output_by_less_than_a_grey_level():
    train = BlobDataset(size=200, resolution=16, min_objects=1, max_objects=3, seed=3)
    images, cond, mask = batch(train, range(200))
    outs = {}
    for dtype in ("float64", "float32"):
        machine = LocalConditionalMachine(MachineConfig(16, 16, 2, dtype=dtype), images, cond, mask)
        x = images[:4] + 0.01 * torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        outs[dtype] = machine(x, torch.full((4,), 0.01), cond[:4] + 0.05, mask[:4])
    assert float((outs["float32"] - outs["float64"]).abs().max()) < 1 / 127.5


def test_machine_run_folder_is_read_by_kmax_and_refuses_overwrite(tmp_path, capsys):
    run = tmp_path / "machine"
    assert main(["clevr", "machine", "--data", "synthetic:1-3", "--k", "1", "--limit", "40", "--out", str(run),
                 "--sampler-steps", "3"]) == 0
    assert main(["clevr", "machine", "--data", "synthetic:1-3", "--k", "1", "--out", str(run)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["clevr", "machine", "--data", "synthetic:1-3", "--k", "1", "--tau", "0", "--out",
                 str(tmp_path / "m2")]) == 2
    assert main(["clevr", "kmax", "--run", str(run), "--data", "synthetic:0-12", "--detector",
                 str(ROOT / "results/detector/detector.pt"), "--max-k", "2", "--num-sets", "2", "--n", "1",
                 "--training-objects", "1-3"]) == 0
    report = json.loads((run / "kmax.json").read_text())
    assert report["experiment"] == "machine-k1" and report["sampler_steps"] == 3
    assert set(report["evaluation"]["per_k"]) == {"0", "1", "2"}


def test_machine_from_dataset_limit():
    data = BlobDataset(size=10, resolution=16, min_objects=0, max_objects=2)
    assert len(machine_from_dataset(MachineConfig(16, 16, 1), data, limit=4)) == 4


def small_problem(seed=2, noise=0.3):
    train = BlobDataset(size=24, resolution=16, min_objects=0, max_objects=2, seed=1)
    images, cond, mask = batch(train, range(24))
    clean, qcond, qmask = batch(BlobDataset(size=3, resolution=16, min_objects=1, max_objects=3, seed=seed), range(3))
    x = clean + noise * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    return (images, cond, mask), x, qcond, qmask


@pytest.mark.parametrize("grid,k", [(8, 1), (8, 3), (1, 0)])
def test_boxsum_path_equals_the_plain_loop_and_the_matmul_path(grid, k):
    train, x, qcond, qmask = small_problem()
    sigma = torch.tensor([0.3, 0.2, 0.4])
    box = LocalConditionalMachine(MachineConfig(16, grid, k, 0.3, method="boxsum"), *train)
    assert box.method == "boxsum" and box.stored is None and box.patch_norms is None   # no per-cell patches
    matmul = LocalConditionalMachine(MachineConfig(16, grid, k, 0.3, method="matmul"), *train)
    out = box(x, sigma, qcond, qmask)
    slow = reference_denoise(box.config, *train, x, sigma, qcond, qmask)
    assert torch.allclose(out, slow, atol=1e-5), float((out - slow).abs().max())
    assert torch.allclose(out, matmul(x, sigma, qcond, qmask), atol=1e-6)
    # the conditioners matter here, so the box-sum path is checked with its conditioner term
    assert float((out - box(x, sigma, qcond, torch.zeros_like(qmask))).abs().max()) > 1e-3


def test_boxsum_float32_is_accurate_at_small_sigma_without_the_expansion():
    train, x, qcond, qmask = small_problem(noise=0.005)
    sigma = torch.full((3,), 0.005)
    config = MachineConfig(16, 8, 3, 0.3, dtype="float32", method="boxsum")
    out = LocalConditionalMachine(config, *train)(x, sigma, qcond, qmask)
    slow = reference_denoise(config, *train, x, sigma, qcond, qmask)
    assert torch.allclose(out, slow, atol=1e-5), float((out - slow).abs().max())


@pytest.mark.parametrize("grid,k", [(8, 2), (1, 0)])
def test_gradients_in_x_agree_between_the_paths(grid, k):
    train, x, qcond, qmask = small_problem()
    cotangent = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    grads = {}
    for method in ("matmul", "boxsum"):
        machine = LocalConditionalMachine(MachineConfig(16, grid, k, 0.3, method=method), *train)
        _, vjp = torch.func.vjp(lambda xx: machine(xx, torch.full((3,), 0.3), qcond, qmask), x)  # as locality does
        grads[method] = vjp(cotangent)[0]
    assert float(grads["boxsum"].abs().max()) > 1e-3                # not zero against zero
    assert torch.allclose(grads["boxsum"], grads["matmul"], atol=1e-8)


def test_auto_takes_boxsum_for_large_patches_and_matmul_for_small_ones():
    auto = {k: MachineConfig(32, 16, k).resolved_method for k in range(9)}
    assert auto[0] == auto[1] == "matmul" and auto[4] == auto[6] == auto[8] == "boxsum", auto
    assert MachineConfig(32, 1, 0).resolved_method == "matmul"        # non-local: one big matrix product
    assert MachineConfig(32, 16, 8, method="matmul").resolved_method == "matmul"
    assert MachineConfig(32, 16, 1, method="boxsum").resolved_method == "boxsum"
    with pytest.raises(ValueError, match="method"):
        MachineConfig(32, 16, 1, method="fft")


def test_a_machine_json_without_method_loads_as_auto(tmp_path):
    committed = json.loads((ROOT / "results/clevr/machine/k4/machine.json").read_text())
    assert "method" not in committed["config"]
    assert MachineConfig(**committed["config"]).method == "auto"
    record = {"config": {"img_resolution": 16, "grid": 16, "k": 1, "tau": 0.05, "dtype": "float64",
                         "sampler_steps": 3}, "data": "synthetic:1-3", "limit": 8}
    (tmp_path / "machine.json").write_text(json.dumps(record))
    machine, config = load_machine_run(tmp_path)
    assert config.method == "auto" and len(machine) == 8
    out = machine(torch.zeros(1, 3, 16, 16), torch.ones(1), torch.zeros(1, 1, 2), torch.ones(1, 1, dtype=torch.bool))
    assert out.shape == (1, 3, 16, 16) and torch.isfinite(out).all()


@pytest.mark.parametrize("grid,k,window", [(8, 1, 1), (4, 0, 2), (8, 2, 1)])
def test_position_window_equals_the_plain_loop_over_shifted_patches(grid, k, window):
    train, x, qcond, qmask = small_problem()
    sigma = torch.tensor([0.3, 0.2, 0.4])
    config = MachineConfig(16, grid, k, 0.3, window=window)
    machine = LocalConditionalMachine(config, *train)
    out = machine(x, sigma, qcond, qmask)
    slow = reference_denoise(config, *train, x, sigma, qcond, qmask)
    assert torch.allclose(out, slow, atol=1e-5), float((out - slow).abs().max())
    # the window is used: the same-cell machine differs, and the conditioner term still matters
    exact = LocalConditionalMachine(MachineConfig(16, grid, k, 0.3), *train)(x, sigma, qcond, qmask)
    assert float((out - exact).abs().max()) > 1e-3
    assert float((out - machine(x, sigma, qcond, torch.zeros_like(qmask))).abs().max()) > 1e-3


def test_position_window_machine_stays_local_in_pixels():
    train, _, _, _ = small_problem()
    machine = LocalConditionalMachine(MachineConfig(16, 16, 1, 0.3, window=2), *train)
    x = torch.randn(1, 3, 16, 16, requires_grad=True)
    out = machine(x, torch.tensor([0.5]), torch.tensor([[[0.1, 0.1]]]), torch.ones(1, 1, dtype=torch.bool))
    out[0, :, 8, 8].sum().backward()
    support = (x.grad[0].abs().sum(0) > 0).nonzero()
    assert support.min() >= 7 and support.max() <= 9 and len(support) > 1   # the 3 x 3 patch, not more


def test_position_window_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="window"):
        MachineConfig(16, 1, 0, window=1)
    with pytest.raises(ValueError, match="box-sum"):
        MachineConfig(16, 8, 1, window=1, method="matmul")
    assert MachineConfig(16, 8, 1, window=1).resolved_method == "boxsum"
    assert MachineConfig(16, 8, 1, window=1).experiment == "machine-k1-w1"


def test_machine_command_writes_the_window_and_refuses_it_where_it_has_no_meaning(tmp_path, capsys):
    run = tmp_path / "window"
    assert main(["clevr", "machine", "--data", "synthetic:1-3", "--k", "1", "--window", "2", "--limit", "8",
                 "--conditioning", "one", "--out", str(run)]) == 0
    machine, config = load_machine_run(run)
    assert config.window == 2 and machine.shifts.shape == (25, 2)
    assert config.conditioning == "one" and config.experiment == "machine-k1-w2-one" and len(machine) > 8
    for bad, word in ((["--non-local", "--window", "1"], "one cell"), (["--k", "1", "--window", "-1"], ">= 0"),
                      (["--k", "1", "--window", "1", "--method", "matmul"], "box-sum")):
        assert main(["clevr", "machine", "--data", "synthetic:1-3", *bad, "--out", str(tmp_path / "x")]) == 2
        assert word in capsys.readouterr().err
    assert not (tmp_path / "x" / "machine.json").exists()


def test_one_location_machine_is_the_estimator_over_image_location_pairs_with_prior_one_over_m():
    data = BlobDataset(size=12, resolution=16, min_objects=0, max_objects=3, seed=4)
    config = MachineConfig(16, 8, 1, 0.3, conditioning="one")
    machine = machine_from_dataset(config, data)
    items = [data[i] for i in range(12)]
    assert len(machine) == sum(max(len(c), 1) for _, c in items)            # one pair per object
    _, x, qcond, qmask = small_problem()
    sigma = torch.tensor([0.3, 0.2, 0.4])
    pairs = [(im, c[j:j + 1], 1 / len(c)) for im, c in items for j in range(len(c))] + \
        [(im, c, 1.0) for im, c in items if len(c) == 0]
    cond = torch.zeros(len(pairs), 1, 2)
    mask = torch.tensor([[len(c) == 1] for _, c, _ in pairs])
    for i, (_, c, _) in enumerate(pairs):
        if len(c):
            cond[i] = c
    prior = torch.log(torch.tensor([w for _, _, w in pairs], dtype=torch.float64))
    slow = reference_denoise(config, torch.stack([im for im, _, _ in pairs]), cond, mask, x, sigma, qcond, qmask,
                             log_prior=prior)
    out = machine(x, sigma, qcond, qmask)
    assert torch.allclose(out, slow, atol=1e-5), float((out - slow).abs().max())
    # the prior matters: without it (uniform over pairs) the output differs
    flat = reference_denoise(config, torch.stack([im for im, _, _ in pairs]), cond, mask, x, sigma, qcond, qmask)
    assert float((out - flat).abs().max()) > 1e-4
    # with exactly one object per image, "one" is "all"
    single = BlobDataset(size=10, resolution=16, min_objects=1, max_objects=1, seed=5)
    one = machine_from_dataset(config, single)(x, sigma, qcond, qmask)
    every = machine_from_dataset(MachineConfig(16, 8, 1, 0.3), single)(x, sigma, qcond, qmask)
    assert torch.allclose(one, every, atol=1e-6)
