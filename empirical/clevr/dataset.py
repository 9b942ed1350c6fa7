"""CLEVR datasets on disk: sharded rendering (parallel, resumable, deterministic) and loading.

Layout of a dataset directory::

    manifest.json      {"preset", "resolution", "seed", "num_images", "conditioning", "spp",
                        "min_objects", "max_objects", "shard_size", "camera", "complete",
                        "shards": [{"file": "shard-00000.npz", "sha256": ..., "count": ...}]}
    shard-NNNNN.npz    images uint8 [N, H, W, 3], masks uint8 [N, H, W] (0 background,
                       j+1 object j), metadata uint8 bytes (JSON list, one entry per image)
    metadata.jsonl     one JSON object per image, in index order
    run.json           provenance

Image ``i`` lives in shard ``i // shard_size``. Every image is a pure function of
``(seed, i)`` and the preset (its generator is seeded by ``SeedSequence([seed, i])``), so the
same seed gives the same bytes whatever the worker count or the order shards finish in.
Shards are written atomically and the manifest lists each one (with its SHA-256) as soon as it
is written. A resumed run keeps a shard on disk only when its bytes match the SHA-256 its
manifest lists; a shard whose bytes differ (damaged, or replaced by hand) is rendered again
(rendering is deterministic, so the dataset ends up with the right bytes) and a warning names
it; a shard on disk that the manifest does not list (a kill between the shard's write and the
manifest's) cannot be verified and is rendered again. So a killed run loses at most the shards
in flight and renders nothing twice that it kept.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import zipfile
from dataclasses import dataclass, asdict
from pathlib import Path

import numpy as np

from empirical.clevr.presets import CONDITIONING_MODES, DataPreset
from empirical.clevr.scene import get_camera
from localcomp.errors import UserError
from localcomp.provenance import (check_writable_dir, write_bytes_atomic, write_json_atomic,
                                  write_run_record)

MANIFEST = "manifest.json"
METADATA = "metadata.jsonl"
RESOLUTIONS = (16, 32, 48, 64, 128)
#: the value a manifest written before a field existed stands for
LEGACY_MANIFEST_DEFAULTS = {"camera": "clevr"}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class DatasetError(UserError):
    """A dataset on disk is missing, corrupted or truncated (the message names the file)."""


@dataclass(frozen=True)
class BuildConfig:
    """Everything that determines a dataset's bytes."""

    preset: str
    min_objects: int
    max_objects: int
    conditioning: str
    num_images: int
    resolution: int
    spp: int
    seed: int
    shard_size: int
    #: the camera's name in :data:`empirical.clevr.scene.CAMERAS` ("framed": issue 11's framing)
    camera: str = "clevr"

    @classmethod
    def from_preset(cls, preset: DataPreset, num_images: int | None = None,
                    resolution: int | None = None, spp: int | None = None, seed: int = 0,
                    shard_size: int | None = None, camera: str = "clevr") -> "BuildConfig":
        config = cls(preset.name, preset.min_objects, preset.max_objects, preset.conditioning,
                     preset.num_images if num_images is None else int(num_images),
                     preset.resolution if resolution is None else int(resolution),
                     preset.spp if spp is None else int(spp), int(seed),
                     preset.shard_size if shard_size is None else int(shard_size), str(camera))
        config.validate()
        return config

    def validate(self) -> None:
        if self.num_images < 1:
            raise UserError(f"--num-images: must be >= 1, got {self.num_images}")
        if self.resolution not in RESOLUTIONS:
            raise UserError(f"--resolution: must be one of {RESOLUTIONS}, got {self.resolution}")
        if self.spp < 1:
            raise UserError(f"--spp: must be >= 1, got {self.spp}")
        if not 0 <= self.seed < 2**32:
            raise UserError(f"--seed: must be in [0, 2^32), got {self.seed}")
        if self.shard_size < 1:
            raise UserError(f"shard_size: must be >= 1, got {self.shard_size}")
        if not 0 <= self.min_objects <= self.max_objects <= 20:
            raise UserError(f"object range: need 0 <= min <= max <= 20, got "
                            f"{self.min_objects}..{self.max_objects}")
        if self.conditioning not in CONDITIONING_MODES:
            raise UserError(f"conditioning: must be one of {CONDITIONING_MODES}")
        get_camera(self.camera)  # UserError naming --camera and the known cameras

    @property
    def num_shards(self) -> int:
        return -(-self.num_images // self.shard_size)

    def shard_indices(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.num_images))


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}.npz"


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index``: seeded from (seed, index) only."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def render_one(config: BuildConfig, index: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Render image ``index``: (image uint8 [R, R, 3], mask uint8 [R, R], metadata dict)."""
    from empirical.clevr.render import render_visible_scene

    rng = image_rng(config.seed, index)
    num_objects = int(rng.integers(config.min_objects, config.max_objects + 1))
    render_seed = int(rng.integers(0, 2**31))
    rendered = render_visible_scene(rng, num_objects, config.resolution, config.spp, render_seed,
                                    camera=get_camera(config.camera))
    objects = rendered.object_records()
    if config.conditioning == "one" and objects:
        chosen = [int(rng.integers(len(objects)))]
    else:
        chosen = list(range(len(objects)))
    meta = {"index": int(index), "objects": objects,
            "conditioners": [objects[j]["location"] for j in chosen],
            "conditioner_objects": chosen}
    if config.conditioning == "colour":
        meta["conditioner_colors"] = [objects[j]["color"] for j in chosen]
    return rendered.image, rendered.mask, meta


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def encode_shard(images: np.ndarray, masks: np.ndarray, metadata: list[dict]) -> bytes:
    """A deterministic ``.npz`` (fixed zip timestamps, deflate) holding images, masks and the
    metadata list as UTF-8 JSON bytes."""
    meta = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in (("images", images), ("masks", masks), ("metadata", meta)):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, _npy_bytes(array))
    return buffer.getvalue()


