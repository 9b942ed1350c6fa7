"""``localcomp toy learned``: exact bump denoiser, counting, leakage, training, CLI."""

import json

import numpy as np
import pytest
import torch

from empirical.toy.bumps import (BumpFamily, ExactDenoiser, cells_to_image, cells_to_present, conditioners,
                                 found_cells, image_to_cells, image_to_flat, numerics_model,
                                 present_cells, random_sets, sample_images)
from empirical.toy.study import (StudyConfig, build_model, draw_points, generate, kmax_request,
                                 kmax_table, leakage, relative_score_error, training_batch)

CPC = BumpFamily(8, 0.0)
SHADOW = BumpFamily(8, 0.2)


def _sets(family, sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    cells = random_sets(len(sizes), torch.tensor(sizes), family, g)
    return cells, g


def test_layout_round_trip_and_numerics_coordinates():
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    assert torch.equal(cells_to_image(image_to_cells(x, 4), 4), x)
    from numerics.experiments.bumps import cell_masks
    from numerics.families import pixel_coords
    flat, cells = image_to_flat(x), image_to_cells(x, 4)
    for n, (name, pixels) in enumerate(sorted(cell_masks(8).items(), key=lambda kv: min(kv[1]))):
        assert name == f"r{n // 4}c{n % 4}"
        assert torch.equal(flat[:, pixel_coords(pixels, 3)], cells[:, n])


def test_conditioners_round_trip():
    cells, _ = _sets(CPC, [0, 1, 5, 12])
    cond, mask = conditioners(cells, CPC)
    assert torch.equal(present_cells(cond, mask, CPC), cells_to_present(cells, CPC))
    assert cells_to_present(cells, CPC).sum(1).tolist() == [0, 1, 5, 12]


@pytest.mark.parametrize("family", [CPC, SHADOW], ids=["cpc", "shadow"])
def test_exact_denoiser_matches_numerics(family):
    import jax.numpy as jnp

    from numerics import blocks

    cells, g = _sets(family, [0, 2, 6, 12], seed=1)
    present = cells_to_present(cells, family)
    for sigma in (0.03, 0.5, 4.0):
        x = sample_images(family, present, g, torch.float64) + sigma * torch.randn(4, 3, 8, 8, generator=g,
                                                                                   dtype=torch.float64)
        ours = image_to_flat(ExactDenoiser(family)(x, torch.full((4,), sigma, dtype=torch.float64),
                                                   *conditioners(cells, family))).numpy()
        for b in range(4):
            ref = blocks.denoise(numerics_model(family, present[b].numpy()),
                                 jnp.asarray(image_to_flat(x[b:b + 1])[0].numpy()), sigma)
            np.testing.assert_allclose(ours[b], np.asarray(ref), atol=1e-12)


def test_composition_exact_for_cpc_and_wrong_only_at_adjacent_objects_with_shadow():
    # cells 5 and 6 are horizontal neighbours (row 1); 0 and 15 are not neighbours
    cells = torch.tensor([[5, 6], [0, 15]])
    g = torch.Generator().manual_seed(2)
    sigma = torch.full((2,), 0.3, dtype=torch.float64)
    for family, adjacent_differs in ((CPC, False), (SHADOW, True)):
        x = sample_images(family, cells_to_present(cells, family), g, torch.float64) + 0.3 * torch.randn(
            2, 3, 8, 8, generator=g, dtype=torch.float64)
        cond, mask = conditioners(cells, family)
        diff = (ExactDenoiser(family, composed=True)(x, sigma, cond, mask)
                - ExactDenoiser(family)(x, sigma, cond, mask)).abs().amax(dim=(1, 2, 3))
        assert diff[1] < 1e-12
        assert (diff[0] > 1e-3) == adjacent_differs, (family, diff)


def test_counting_is_exact_on_exact_samples_and_catches_a_missing_object():
    cells, g = _sets(CPC, list(range(13)) * 3, seed=3)
    images = sample_images(CPC, cells_to_present(cells, CPC), g)
    requested = [set(c[c >= 0].tolist()) for c in cells]
    assert found_cells(images, CPC) == requested
    erased = images.clone()
    erased[:, :, 2:4, 2:4] = 0.0          # cell 5 (row 1, col 1) emptied in every image
    assert found_cells(erased, CPC) == [r - {5} for r in requested]


def test_exact_sampling_reaches_every_k():
    config = StudyConfig(samples=2, sampler_steps=12, max_objects=12)
    request = kmax_request(CPC, config, torch.Generator().manual_seed(4))
    for composed in (False, True):
        images = generate(ExactDenoiser(CPC, composed), CPC, request, config)
        table = kmax_table(images, CPC, request, 0.5)
        assert table["kmax"] == 12
        assert all(v["success"] == 1.0 for v in table["per_k"].values())
    broken = kmax_table(torch.zeros_like(images), CPC, request, 0.5)   # nothing drawn: only K=0 succeeds
    assert broken["kmax"] == 0 and broken["per_k"][0]["success"] == 1.0


class _GlobalLeak:
    """A denoiser that brightens every pixel by 0.1 per conditioner: maximally non-local."""

    def __call__(self, x, sigma, cond, mask):
        return x + 0.1 * mask.sum(1).to(x.dtype)[:, None, None, None]


def test_leakage_zero_for_cpc_detected_for_shadow_and_nonlocal_models():
    g = torch.Generator().manual_seed(5)
    for sigma in (0.05, 1.0):
        assert leakage(ExactDenoiser(CPC), CPC, draw_points(CPC, sigma, 3, 16, g))["leakage"] < 1e-20
        shadow = leakage(ExactDenoiser(SHADOW), SHADOW, draw_points(SHADOW, sigma, 3, 16, g))
        assert shadow["leakage"] > 1e-4 and shadow["onto_background"] > 0
    wrong = leakage(_GlobalLeak(), CPC, draw_points(CPC, 0.5, 3, 8, g))
    assert wrong["leakage"] == pytest.approx(1 - 4 / 64)


def test_relative_score_error():
    x = torch.zeros(2, 3)
    exact = torch.ones(2, 3)
    assert relative_score_error(exact, exact, x) == 0
    assert relative_score_error(2 * exact, exact, x) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["unet-tokens", "patch"])
