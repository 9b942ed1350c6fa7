"""Sampling a trained denoiser for sets of locations, and writing sample grids.

``sample_for_sets(model, location_sets, ...)`` runs the Heun sampler (``empirical.models.edm``) for every
requested set of locations ``[K_i, 2]`` (``(u, v)`` in ``[-1, 1]``, ``u`` right, ``v`` down), ``n`` samples
each, in batches. Grids are PNG (one row per set); :func:`mark_locations` can put a red pixel at each
requested location.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from localcomp.errors import UserError
from localcomp.provenance import write_bytes_atomic

from empirical.models import edm


def parse_locations(text: str) -> torch.Tensor:
    """``"u1,v1;u2,v2;..."`` -> ``[K, 2]`` float32; ``""`` is the empty set. Raises UserError."""
    text = text.strip()
    if not text:
        return torch.zeros(0, 2)
    pairs = []
    for i, item in enumerate(text.split(";")):
        try:
            u, v = (float(t) for t in item.split(","))
        except ValueError:
            raise UserError(f"--locations: item {i + 1} {item!r} is not 'u,v' (two numbers)") from None
        if not (-1 <= u <= 1 and -1 <= v <= 1):
            raise UserError(f"--locations: item {i + 1} ({u}, {v}) is outside [-1, 1]^2")
        pairs.append((u, v))
    return torch.tensor(pairs, dtype=torch.float32)


@torch.no_grad()
def sample_for_sets(model, location_sets: list[torch.Tensor], resolution: int, samples_per_set: int = 1,
                    num_steps: int = 18, seed: int = 0, batch_size: int = 16, churn: float = 0.0,
                    progress: bool = False) -> torch.Tensor:
    """Samples ``[len(sets) * n, 3, H, W]`` in ``[-1, 1]`` (set-major order) for ``D(x, sigma, cond, mask)``.

    Sample ``j`` of set ``i`` uses noise seeded by ``(seed, i, j)``, so results do not depend on the
    batching.
    """
    from tqdm import tqdm

    jobs = [(i, j) for i in range(len(location_sets)) for j in range(samples_per_set)]
    sigmas = edm.karras_sigmas(num_steps)
    device = next(model.parameters()).device if isinstance(model, torch.nn.Module) else torch.device("cpu")
    outputs = []
    for start in tqdm(range(0, len(jobs), batch_size), disable=not progress, desc="sample", unit="batch"):
        chunk = jobs[start:start + batch_size]
        kmax = max(location_sets[i].shape[0] for i, _ in chunk)
        width = location_sets[chunk[0][0]].shape[-1] if location_sets[chunk[0][0]].ndim == 2 else 2
        cond = torch.zeros(len(chunk), kmax, width)  # width 8: one-hot colour sets
        mask = torch.zeros(len(chunk), kmax, dtype=torch.bool)
        noise = torch.empty(len(chunk), 3, resolution, resolution)
        for row, (i, j) in enumerate(chunk):
            k = location_sets[i].shape[0]
            cond[row, :k], mask[row, :k] = location_sets[i], True
            g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, i, j]).generate_state(1)[0]))
            noise[row] = torch.randn(3, resolution, resolution, generator=g)

        cond, mask = cond.to(device), mask.to(device)

        def denoise(x, sigma, cond=cond, mask=mask):
            return model(x, sigma, cond, mask)

        outputs.append(edm.heun_sample(denoise, noise.to(device), sigmas, churn=churn).cpu())
    return torch.cat(outputs).clamp(-1, 1)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``[N, 3, H, W]`` in ``[-1, 1]`` -> ``[N, H, W, 3]`` uint8."""
    return ((images.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)


def mark_locations(image: np.ndarray, locations: torch.Tensor) -> np.ndarray:
    """Copy of ``image [H, W, 3]`` with a red pixel at each requested location."""
    out = image.copy()
    h, w = out.shape[:2]
    for u, v in locations.tolist():
        col = min(int((u + 1) / 2 * w), w - 1)
        row = min(int((v + 1) / 2 * h), h - 1)
        out[row, col] = (255, 0, 0)
    return out


def image_grid(images: np.ndarray, ncols: int, pad: int = 2) -> np.ndarray:
    """Tile ``[N, H, W, 3]`` uint8 into one ``[rows (H+pad)+pad, cols (W+pad)+pad, 3]`` image (white gaps)."""
    n, h, w, _ = images.shape
    nrows = -(-n // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, ncols)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = image
    return grid


def write_png(path, array: np.ndarray, scale: int = 1) -> None:
    """Atomic PNG write of ``[H, W, 3]`` uint8, nearest-neighbour upscaled by ``scale``."""
    from PIL import Image
    if scale > 1:
        array = array.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    write_bytes_atomic(Path(path), buffer.getvalue())