def decode_shard(data: bytes, name: str = "shard") -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Inverse of :func:`encode_shard`; DatasetError naming ``name`` if unreadable."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            images, masks = npz["images"], npz["masks"]
            metadata = json.loads(npz["metadata"].tobytes().decode())
    except Exception as error:  # zip, npy and JSON errors all mean a damaged shard
        raise DatasetError(f"{name}: unreadable shard ({type(error).__name__}: {error})") from error
    if images.ndim != 4 or masks.shape != images.shape[:3] or len(metadata) != len(images):
        raise DatasetError(f"{name}: inconsistent arrays (images {images.shape}, masks "
                           f"{masks.shape}, {len(metadata)} metadata entries)")
    return images, masks, metadata


def render_shard(config: BuildConfig, shard: int, out_dir: str) -> dict:
    """Render every image of ``shard`` and write it atomically; returns its manifest entry."""
    try:
        import drjit
        drjit.set_thread_count(1)  # one process per core; no oversubscription
    except (ImportError, AttributeError):
        pass
    images, masks, metadata = [], [], []
    for index in config.shard_indices(shard):
        image, mask, meta = render_one(config, index)
        images.append(image)
        masks.append(mask)
        metadata.append(meta)
    data = encode_shard(np.stack(images), np.stack(masks), metadata)
    write_bytes_atomic(Path(out_dir) / shard_name(shard), data)
    return {"file": shard_name(shard), "sha256": hashlib.sha256(data).hexdigest(),
            "count": len(images)}


def _render_shard_job(job: tuple[BuildConfig, int, str]) -> tuple[int, dict]:
    config, shard, out_dir = job
    return shard, render_shard(config, shard, out_dir)


def _existing_shard_entry(config: BuildConfig, out_dir: Path, shard: int,
                          listed: dict | None) -> dict | None:
    """The manifest entry of a shard already on disk whose bytes match ``listed`` (its entry in
    the manifest left by the earlier run), or None if it must be rendered (absent, unlisted,
    SHA-256 or count mismatch, undecodable)."""
    path = out_dir / shard_name(shard)
    if not path.exists():
        return None
    if listed is None:
        return None  # not in the manifest: written by a run killed before it could list it
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != listed.get("sha256") or listed.get("count") != len(config.shard_indices(shard)):
        print(f"warning: {path}: SHA-256 differs from {MANIFEST} (damaged or replaced shard); "
              f"rendering it again", file=sys.stderr)
        return None
    try:
        images, _, _ = decode_shard(data, path.name)
    except DatasetError:
        return None
    if len(images) != len(config.shard_indices(shard)):
        return None
    return {"file": path.name, "sha256": digest, "count": len(images)}


