"""r² between denoisers (``empirical.diagnostics.agreement``, ``localcomp clevr agreement``)."""

import json
import math

import pytest
import torch

from empirical.clevr.synthetic import BlobDataset
from empirical.diagnostics.agreement import agreement_at_sigmas, best_reference, r_squared, summarize
from empirical.models.machine import MachineConfig, machine_from_dataset
from localcomp.cli import main


def test_r_squared_is_one_for_identical_zero_for_the_mean_and_nan_for_a_constant_target():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(3, 3, 8, 8, generator=g)
    assert torch.allclose(r_squared(target, target), torch.ones(3, dtype=torch.float64))
    mean = target.mean(dim=(1, 2, 3), keepdim=True).expand_as(target)
    assert torch.allclose(r_squared(mean, target), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    flat = torch.zeros(1, 3, 8, 8)
    assert math.isnan(float(r_squared(torch.ones_like(flat), flat)[0]))
    with pytest.raises(ValueError, match="differ"):
        r_squared(target, target[:, :2])


def test_r_squared_is_one_minus_residual_over_the_targets_variance_not_the_predictions():
    g = torch.Generator().manual_seed(1)
    target = torch.randn(1, 3, 16, 16, generator=g, dtype=torch.float64)
    prediction = 0.5 * target                       # residual 0.25 of the target's energy
    centred = target - target.mean()
    expected = 1 - ((0.5 * target) ** 2).sum() / (centred ** 2).sum()
    assert float(r_squared(prediction, target)[0]) == pytest.approx(float(expected), rel=1e-12)
    # scored the other way round, the prediction's smaller variance makes the same residual worse
    assert float(r_squared(target, prediction)[0]) < float(r_squared(prediction, target)[0])


def test_r_squared_about_the_mean_image_is_zero_for_the_mean_image_where_the_per_image_one_is_not():
    g = torch.Generator().manual_seed(2)
    shared = torch.linspace(-1, 1, 64).view(1, 1, 8, 8).expand(4, 3, 8, 8)      # a common background
    target = shared + 0.1 * torch.randn(4, 3, 8, 8, generator=g)
    mean_image = target.mean(0, keepdim=True)
    specific = r_squared(mean_image.expand_as(target), target, mean_image)
    assert torch.allclose(specific, torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert bool((r_squared(mean_image.expand_as(target), target) > 0.9).all())


def test_summarize_drops_nan_and_orders_its_quartiles():
    s = summarize(torch.tensor([0.1, float("nan"), 0.5, 0.9, 0.3], dtype=torch.float64))
    assert s["n"] == 4 and s["q25"] <= s["median"] <= s["q75"]
    assert s["mean"] == pytest.approx(0.45)
    assert summarize(torch.tensor([float("nan")]))["median"] is None


def _batch(dataset, n):
    items = [dataset[i] for i in range(n)]
    most = max(len(c) for _, c in items)
    cond, mask = torch.zeros(n, most, 2), torch.zeros(n, most, dtype=torch.bool)
    for i, (_, c) in enumerate(items):
        cond[i, :len(c)], mask[i, :len(c)] = c, True
    return torch.stack([im for im, _ in items]), cond, mask


def test_a_machine_explains_itself_fully_and_the_nonlocal_machine_less_than_its_local_one():
    train = BlobDataset(size=60, resolution=16, min_objects=1, max_objects=3, seed=0)
    local = machine_from_dataset(MachineConfig(16, 16, 1), train)
    other_local = machine_from_dataset(MachineConfig(16, 16, 1), train)
    nonlocal_machine = machine_from_dataset(MachineConfig(16, 1, 0), train)
    clean, cond, mask = _batch(BlobDataset(size=6, resolution=16, min_objects=1, max_objects=3, seed=5), 6)
    result = agreement_at_sigmas({"local": local}, {"same": other_local, "nonlocal": nonlocal_machine},
                                 clean, cond, mask, [0.05, 0.5], seed=0)
    for row in result["per_sigma"]:
        assert row["r2"]["local"]["same"]["median"] == pytest.approx(1.0, abs=1e-9)
        assert len(row["per_image"]["local"]["nonlocal"]) == 6
    at_half = result["per_sigma"][1]["r2"]["local"]
    assert at_half["nonlocal"]["median"] < 0.99
    assert at_half["clean"]["median"] < 1.0     # the machine does not return the clean image
    assert [b["reference"] for b in best_reference(result, "local")] == ["same", "same"]


def test_agreement_refuses_shared_names_and_bad_sigmas():
    clean, cond, mask = torch.zeros(1, 3, 16, 16), torch.zeros(1, 1, 2), torch.ones(1, 1, dtype=torch.bool)
    d = lambda x, s, c, m: x  # noqa: E731
    with pytest.raises(ValueError, match="names"):
        agreement_at_sigmas({"a": d}, {"a": d}, clean, cond, mask, [0.1])
    with pytest.raises(ValueError, match="names"):
        agreement_at_sigmas({"a": d}, {"clean": d}, clean, cond, mask, [0.1])
    with pytest.raises(ValueError, match="sigmas"):
        agreement_at_sigmas({"a": d}, {"b": d}, clean, cond, mask, [0.0])


def test_clevr_agreement_end_to_end_on_machines(tmp_path, capsys):
    runs = {}
    for name, flags in (("k1", ["--k", "1"]), ("k1-copy", ["--k", "1"]), ("nonlocal", ["--non-local"])):
        runs[name] = tmp_path / name
        assert main(["clevr", "machine", "--data", "synthetic:1-3", *flags, "--limit", "40",
                     "--sampler-steps", "4", "--out", str(runs[name])]) == 0
    out = tmp_path / "agreement"
    args = ["clevr", "agreement", "--runs", str(runs["k1"]), "--references", str(runs["k1-copy"]),
            str(runs["nonlocal"]), "--data", "synthetic:1-3", "--start", "100", "--num-images", "4",
            "--sigmas", "0.1", "1.0", "--sample-k", "2", "--sample-sets", "2", "--sampler-steps", "4",
            "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "agreement.json").read_text())
    assert report["targets"] == ["k1"] and report["references"] == ["k1-copy", "nonlocal"]
    assert len(report["images"]) == 4 and min(report["images"]) >= 100
    assert report["runs"]["nonlocal"]["experiment"] == "machine-nonlocal"
    assert report["per_sigma"][0]["r2"]["k1"]["k1-copy"]["median"] == pytest.approx(1.0, abs=1e-9)
    samples = report["samples"]["r2"]["2"]["k1"]
    assert samples["k1-copy"]["r2"]["median"] == pytest.approx(1.0, abs=1e-9)
    assert samples["nonlocal"]["r2"]["median"] < 0.999
    assert samples["nonlocal"]["r2_vs_mean_image"]["median"] < samples["nonlocal"]["r2"]["median"]
    assert report["best_reference"]["r2_vs_mean_image"]["k1"][0]["reference"] == "k1-copy"
    assert (out / "agreement.png").stat().st_size > 0 and (out / "run.json").exists()
    capsys.readouterr()
    assert main(args) == 2                          # refuses to replace agreement.json
    assert "agreement.json" in capsys.readouterr().err


@pytest.mark.parametrize("change, field", [
    (["--sigmas", "0"], "--sigmas"),
    (["--num-images", "0"], "--num-images"),
    (["--min-objects", "3", "--max-objects", "2"], "--max-objects"),
    (["--sample-k", "-1"], "--sample-k"),
])
def test_clevr_agreement_names_the_bad_flag(tmp_path, capsys, change, field):
    run = tmp_path / "k1"
    assert main(["clevr", "machine", "--data", "synthetic:1-3", "--k", "1", "--limit", "20", "--out", str(run)]) == 0
    capsys.readouterr()
    args = ["clevr", "agreement", "--runs", str(run), "--references", str(tmp_path / "k1"), "--data",
            "synthetic:1-3", "--out", str(tmp_path / "out"), *change]
    assert main(args) == 2
    assert field in capsys.readouterr().err
    assert not (tmp_path / "out" / "agreement.json").exists()


def test_clevr_agreement_refuses_a_folder_without_a_model_and_the_same_folder_twice(tmp_path, capsys):
    run = tmp_path / "k1"
    assert main(["clevr", "machine", "--data", "synthetic:1-3", "--k", "1", "--limit", "20", "--out", str(run)]) == 0
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    base = ["--data", "synthetic:1-3", "--out", str(tmp_path / "out")]
    assert main(["clevr", "agreement", "--runs", str(run), "--references", str(tmp_path / "empty"), *base]) == 2
    assert "--references: no checkpoint.pt" in capsys.readouterr().err
    assert main(["clevr", "agreement", "--runs", str(run), "--references", str(run), *base]) == 2
    assert "given twice" in capsys.readouterr().err


def test_select_range_keeps_the_object_range_from_the_start_index_and_names_the_flags_when_empty():
    from empirical.cli.agreement import select_range
    from localcomp.errors import UserError
    data = [(None, torch.zeros(n, 2)) for n in (1, 4, 2, 3, 0, 2, 5, 1)]
    assert select_range(data, 1, 3, 1, 3) == [2, 3, 5]
    assert select_range(data, 6, 5, 1, 3) == [7]
    with pytest.raises(UserError, match="--start/--min-objects/--max-objects"):
        select_range(data, 4, 2, 6, 8)
