"""CLEVR scene sampler, renderer and dataset builder (tiny renders: 16 px, 2 spp)."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from empirical.clevr import scene as clevr
from empirical.clevr.dataset import (BuildConfig, ClevrDataset, DatasetError, build_dataset,
                               collate_sets, load_dataset, shard_name)
from empirical.clevr.presets import PRESETS, get_preset
from localcomp.errors import UserError


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 12))
def test_sampled_scenes_follow_the_placement_rules(seed, n):
    scene = clevr.sample_scene(np.random.default_rng(seed), n)
    assert len(scene.objects) == n
    directions = clevr.floor_directions()
    for i, a in enumerate(scene.objects):
        x, y, z = a.position
        assert -3 <= x <= 3 and -3 <= y <= 3
        assert z == pytest.approx(a.radius / math.sqrt(2) if a.shape == "cube" else a.radius)
        assert a.color in clevr.COLORS and a.shape in clevr.SHAPES and a.material in clevr.MATERIALS
        for b in scene.objects[:i]:
            dx, dy = x - b.position[0], y - b.position[1]
            assert math.hypot(dx, dy) - a.radius - b.radius >= clevr.MIN_DIST
            for d in directions.values():
                assert not 0 < dx * d[0] + dy * d[1] < clevr.MARGIN


def test_floor_directions_are_orthonormal_and_behind_points_away_from_camera():
    d = clevr.floor_directions()
    assert np.dot(d["left"], d["behind"]) == pytest.approx(0, abs=1e-12)
    assert np.linalg.norm(d["left"]) == pytest.approx(1)
    assert np.dot(d["behind"], -np.asarray(clevr.CAMERA_POSITION[:2])) > 0


def test_visibility_threshold_scales_clevr_pixel_count():
    for r in (16, 32, 64, 128):
        t = clevr.min_visible_pixels(r)
        assert t / (r * r) >= 200 / (320 * 240) > (t - 1) / (r * r)


def test_projection_matches_mask_centroid_and_visibility_rule():
    from empirical.clevr.render import render_visible_scene
    for seed in range(3):
        rendered = render_visible_scene(np.random.default_rng(seed), 1, 32, 2, seed)
        rows, cols = np.nonzero(rendered.mask == 1)
        centroid = np.array([2 * (cols.mean() + 0.5) / 32 - 1, 2 * (rows.mean() + 0.5) / 32 - 1])
        # one pixel is 2/32 in these units; a projected centre is within ~1 px of the centroid
        assert np.abs(centroid - rendered.locations[0]).max() < 2 / 32
        assert rendered.pixels[0] == len(rows) >= clevr.min_visible_pixels(32)
        assert rendered.image.dtype == np.uint8 and rendered.image.shape == (32, 32, 3)


def _config(num_images=6, seed=3, preset="clevr0-12", **kw):
    return BuildConfig.from_preset(get_preset(preset), num_images=num_images, resolution=16,
                                   spp=2, seed=seed, shard_size=2, **kw)


def _files(path):
    return {p.name: p.read_bytes() for p in Path(path).glob("shard-*.npz")} | {
        "metadata.jsonl": (Path(path) / "metadata.jsonl").read_bytes()}


@pytest.fixture(scope="module")
def one_shot(tmp_path_factory):
    out = tmp_path_factory.mktemp("one_shot")
    build_dataset(_config(), out, workers=1, progress=False)
    return out


def test_same_seed_same_bytes_any_worker_count(one_shot, tmp_path):
    build_dataset(_config(), tmp_path, workers=2, progress=False)
    assert _files(tmp_path) == _files(one_shot)
    other = tmp_path / "other_seed"
    build_dataset(_config(seed=4), other, workers=1, progress=False)
    assert _files(other)["shard-00000.npz"] != _files(one_shot)["shard-00000.npz"]


def test_kill_and_resume_equals_one_shot_and_renders_nothing_twice(one_shot, tmp_path,
                                                                   monkeypatch):
    partial = build_dataset(_config(), tmp_path, workers=1, progress=False, max_shards=2)
    assert not partial["complete"] and len(partial["shards"]) == 2
    with pytest.raises(DatasetError, match="incomplete"):
        load_dataset(tmp_path)
    kept = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("shard-*.npz")}
    # a stray temporary file, as left by a kill during write_bytes_atomic
    (tmp_path / f".{shard_name(2)}.abc.tmp").write_bytes(b"half a shard")
    import empirical.clevr.dataset as dataset_module
    rendered = []
    original = dataset_module.render_shard
    monkeypatch.setattr(dataset_module, "render_shard",
                        lambda config, shard, out: rendered.append(shard) or
                        original(config, shard, out))
    manifest = build_dataset(_config(), tmp_path, workers=1, progress=False)
    assert manifest["complete"] and rendered == [2]
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("shard-*.npz")
            if p.name in kept} == kept
    assert _files(tmp_path) == _files(one_shot)


def test_loader_shapes_and_metadata(one_shot):
    data = load_dataset(one_shot)
    assert data.images.shape == (6, 16, 16, 3) and data.images.dtype == np.uint8
    assert data.masks.shape == (6, 16, 16) and data.masks.dtype == np.uint8
    lines = (one_shot / "metadata.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == data.metadata
    for i, meta in enumerate(data.metadata):
        assert meta["index"] == i
        assert len(meta["conditioners"]) == len(meta["objects"])  # conditioning "all"
        counts = np.bincount(data.masks[i].ravel(), minlength=len(meta["objects"]) + 1)
        assert data.masks[i].max() <= len(meta["objects"])
        assert [o["pixels"] for o in meta["objects"]] == list(counts[1:len(meta["objects"]) + 1])
    manifest = json.loads((one_shot / "manifest.json").read_text())
    assert manifest["num_images"] == 6 and manifest["conditioning"] == "all"
    assert (one_shot / "run.json").exists()


def test_torch_dataset_and_collate(one_shot):
    dataset = ClevrDataset(one_shot)
    items = [dataset[i] for i in range(len(dataset))]
    image, cond = items[0]
    assert image.shape == (3, 16, 16) and image.min() >= -1 and image.max() <= 1
    images, conds, mask = collate_sets(items)
    sizes = [len(c) for _, c in items]
    assert images.shape == (6, 3, 16, 16)
    assert conds.shape == (6, max(sizes + [1]), 2) and mask.sum(1).tolist() == sizes


def test_one_and_colour_conditioning(tmp_path):
    build_dataset(_config(num_images=4, preset="clevr1-3-one"), tmp_path / "one",
                  progress=False)
    for meta in load_dataset(tmp_path / "one").metadata:
        assert len(meta["conditioners"]) == 1
        assert meta["conditioners"][0] in [o["location"] for o in meta["objects"]]
    build_dataset(_config(num_images=2, preset="clevr1-3-colour"), tmp_path / "colour",
                  progress=False)
    for meta in load_dataset(tmp_path / "colour").metadata:
        assert meta["conditioner_colors"] == [o["color"] for o in meta["objects"]]


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_corrupted_shard_is_detected_and_named(one_shot, tmp_path, damage):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(one_shot, copy)
    shard = copy / shard_name(1)
    data = bytearray(shard.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        shard.write_bytes(bytes(data))
    elif damage == "truncate":
        shard.write_bytes(bytes(data[: len(data) // 3]))
    else:
        os.unlink(shard)
    with pytest.raises(DatasetError, match=shard_name(1)):
        load_dataset(copy)


def test_bad_inputs_raise_user_errors_before_writing(one_shot, tmp_path):
    with pytest.raises(UserError, match="--preset"):
        get_preset("nope")
    with pytest.raises(UserError, match="--resolution"):
        BuildConfig.from_preset(PRESETS["clevr1"], resolution=33)
    with pytest.raises(UserError, match="--num-images"):
        BuildConfig.from_preset(PRESETS["clevr1"], num_images=0)
    with pytest.raises(UserError, match="different settings"):
        build_dataset(_config(seed=9), one_shot, progress=False)
    (tmp_path / "junk.txt").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        build_dataset(_config(), tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.txt"]


def test_render_command_through_the_cli_parser(tmp_path, capsys):
    import argparse
    from empirical.cli.data import add_data_commands
    parser = argparse.ArgumentParser()
    add_data_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["render", "--preset", "clevr1", "--out", str(tmp_path / "d"),
                              "--num-images", "2", "--resolution", "16", "--spp", "1",
                              "--workers", "1"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["complete"] is True
    assert len(load_dataset(tmp_path / "d").metadata) == 2
    bad = parser.parse_args(["render", "--preset", "clevr1", "--out", str(tmp_path / "e"),
                             "--workers", "0"])
    with pytest.raises(UserError, match="--workers"):
        bad.func(bad)
    assert not (tmp_path / "e").exists()


# -- resume checks every kept shard against the manifest (issue 16 item 6) ------------------------

def test_resume_rerenders_a_decodable_shard_whose_sha256_differs_from_the_manifest(one_shot, tmp_path,
                                                                                   capsys):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(one_shot, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    # a readable shard with the right image count but other bytes (another shard's content)
    (copy / shard_name(1)).write_bytes((copy / shard_name(0)).read_bytes())
    build_dataset(_config(), copy, workers=1, progress=False)
    assert shard_name(1) in capsys.readouterr().err  # the warning names the shard
    assert _files(copy) == _files(one_shot)
    load_dataset(copy)


def test_a_killed_render_lists_its_finished_shards_in_the_manifest(tmp_path, monkeypatch):
    import empirical.clevr.dataset as dataset_module
    original = dataset_module.render_shard

    def render_then_die(config, shard, out):
        if shard == 1:
            raise KeyboardInterrupt  # killed while rendering the second shard
        return original(config, shard, out)

    monkeypatch.setattr(dataset_module, "render_shard", render_then_die)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(_config(), tmp_path, workers=1, progress=False)
    listed = json.loads((tmp_path / "manifest.json").read_text())["shards"]
    assert [e["file"] for e in listed] == [shard_name(0)]
    rendered = []
    monkeypatch.setattr(dataset_module, "render_shard",
                        lambda config, shard, out: rendered.append(shard) or original(config, shard, out))
    assert build_dataset(_config(), tmp_path, workers=1, progress=False)["complete"]
    assert rendered == [1, 2]


def test_render_out_at_a_file_or_unwritable_path_exits_2_with_one_line(tmp_path, capsys):
    from localcomp.cli import main
    target = tmp_path / "a_file"
    target.write_text("x")
    for out in (target, target / "under"):
        assert main(["clevr", "render", "--preset", "clevr1", "--out", str(out), "--num-images", "2",
                     "--resolution", "16", "--spp", "1", "--workers", "1"]) == 2
        err = capsys.readouterr().err
        assert "--out" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert target.read_text() == "x"


@pytest.mark.parametrize("spec", ["synthetic:5-2", "synthetic:-1-2", "synthetic:x"])
def test_a_bad_synthetic_range_exits_2_with_one_line(tmp_path, capsys, spec):
    from localcomp.cli import main
    assert main(["clevr", "train", "--experiment", "exp2", "--preset", "tiny", "--data", spec,
                 "--out", str(tmp_path / "run"), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "--data" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


# -- the framed camera (issue 11 item 2) ---------------------------------------------------------

def test_framed_camera_keeps_the_placement_square_in_view_with_its_margin():
    uv = clevr.project_to_image(clevr.PLACEMENT_CORNERS, clevr.FRAMED_CAMERA)
    assert np.abs(uv).max() == pytest.approx(1 / 1.05)      # the tightest fit, widened 5 %
    # CLEVR's camera shows the square as a thin band; the framed one fills the frame's height
    def height(camera):
        v = clevr.project_to_image(clevr.PLACEMENT_CORNERS, camera)[:, 1]
        return v.max() - v.min()
    assert height(clevr.FRAMED_CAMERA) > 1.5 * height(clevr.CLEVR_CAMERA)
    # axis-aligned: the placement square's x axis projects to the image rows' direction
    left, right = clevr.project_to_image(np.array([[-3.0, 0, 0], [3.0, 0, 0]]), clevr.FRAMED_CAMERA)
    assert left[1] == pytest.approx(right[1]) and left[0] == pytest.approx(-right[0])
    with pytest.raises(UserError, match="--camera"):
        clevr.get_camera("fisheye")


def test_framed_render_locations_match_masks_and_objects_are_larger():
    from empirical.clevr.render import load, object_id_mask, render_visible_scene, visible_pixels
    for seed in range(3):
        rendered = render_visible_scene(np.random.default_rng(seed), 1, 32, 2, seed,
                                        camera=clevr.FRAMED_CAMERA)
        rows, cols = np.nonzero(rendered.mask == 1)
        centroid = np.array([2 * (cols.mean() + 0.5) / 32 - 1, 2 * (rows.mean() + 0.5) / 32 - 1])
        assert np.abs(centroid - rendered.locations[0]).max() < 2 / 32
        assert rendered.pixels[0] >= clevr.min_visible_pixels(32)
    # the same scenes through both cameras: every scene shows more object pixels framed
    # (a narrower field of view from the same distance: about 1.6x the area)
    for seed in range(4):
        scene = clevr.sample_scene(np.random.default_rng(seed), 3)
        shown = {camera.name: visible_pixels(object_id_mask(load(scene, 32, 1, 0, camera), 32), 3).sum()
                 for camera in (clevr.CLEVR_CAMERA, clevr.FRAMED_CAMERA)}
        assert shown["framed"] > 1.3 * shown["clevr"], shown


def test_camera_is_part_of_the_dataset_settings(one_shot, tmp_path):
    manifest = json.loads((one_shot / "manifest.json").read_text())
    assert manifest["camera"] == "clevr"
    with pytest.raises(UserError, match="camera"):
        build_dataset(_config(camera="framed"), one_shot, progress=False)
    with pytest.raises(UserError, match="--camera"):
        _config(camera="fisheye")
    # a manifest written before the field existed resumes as CLEVR's camera
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for f in one_shot.iterdir():
        (legacy / f.name).write_bytes(f.read_bytes())
    del manifest["camera"]
    (legacy / "manifest.json").write_text(json.dumps(manifest))
    assert build_dataset(_config(), legacy, progress=False)["complete"]
    framed = build_dataset(_config(camera="framed"), tmp_path / "framed", progress=False)
    assert framed["camera"] == "framed" and _files(tmp_path / "framed") != _files(one_shot)
