"""Locality diagnostics (empirical.diagnostics.locality) validated on exact scores and on tiny networks;
the correlation tool on synthetic JSON; the two CLI commands end to end.

Tolerances (docs/locality-diagnostics.md): on an exactly CPC family the measured conditional
leakage must be <= LEAKAGE_TOL and the Jacobian energy outside the CPC block <= ENERGY_TOL.
float64 rounding of the closed-form mixture score is ~1e-16 relative per entry; leakage is a ratio
of sums of absolute changes (so rounding enters linearly: measured 3.3e-15) and the energy
fraction a ratio of sums of squares (rounding enters squared: measured 1.1e-29). The
tolerances sit 4-9 orders above rounding; every non-CPC variant below has strength 0.5 and is
detected at >= 1e-4, 6 orders above LEAKAGE_TOL.
"""

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from empirical.diagnostics import locality as L
from empirical.toy.exact_denoiser import ExactFamilyDenoiser, model_denoise, to_torch

pytestmark = pytest.mark.usefixtures("torch_one_thread")

LEAKAGE_TOL = 1e-10
ENERGY_TOL = 1e-20
DETECTED = 1e-4
SIGMAS = (0.05, 0.3, 1.0, 3.0)
IDS = ("r0c0", "r0c1", "r1c0")
AB = frozenset(["r0c0", "r0c1"])
# each set twice: two independent points per set
SETS = [AB, frozenset(IDS), frozenset(["r1c0"]), frozenset(["r0c1", "r1c0"])] * 2


# -- the toy family: 4 x 4 bump image, three 2 x 2 conditioner cells, the fourth cell background --

def _families():
    from numerics import blocks, families as F
    from numerics.experiments.bumps import bump_blocks

    cells, null, bump = bump_blocks(4)
    masks = {c: cells[c] for c in IDS}
    cpc = F.cpc_family(16, 1, masks, {c: null for c in IDS}, {c: bump for c in IDS}, null)
    flat = F.ConditionalFamily(16, 1, cpc.masks, {J: blocks.expand(m) for J, m in cpc.models.items()},
                               "cpc-flat")
    return {
        "cpc": cpc,
        "cpc-flat": flat,   # the same densities as generic 16-d mixtures: zeros only up to rounding
        "conditioner_shift": F.with_conditioner_shift(cpc, AB, "r0c0", 0.5),
        "background_shift": F.with_background_shift(cpc, AB, 0.5),
        "correlated_weights": F.with_correlated_weights(cpc, AB, 0.5),
        "bayes_background": F.with_bayes_background(cpc),
    }


_FAMILIES = {}


def family(name):
    if not _FAMILIES:
        _FAMILIES.update(_families())
    return _FAMILIES[name]


def measure_exact(name, sets=SETS, seed=0):
    """All measures of the exact denoiser of family ``name`` at points of p_sigma(.|J)."""
    D = ExactFamilyDenoiser.from_family(family(name), 4, 4)
    cond, mask = D.locations(sets)
    clean = D.sample_clean(cond, mask, torch.Generator().manual_seed(seed))
    pixels = torch.tensor([[r, c] for r in range(4) for c in range(4)]).expand(len(sets), 16, 2)
    allowed = L.label_regions(D.block_labels(cond, mask), pixels)
    return L.measure_locality(D, clean, cond, mask, SIGMAS, seed=seed, pixels=pixels,
                              footprints=D.footprints(cond, mask), allowed=allowed)


def worst(result, part, key):
    return max(r[part][key] for r in result["per_sigma"])


def test_torch_exact_denoiser_matches_numerics():
    from numerics import blocks

    rng = np.random.default_rng(0)
    for name in ("cpc", "correlated_weights"):
        model = family(name).models[AB]
        x = rng.normal(0.5, 0.5, size=(5, 16))
        for sigma in (0.05, 1.0):
            ours = model_denoise(to_torch(model), torch.from_numpy(x), sigma).numpy()
            exact = x + sigma ** 2 * np.asarray(blocks.batch_score(blocks.noised(model, sigma), x))
            np.testing.assert_allclose(ours, exact, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["cpc", "cpc-flat"])