def test_a_few_training_steps_reduce_the_loss(name, torch_one_thread):
    from empirical.toy.study import train_model
    from empirical.models.unet import SigmaDistribution

    config = StudyConfig(steps=40, batch_size=16, channels=8, lr=5e-3, warmup=5)
    torch.manual_seed(0)
    model = build_model(name, config)

    def held_out_loss():
        g = torch.Generator().manual_seed(123)
        with torch.no_grad():
            images, cond, mask = training_batch(CPC, StudyConfig(batch_size=128), g)
            return float(model.training_loss(images, cond, mask, g, SigmaDistribution()))

    before = held_out_loss()
    history = train_model(model, CPC, config, seed=0, progress=False)
    after = held_out_loss()
    assert history[-1]["step"] == 40
    assert after < 0.85 * before, (before, after)


def test_one_conditioning_keeps_a_single_real_conditioner():
    config = StudyConfig(batch_size=32, conditioning="one", train_objects=(2, 3))
    images, cond, mask = training_batch(CPC, config, torch.Generator().manual_seed(6))
    assert cond.shape == (32, 1, 2) and mask.all()
    found = found_cells(images, CPC)
    kept = present_cells(cond, mask, CPC)
    assert all(int(kept[b].nonzero()[0]) in found[b] and len(found[b]) >= 2 for b in range(32))


@pytest.mark.parametrize("argv, flag", [
    (["--steps", "0"], "--steps"),
    (["--train-objects", "1-x"], "--train-objects"),
    (["--train-objects", "3-1"], "--train-objects"),
    (["--max-objects", "17"], "--max-objects"),
    (["--size", "7"], "--size"),
    (["--shadow", "0"], "--shadow"),
    (["--sampler-steps", "1"], "--sampler-steps"),
])
def test_cli_rejects_bad_arguments_before_writing(tmp_path, capsys, argv, flag):
    from localcomp.cli import main

    out = tmp_path / "out"
    assert main(["toy", "learned", "--out", str(out), *argv]) == 2
    assert flag in capsys.readouterr().err
    assert not out.exists()


def test_cli_rejects_unknown_model(tmp_path):
    from localcomp.cli import main

    with pytest.raises(SystemExit) as error:
        main(["toy", "learned", "--models", "vit", "--out", str(tmp_path / "out")])
    assert error.value.code == 2


def test_cli_end_to_end_tiny(tmp_path, torch_one_thread):
    from localcomp.cli import main
    from numerics.experiments import EXPERIMENTS

    assert "learned" not in EXPERIMENTS       # `toy all` does not run it
    out = tmp_path / "learned"
    assert main(["toy", "learned", "--out", str(out), "--families", "shadow", "--models", "patch",
                 "--steps", "2", "--batch-size", "4", "--samples", "1", "--max-objects", "2",
                 "--points", "2", "--sampler-steps", "12", "--seed", "3"]) == 0
    report = json.loads((out / "learned.json").read_text())
    assert json.loads((out / "run.json").read_text())["seed"] == 3
    assert (out / "learned.png").stat().st_size > 0 and (out / "samples.png").stat().st_size > 0
    assert report["exact_vs_numerics_max_abs_diff"] < 1e-12
    models = report["families"]["shadow"]["models"]
    assert set(models) == {"exact", "exact-composed", "patch"}
    assert sorted(int(k) for k in models["patch"]["kmax"]["per_k"]) == [0, 1, 2]
    assert models["exact"]["kmax"]["kmax"] == 2