def manifest_header(config: BuildConfig) -> dict:
    return {**asdict(config), "version": 1}


def build_dataset(config: BuildConfig, out_dir: str | os.PathLike, workers: int = 1,
                  progress: bool = True, max_shards: int | None = None) -> dict:
    """Render (or finish rendering) the dataset described by ``config`` into ``out_dir``.

    ``max_shards`` stops after that many newly rendered shards (used to simulate a killed
    run). Returns the manifest (``complete`` is False if stopped early).
    """
    from tqdm import tqdm

    config.validate()
    out = Path(out_dir)
    check_writable_dir(out, "--out")  # a file, or a path under one, or no permission: exit 2
    header = manifest_header(config)
    manifest_path = out / MANIFEST
    listed: dict[str, dict] = {}
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as error:
            raise DatasetError(f"{manifest_path}: corrupted manifest ({error}); choose another "
                               f"directory") from error
        listed = {e.get("file"): e for e in old.get("shards", []) if isinstance(e, dict)}
        differing = [k for k in header if old.get(k, LEGACY_MANIFEST_DEFAULTS.get(k)) != header[k]]
        if differing:
            raise UserError(f"--out: {out} holds a dataset with different settings "
                            f"({', '.join(differing)}); choose another directory")
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"--out: {out} exists, is not empty and holds no {MANIFEST}")
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[int, dict] = {}
    todo = []
    for shard in range(config.num_shards):
        entry = _existing_shard_entry(config, out, shard, listed.get(shard_name(shard)))
        if entry is None:
            todo.append(shard)
        else:
            entries[shard] = entry
    if max_shards is not None:
        todo = todo[:max_shards]

    def record_progress() -> None:  # the manifest lists every shard on disk, as soon as it is
        write_json_atomic(manifest_path, {**header, "complete": False,
                                          "shards": [entries[s] for s in sorted(entries)]})

    record_progress()
    jobs = [(config, shard, str(out)) for shard in todo]
    bar = tqdm(total=config.num_images, initial=sum(e["count"] for e in entries.values()),
               desc=f"render {config.preset}", unit="img", disable=not progress)
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp
        with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            for shard, entry in pool.imap_unordered(_render_shard_job, jobs):
                entries[shard] = entry
                record_progress()
                bar.update(entry["count"])
    else:
        for job in jobs:
            shard, entry = _render_shard_job(job)
            entries[shard] = entry
            record_progress()
            bar.update(entry["count"])
    bar.close()
    complete = len(entries) == config.num_shards
    manifest = {**header, "complete": complete,
                "shards": [entries[s] for s in sorted(entries)]}
    if complete:
        lines = []
        for entry in manifest["shards"]:
            _, _, metadata = decode_shard((out / entry["file"]).read_bytes(), entry["file"])
            lines.extend(json.dumps(m, sort_keys=True) for m in metadata)
        write_bytes_atomic(out / METADATA, ("\n".join(lines) + "\n").encode())
        write_run_record(out, config=config, seed=config.seed)
    write_json_atomic(manifest_path, manifest)
    return manifest


@dataclass
class ClevrData:
    """A loaded dataset: ``images`` uint8 [N, H, W, 3], ``masks`` uint8 [N, H, W],
    ``metadata`` list of N dicts, ``manifest`` dict."""

    images: np.ndarray
    masks: np.ndarray
    metadata: list[dict]
    manifest: dict