def test_cpc_family_is_local_at_float_precision(name):
    result = measure_exact(name)
    for r in result["per_sigma"]:
        cond = r["conditional"]
        # the test can fail: every removal really changes the denoiser (on its own mask)
        assert cond["zero_change_removals"] == 0 and cond["mean_change"] > 0
        assert cond["leakage_max"] <= LEAKAGE_TOL, (r["sigma"], cond)
        assert r["pixel"]["outside_allowed_max"] <= ENERGY_TOL, (r["sigma"], r["pixel"])
    if name == "cpc":  # block products are evaluated block-wise: exact zeros
        assert worst(result, "conditional", "leakage_max") == 0
        assert worst(result, "pixel", "outside_allowed_max") == 0


@pytest.mark.parametrize("name,part,key", [
    ("conditioner_shift", "conditional", "other_objects"),
    ("background_shift", "conditional", "background"),
    ("correlated_weights", "pixel", "outside_allowed_max"),
    ("correlated_weights", "conditional", "leakage_max"),
    ("bayes_background", "conditional", "leakage_max"),
])
def test_non_cpc_variants_are_detected(name, part, key):
    result = measure_exact(name)
    assert worst(result, part, key) > DETECTED, [r[part] for r in result["per_sigma"]]


# -- tiny networks: the patch model is local by construction, the UNet is not ---------------------

def _randomized(experiment):
    from empirical.training.experiments import build_model, make_train_config

    torch.manual_seed(0)
    model = build_model(make_train_config(experiment, "tiny"))
    with torch.no_grad():  # zero-initialised output layers would make the net constant
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval().requires_grad_(False)


