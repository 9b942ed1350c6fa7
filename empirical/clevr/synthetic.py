"""Tiny in-memory synthetic dataset with the CLEVR dataset's interface (tests and smoke runs).

Each image holds ``n`` coloured Gaussian blobs on a grey background at uniform random locations;
item ``i`` is ``(image float32 [3, H, W] in [-1, 1], conditioners float32 [n, 2])`` with locations
``(u, v)`` in ``[-1, 1]``, ``u = 2 (col + 1/2) / W - 1`` (x right), ``v = 2 (row + 1/2) / H - 1`` (y down),
exactly as ``empirical.clevr.dataset.ClevrDataset``. Deterministic in ``seed``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


def blob_image(locations: np.ndarray, colours: np.ndarray, resolution: int, radius: float) -> np.ndarray:
    """Grey background (value -0.2) plus one Gaussian blob per location.

    ``locations [n, 2]`` in ``[-1, 1]``, ``colours [n, 3]`` in ``[-1, 1]``, blob std ``radius`` in
    pixels. Returns ``[3, H, W]`` float32 in ``[-1, 1]`` (blobs composited by their alpha).
    """
    t = np.arange(resolution) + 0.5
    image = np.full((3, resolution, resolution), -0.2, dtype=np.float32)
    for (u, v), colour in zip(locations, colours):
        col, row = (u + 1) / 2 * resolution, (v + 1) / 2 * resolution
        alpha = np.exp(-((t[None, :] - col) ** 2 + (t[:, None] - row) ** 2) / (2 * radius ** 2))
        image = image * (1 - alpha) + colour[:, None, None] * alpha
    return np.clip(image, -1, 1).astype(np.float32)


class BlobDataset(Dataset):
    """``size`` images of ``resolution`` px with ``min_objects..max_objects`` blobs each."""

    def __init__(self, size: int = 64, resolution: int = 16, min_objects: int = 1, max_objects: int = 3,
                 radius: float | None = None, seed: int = 0):
        rng = np.random.default_rng(seed)
        radius = radius if radius is not None else resolution / 16
        self.items = []
        for _ in range(size):
            n = int(rng.integers(min_objects, max_objects + 1))
            locations = rng.uniform(-0.85, 0.85, size=(n, 2)).astype(np.float32)
            colours = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
            image = blob_image(locations, colours, resolution, radius)
            self.items.append((torch.from_numpy(image), torch.from_numpy(locations)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]