def load_dataset(path: str | os.PathLike) -> ClevrData:
    """Load and verify a dataset: every shard's SHA-256 and count must match the manifest,
    else a :class:`DatasetError` naming the shard."""
    root = Path(path)
    manifest_path = root / MANIFEST
    if not manifest_path.exists():
        raise DatasetError(f"{root}: no {MANIFEST}; not a dataset directory")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise DatasetError(f"{manifest_path}: corrupted manifest ({error})") from error
    if not manifest.get("complete", False):
        raise DatasetError(f"{root}: dataset is incomplete; rerun `localcomp clevr render` "
                           f"with the same arguments to finish it")
    images, masks, metadata = [], [], []
    for entry in manifest["shards"]:
        shard_path = root / entry["file"]
        if not shard_path.exists():
            raise DatasetError(f"{shard_path}: shard listed in the manifest is missing")
        data = shard_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise DatasetError(f"{shard_path}: SHA-256 mismatch (corrupted or truncated shard; "
                               f"{len(data)} bytes on disk)")
        shard_images, shard_masks, shard_meta = decode_shard(data, str(shard_path))
        if len(shard_images) != entry["count"]:
            raise DatasetError(f"{shard_path}: holds {len(shard_images)} images, manifest says "
                               f"{entry['count']}")
        images.append(shard_images)
        masks.append(shard_masks)
        metadata.extend(shard_meta)
    if len(metadata) != manifest["num_images"]:
        raise DatasetError(f"{root}: {len(metadata)} images on disk, manifest says "
                           f"{manifest['num_images']}")
    return ClevrData(np.concatenate(images), np.concatenate(masks), metadata, manifest)


def _torch_dataset_base():
    import torch.utils.data
    return torch.utils.data.Dataset


class ClevrDataset(_torch_dataset_base()):
    """Torch dataset over :func:`load_dataset`: item i is ``(image float32 [3, H, W] in
    [-1, 1] (= x/127.5 - 1), conditioners float32 [K_i, 2])``."""

    def __init__(self, path: str | os.PathLike):
        self.data = load_dataset(path)

    def __len__(self) -> int:
        return len(self.data.metadata)

    def __getitem__(self, i: int):
        import torch
        image = torch.from_numpy(self.data.images[i]).permute(2, 0, 1).float() / 127.5 - 1.0
        conditioners = torch.tensor(self.data.metadata[i]["conditioners"],
                                    dtype=torch.float32).reshape(-1, 2)
        return image, conditioners


def collate_sets(batch):
    """Pad variable-size conditioner sets: returns ``images [B, 3, H, W]``, ``conditioners
    [B, Kmax, 2]`` (``[B, Kmax, 8]`` for colour sets; zeros where padded) and ``mask [B, Kmax]`` bool (True = real)."""
    import torch
    images = torch.stack([item[0] for item in batch])
    kmax = max([len(item[1]) for item in batch] + [1])
    width = batch[0][1].shape[-1] if batch and batch[0][1].ndim == 2 else 2  # 8 for colour sets
    conditioners = torch.zeros(len(batch), kmax, width)
    mask = torch.zeros(len(batch), kmax, dtype=torch.bool)
    for b, (_, cond) in enumerate(batch):
        conditioners[b, :len(cond)] = cond
        mask[b, :len(cond)] = True
    return images, conditioners, mask


def contact_sheet(data: ClevrData, path: str | os.PathLike, columns: int = 8, rows: int = 2,
                  scale: int = 2, mark_locations: bool = True) -> None:
    """Write a PNG grid of the first ``columns*rows`` images (upscaled by ``scale``), with a
    one-pixel white dot at every conditioner location when ``mark_locations``."""
    import matplotlib.image

    count = min(columns * rows, len(data.images))
    size = data.images.shape[1] * scale
    sheet = np.full((rows * (size + 2), columns * (size + 2), 3), 255, dtype=np.uint8)
    for i in range(count):
        tile = np.kron(data.images[i], np.ones((scale, scale, 1), dtype=np.uint8))
        if mark_locations:
            for u, v in data.metadata[i]["conditioners"]:
                col = int(np.clip((u + 1) / 2 * size, 0, size - 1))
                row = int(np.clip((v + 1) / 2 * size, 0, size - 1))
                tile[row, col] = (255, 255, 255)
        r, c = divmod(i, columns)
        sheet[r * (size + 2):r * (size + 2) + size, c * (size + 2):c * (size + 2) + size] = tile
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, sheet, format="png")
    write_bytes_atomic(path, buffer.getvalue())