def _patch_regions(pixels, cells_of_patch: int, cell: int, res: int):
    """Pixels of the (2k+1)-cell patch around each output pixel's cell: ``[B, P, H, W]``."""
    grid = torch.arange(res)
    cell_of = grid // cell
    rows = (cell_of[None, None, :, None] - (pixels[..., 0] // cell)[..., None, None]).abs() <= cells_of_patch
    cols = (cell_of[None, None, None, :] - (pixels[..., 1] // cell)[..., None, None]).abs() <= cells_of_patch
    return rows & cols


def test_patch_model_exactly_local_unet_not():
    """Pixel locality of the patch model is exact (autograd gives structural zeros). Its
    conditional locality is exact in exact arithmetic; in float32 (the models compute parts of
    their embeddings in float32 whatever the input dtype), deleting a conditioner changes the
    attention of patches that never saw it by rounding (we measured 6e-6), so we allow 1e-4."""
    res = 16
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, res, res, generator=g) * 2 - 1
    cond = torch.tensor([[[-0.5, -0.5], [0.5, 0.4]], [[0.1, -0.6], [-0.6, 0.6]]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    pixels = L.choose_pixels(cond, mask, res, res, 3, g)
    patch = _randomized("exp2l")
    cfg = patch.config
    allowed = _patch_regions(pixels, cfg.k, cfg.cell, res)
    # a conditioner reaches the cells within k cells of its own: a disc of radius (k+1) cell * sqrt 2
    footprints = L.disc_footprints(cond, mask, res, res, (cfg.k + 1) * cfg.cell * 2 ** 0.5)
    results = {}
    for name, model in (("patch", patch), ("unet", _randomized("exp1"))):
        results[name] = L.measure_at_sigma(model, x, 0.5, cond, mask, pixels, footprints, allowed)
    assert results["patch"]["pixel"]["outside_allowed_max"] == 0
    assert results["patch"]["conditional"]["leakage_max"] <= 1e-4
    assert results["patch"]["conditional"]["zero_change_removals"] == 0
    assert results["unet"]["pixel"]["outside_allowed_max"] > 1e-6
    assert results["unet"]["conditional"]["leakage_max"] > 1e-2


def test_vmap_and_loop_vjps_agree_and_adapter():
    model = _randomized("exp1")
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 16, 16, generator=g)
    cond = torch.rand(2, 2, 2, generator=g) * 2 - 1
    mask = torch.tensor([[True, True], [True, False]])
    sigma = torch.full((2,), 0.7)
    pixels = L.choose_pixels(cond, mask, 16, 16, 2, g)
    looped = L.jacobian_energy_maps(model, x, sigma, cond, mask, pixels, vectorize=False)
    vmapped = L.jacobian_energy_maps(model, x, sigma, cond, mask, pixels, vectorize=True)
    torch.testing.assert_close(looped, vmapped, rtol=1e-4, atol=1e-8)
    # a one-image, list-of-locations model behind the adapter measures the same
    listed = L.from_list_denoiser(lambda x1, s, locs: model(x1, torch.full((1,), s), locs[None],
                                                          torch.ones(1, len(locs), dtype=torch.bool)))
    torch.testing.assert_close(L.jacobian_energy_maps(listed, x, sigma, cond, mask, pixels, False), looped)
    change, valid = L.conditional_change_maps(listed, x, sigma, cond, mask)
    torch.testing.assert_close(change, L.conditional_change_maps(model, x, sigma, cond, mask)[0])
    assert change[1, 1].abs().sum() == 0 and not valid[1, 1]


# -- the summaries on hand-made maps -----------------------------------------------------------

@given(st.integers(0, 6), st.integers(0, 6), st.integers(0, 6), st.integers(0, 6))
def test_energy_at_one_other_pixel(r0, c0, r1, c1):
    energy = torch.zeros(1, 1, 7, 7)
    energy[0, 0, r0, c0] = 5.0          # self: excluded from the spatial fractions
    energy[0, 0, r1, c1] += 2.0
    pixels = torch.tensor([[[r0, c0]]])
    per = L.pixel_locality_per_pixel(energy, pixels, radii=(1, 3))
    d = float(np.hypot(r1 - r0, c1 - c0))
    if d == 0:
        assert torch.isnan(per["effective_radius"]).all() and per["self_fraction"].item() == 1
        return
    assert per["effective_radius"].item() == pytest.approx(d)
    assert per["within_r1"].item() == (1.0 if d <= 1 else 0.0)
    assert per["within_r3"].item() == (1.0 if d <= 3 else 0.0)
    assert per["self_fraction"].item() == pytest.approx(5 / 7)


def test_conditional_fractions_on_hand_made_maps():
    change = torch.zeros(1, 2, 8, 8)
    change[0, 0, 1, 1] = 3.0   # inside c0's disc
    change[0, 0, 6, 6] = 1.0   # on c1's disc
    change[0, 1, 1, 6] = 1.0   # background
    cond = torch.tensor([[[-0.625, -0.625], [0.625, 0.625]]])   # pixel centres (1, 1) and (6, 6)
    mask = torch.ones(1, 2, dtype=torch.bool)
    fp = L.disc_footprints(cond, mask, 8, 8, 1.0)
    assert fp[0, 0, 1, 1] and fp[0, 0, 0, 1] and not fp[0, 0, 0, 0] and fp[0, 1, 6, 6]
    per = L.conditional_locality_per_removal(change, mask, fp)
    assert per["inside"][0].tolist() == [0.75, 0.0]
    assert per["other_objects"][0].tolist() == [0.25, 0.0]
    assert per["background"][0].tolist() == [0.0, 1.0]
    assert per["leakage"][0].tolist() == [0.25, 1.0]


def test_bad_sigmas_are_rejected():
    with pytest.raises(ValueError, match="sigmas"):
        L.measure_locality(lambda *a: a[0], torch.zeros(1, 1, 4, 4), torch.zeros(1, 0, 2),
                           torch.zeros(1, 0, dtype=torch.bool), sigmas=(0.5, -1.0))


# -- correlation tool ------------------------------------------------------------------------------

def _write_entry(root, name, leakage, radius, kmax, experiment):
    run = root / name
    run.mkdir()
    (run / "kmax.json").write_text(json.dumps({"experiment": experiment, "training_objects": "1-3",
                                               "kmax": kmax}))
    loc = run / "locality"
    loc.mkdir()
    (loc / "locality.json").write_text(json.dumps({"run": str(run), "summary": {
        "conditional_leakage": leakage, "pixel_effective_radius": radius, "cross_talk_objects": None}}))
    return loc / "locality.json"


def test_correlate_on_synthetic_entries(tmp_path):
    from empirical.evaluation.correlation import correlate, load_entries

    leak = [0.9, 0.2, 0.5, 0.1, 0.7]
    kmax = [1, 8, 4, 9, 2]            # strictly decreasing in leakage
    radius = [3.0, 3.0, 1.0, 2.0, 5.0]
    paths = [_write_entry(tmp_path, f"r{i}", lk, rd, km, f"exp{i}") for i, (lk, rd, km)
             in enumerate(zip(leak, radius, kmax))]
    entries = load_entries([str(p) for p in paths])
    result = correlate(entries)
    assert result["conditional_leakage"]["rho"] == pytest.approx(-1.0)
    assert result["conditional_leakage"]["n"] == 5
    from scipy.stats import spearmanr
    assert result["pixel_effective_radius"]["rho"] == pytest.approx(spearmanr(radius, kmax).statistic)
    assert "cross_talk_objects" not in result  # None everywhere: not a number
    assert correlate(entries[:2])["conditional_leakage"]["rho"] is None  # undefined for n < 3
    # the bootstrap interval over models (issue 11 item 6): a perfect rank order resamples to -1
    # whenever rho is defined; the interval holds the estimate and is seeded
    interval = result["conditional_leakage"]["bootstrap95"]["interval"]
    assert interval == pytest.approx([-1.0, -1.0])
    radius_boot = result["pixel_effective_radius"]["bootstrap95"]
    low, high = radius_boot["interval"]
    assert low <= result["pixel_effective_radius"]["rho"] <= high and high - low > 0.5
    assert radius_boot["undefined"] > 0  # some resamples draw one radius only: counted, left out
    assert correlate(entries)["pixel_effective_radius"]["bootstrap95"] == radius_boot

    out = tmp_path / "corr"
    from localcomp.cli import main
    assert main(["clevr", "correlate", "--entries", *map(str, paths), "--out", str(out)]) == 0
    written = json.loads((out / "correlation.json").read_text())
    assert written["spearman"]["conditional_leakage"]["rho"] == pytest.approx(-1.0)
    assert (out / "correlation.png").stat().st_size > 0 and (out / "run.json").exists()
    # the field missing from the kmax.json files: a clear error, nothing written
    assert main(["clevr", "correlate", "--entries", *map(str, paths), "--kmax-field", "kmax_requested_found",
                 "--out", str(tmp_path / "relaxed")]) == 2
    assert not (tmp_path / "relaxed").exists()
    bad = tmp_path / "bad"
    assert main(["clevr", "correlate", "--entries", *map(str, paths), "--kmax", "x.json",
                 "--out", str(bad)]) == 2
    assert not bad.exists()


def test_correlation_figure_numbers_a_crowd_and_keys_the_labels(tmp_path):
    """Few entries are labelled in place; beyond label_limit each point carries its number and the
    key beside the panels gives every label once, in the entries' order."""
    from empirical.evaluation.correlation import correlate, load_entries, plot_correlation

    paths = [_write_entry(tmp_path, f"r{i}", 0.05 * i, 1.0 + i, 12 - i, f"model{i}") for i in range(14)]
    entries = load_entries([str(p) for p in paths])
    metrics = ["conditional_leakage"]

    def texts(fig):
        annotations = [t.get_text() for ax in fig.axes for t in ax.texts]
        return annotations, "\n".join(t.get_text() for t in fig.texts if t.get_text() != fig.get_suptitle())

    in_place, key = texts(plot_correlation(entries, metrics, correlate(entries, metrics), label_limit=20))
    assert sorted(in_place) == sorted(e["label"] for e in entries) and key == ""
    numbered, key = texts(plot_correlation(entries, metrics, correlate(entries, metrics), label_limit=12))
    assert sorted(numbered, key=int) == [str(n) for n in range(1, 15)]
    assert [line.split()[0] for line in key.splitlines()] == [str(n) for n in range(1, 15)]
    assert [" ".join(line.split()[1:]) for line in key.splitlines()] == [e["label"] for e in entries]


def test_bootstrap_spearman_covers_the_truth_of_a_noisy_monotone_relation():
    """With 30 models whose Kmax falls with leakage plus noise, the interval excludes 0 and holds
    the sample rho; with unrelated Kmax it holds 0."""
    import numpy as np

    from empirical.evaluation.correlation import spearman
    rng = np.random.default_rng(3)
    leak = rng.uniform(0, 1, 30)
    related = spearman(leak.tolist(), (-5 * leak + rng.normal(0, 1, 30)).tolist())
    low, high = related["bootstrap95"]["interval"]
    assert low <= related["rho"] <= high < 0
    unrelated = spearman(leak.tolist(), rng.normal(0, 1, 30).tolist())
    low, high = unrelated["bootstrap95"]["interval"]
    assert low < 0 < high


# -- clevr locality end to end on an untrained tiny checkpoint ------------------------------------

def test_locality_command(tmp_path, capsys):
    from empirical.training.experiments import make_train_config
    from empirical.training.train import save_checkpoint
    from localcomp.cli import main

    config = make_train_config("exp1", "tiny")
    model = _randomized("exp1")
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoint.pt", {"config": config, "model": model.state_dict(),
                                            "ema": model.state_dict(), "step": 0})
    out = tmp_path / "loc"
    assert main(["clevr", "locality", "--run", str(run), "--data", "synthetic:1-3", "--sigmas", "-1",
                 "--out", str(out)]) == 2
    assert not out.exists()
    assert main(["clevr", "locality", "--run", str(run), "--data", "synthetic:2-3", "--sigmas", "0.2", "1.0",
                 "--num-images", "2", "--pixels-per-image", "2", "--out", str(out)]) == 0
    report = json.loads((out / "locality.json").read_text())
    assert [r["sigma"] for r in report["per_sigma"]] == [0.2, 1.0]
    assert len(report["images"]) == 2
    s = report["summary"]
    assert 0 <= s["conditional_leakage"] <= 1 and s["pixel_effective_radius"] > 0
    for name in ("locality_heatmaps.png", "locality_vs_sigma.png", "run.json"):
        assert (out / name).stat().st_size > 0
    # measuring again into the same --out needs --force (issue 15 item 3)
    again = ["clevr", "locality", "--run", str(run), "--data", "synthetic:2-3", "--sigmas", "0.2",
             "--num-images", "2", "--pixels-per-image", "2", "--out", str(out)]
    assert main(again) == 2
    assert main([*again, "--force"]) == 0
    # one-object scenes have no second conditioner to remove: a clear error that names the way out;
    # --max-objects picks 2-3 object scenes out of a wider set (a row-1 model on the evaluation scenes)
    capsys.readouterr()
    assert main(["clevr", "locality", "--run", str(run), "--data", "synthetic:1-1", "--out", str(tmp_path / "one")]) == 2
    assert "--max-objects 3" in capsys.readouterr().err and not (tmp_path / "one").exists()
    assert main(["clevr", "locality", "--run", str(run), "--data", "synthetic:0-12", "--max-objects", "1",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "--max-objects: must be >= --min-objects" in capsys.readouterr().err
    wide = tmp_path / "wide"
    assert main(["clevr", "locality", "--run", str(run), "--data", "synthetic:0-12", "--max-objects", "3",
                 "--sigmas", "1.0", "--num-images", "3", "--pixels-per-image", "1", "--out", str(wide)]) == 0
    report = json.loads((wide / "locality.json").read_text())
    from empirical.clevr.sources import load_data
    scenes = load_data("synthetic:0-12", config.resolution, 0)
    assert [2 <= scenes[i][1].shape[0] <= 3 for i in report["images"]] == [True] * 3
    assert (report["min_objects"], report["max_objects"]) == (2, 3)


def test_rendered_mask_footprints_and_pixel_choice():
    from types import SimpleNamespace

    from empirical.cli.diagnostics import mask_footprints

    masks = np.zeros((1, 6, 6), np.uint8)
    masks[0, 1, 1] = 2                 # object 1 (conditioner 0 points at it)
    masks[0, 4, 4] = 1                 # object 0 (conditioner 1)
    data = SimpleNamespace(masks=masks, metadata=[{"conditioner_objects": [1, 0]}])
    fp = mask_footprints(data, [0], 3, dilate=1)
    assert fp.shape == (1, 3, 6, 6)
    assert fp[0, 0].sum() == 9 and fp[0, 0, 0:3, 0:3].all()    # 1 pixel dilated to a 3 x 3 square
    assert fp[0, 1].sum() == 9 and fp[0, 1, 3:6, 3:6].all()
    assert not fp[0, 2].any()                                     # padded entry
    cond = torch.tensor([[[-0.5, -0.5], [0.9, 0.9], [0.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])
    pixels = L.choose_pixels(cond, mask, 6, 6, 3, torch.Generator().manual_seed(0))
    assert pixels[0, :2].tolist() == [[1, 1], [5, 5]]            # objects first, then random


def test_correlate_against_the_found_share_beyond_training(tmp_path):
    """`--kmax-field found_share` correlates leakage with the mean share of requested objects found
    at --found-k (where strict Kmax is 0 for every model it is the graded measure); a K the
    evaluation did not test is named."""
    from empirical.evaluation.correlation import correlate, load_entries
    from localcomp.cli import main
    from localcomp.errors import UserError

    paths = []
    for i, (leak, share) in enumerate([(0.1, 0.7), (0.3, 0.5), (0.6, 0.2), (0.9, 0.05)]):
        run = tmp_path / f"run{i}"
        (run / "locality").mkdir(parents=True)
        (run / "locality" / "locality.json").write_text(json.dumps(
            {"run": str(run), "summary": {"conditional_leakage": leak}}))
        counts = {str(K): {"location_found_rate": share + 0.01 * K} for K in (1, 6, 8)}
        (run / "kmax.json").write_text(json.dumps({"experiment": "exp2l", "kmax": 0,
                                                   "evaluation": {"counts": counts}}))
        paths.append(run / "locality")
    entries = load_entries(paths, kmax_field="found_share", found_ks=(6, 8))
    assert [e["kmax"] for e in entries] == pytest.approx([0.77, 0.57, 0.27, 0.12])
    assert entries[0]["kmax_field"] == "found share at K = 6, 8"
    assert correlate(entries)["conditional_leakage"]["rho"] == pytest.approx(-1.0)
    assert correlate(load_entries(paths))["conditional_leakage"]["rho"] is None  # strict Kmax all 0
    with pytest.raises(UserError, match=r"K = \[12\].*tested: 1, 6, 8"):
        load_entries(paths, kmax_field="found_share", found_ks=(6, 12))
    out = tmp_path / "corr"
    labels = ["a", "b", "c", "d"]
    assert main(["clevr", "correlate", "--entries", *map(str, paths), "--kmax-field", "found_share",
                 "--found-k", "6", "8", "--metrics", "conditional_leakage", "--labels", *labels,
                 "--out", str(out)]) == 0
    written = json.loads((out / "correlation.json").read_text())
    assert written["spearman"]["conditional_leakage"]["rho"] == pytest.approx(-1.0)
    assert [e["label"] for e in written["entries"]] == labels
    assert main(["clevr", "correlate", "--entries", *map(str, paths), "--labels", "a", "b",
                 "--out", str(tmp_path / "few")]) == 2  # one label per entry
    assert not (tmp_path / "few").exists()
