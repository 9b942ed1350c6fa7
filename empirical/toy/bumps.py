"""Bump-image families as torch data: exact samples, exact denoisers, object counting.

The family is numerics' bump family (``numerics.experiments.bumps``) lifted to 3 channels so
that the CLEVR denoisers (``SetUNet``, ``PatchLocalDenoiser``, 3-channel images) run on it
unchanged. An ``S x S`` image (default 8 x 8) is tiled by ``G x G`` cells of 2 x 2 pixels,
``G = S / 2``; cell ``n = row * G + col`` is a conditioner location with mask = its 4 pixels,
given to the models as its centre ``(u, v) = (2 (col + 1/2) / G - 1, 2 (row + 1/2) / G - 1)``.
Every cell is an independent block (a 2-component isotropic mixture on its ``4 * 3``
coordinates, std ``bumps.NOISE_STD`` per coordinate, the same value in the 3 channels):

* ``null``: a dim cell (both components mean 0): the cell holds no object;
* ``bump``: numerics' bump (a full 2 x 2 pattern of brightness 1, or the diagonal pattern
  with 0.6 off the diagonal): the cell holds an object;
* ``shadow`` (near-CPC variant only): the null block shifted by ``-shadow``; a cell with no
  object whose left neighbour holds one is in that object's shadow.

``p(x | c_J)`` puts ``bump`` on the cells of ``J`` and ``null`` (or ``shadow``) elsewhere.
With ``shadow = 0`` this is exactly CPC (``families.cpc_family``). With ``shadow > 0`` an
object changes a background block outside its mask (like a CLEVR shadow) and an object
occludes the shadow cast on it: the background depends on the conditioners, so the family is
not conditionally local (not CPC) w.r.t. the cell masks, and the composed score
``s(x|{}) + sum_j [s(x|{c_j}) - s(x|{})]`` (T4) is wrong exactly where objects are
horizontal neighbours.

Coordinates: the numerics family is pixel-major over ``S * S`` pixels (pixel ``p = row * S +
col`` owns coordinates ``3p .. 3p + 2``); torch images are ``[B, 3, S, S]``; per-cell vectors
``[B, N, 12]`` list the 4 pixels in row-major order within the cell, channels innermost,
which is the order of ``families.pixel_coords`` on the cell's mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from numerics.experiments.bumps import NOISE_STD, cell_masks, on_cells

CHANNELS = 3
NULL, BUMP, SHADOW = 0, 1, 2
BUMP_PATTERNS = ((1.0, 1.0, 1.0, 1.0), (1.0, 0.6, 0.6, 1.0))  # as in numerics' bump_blocks


@dataclass(frozen=True)
class BumpFamily:
    """``size``: image side in pixels (even, >= 4); ``shadow``: darkening of the cell right of
    an object (0 = the CPC family)."""
    size: int = 8
    shadow: float = 0.0

    def __post_init__(self):
        if self.size < 4 or self.size % 2:
            raise ValueError(f"size must be an even integer >= 4, got {self.size}")
        if self.shadow < 0:
            raise ValueError(f"shadow must be >= 0, got {self.shadow}")

    @property
    def grid(self) -> int:
        return self.size // 2

    @property
    def num_cells(self) -> int:
        return self.grid ** 2

    @property
    def block_dim(self) -> int:
        return 4 * CHANNELS

    @property
    def name(self) -> str:
        return "cpc" if self.shadow == 0 else f"shadow{self.shadow:g}"


# -- block parameters ------------------------------------------------------------------------------

def block_means(family: BumpFamily) -> np.ndarray:
    """Component means ``[3 states (null, bump, shadow), 2 components, 12]`` of one cell's block
    (pixel-major within the cell, the same value in every channel)."""
    null = np.zeros((2, 4))
    bump = np.array(BUMP_PATTERNS)
    states = np.stack([null, bump, null - family.shadow])
    return np.repeat(states, CHANNELS, axis=-1)


BLOCK_WEIGHTS = np.array([0.5, 0.5])
BLOCK_VAR = NOISE_STD ** 2


def cell_states(family: BumpFamily, present: torch.Tensor) -> torch.Tensor:
    """``present [B, N]`` bool (cell holds an object) -> state per cell ``[B, N]`` (long):
    ``BUMP`` where present, else ``SHADOW`` if the left neighbour is present and the family has
    shadows, else ``NULL``."""
    g = family.grid
    grid = present.view(-1, g, g)
    left = torch.zeros_like(grid)
    left[:, :, 1:] = grid[:, :, :-1]
    states = torch.full_like(grid, NULL, dtype=torch.long)
    if family.shadow > 0:
        states[left & ~grid] = SHADOW
    states[grid] = BUMP
    return states.view(present.shape)


# -- layout: image <-> cells <-> numerics' flat coordinates ---------------------------------------

def image_to_cells(images: torch.Tensor, grid: int) -> torch.Tensor:
    """``[B, C, S, S]`` -> ``[B, G*G, 4*C]`` (cells row-major; pixels row-major within a cell,
    channels innermost)."""
    b, c = images.shape[:2]
    t = images.reshape(b, c, grid, 2, grid, 2).permute(0, 2, 4, 3, 5, 1)
    return t.reshape(b, grid * grid, 4 * c)


def cells_to_image(cells: torch.Tensor, grid: int) -> torch.Tensor:
    """Inverse of :func:`image_to_cells`: ``[B, G*G, 4*C]`` -> ``[B, C, 2G, 2G]``."""
    b = cells.shape[0]
    c = cells.shape[-1] // 4
    t = cells.reshape(b, grid, grid, 2, 2, c).permute(0, 5, 1, 3, 2, 4)
    return t.reshape(b, c, 2 * grid, 2 * grid)


def image_to_flat(images: torch.Tensor) -> torch.Tensor:
    """``[B, C, S, S]`` -> numerics' pixel-major ``[B, S*S*C]``."""
    return images.permute(0, 2, 3, 1).reshape(images.shape[0], -1)


def flat_to_image(flat: torch.Tensor, size: int) -> torch.Tensor:
    """numerics' pixel-major ``[B, S*S*C]`` -> ``[B, C, S, S]``."""
    return flat.reshape(flat.shape[0], size, size, CHANNELS).permute(0, 3, 1, 2)


# -- conditioners ------------------------------------------------------------------------------------

def cell_locations(grid: int) -> torch.Tensor:
    """Centre ``(u, v)`` in ``[-1, 1]`` of every cell, ``[G*G, 2]`` (cell ``n = row * G + col``)."""
    t = 2 * (torch.arange(grid, dtype=torch.float32) + 0.5) / grid - 1
    v, u = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([u.flatten(), v.flatten()], dim=1)


def conditioners(cells: torch.Tensor, family: BumpFamily):
    """Padded cell indices ``cells [B, K]`` (-1 = padding) -> ``(cond [B, K, 2], mask [B, K])``."""
    mask = cells >= 0
    cond = cell_locations(family.grid)[cells.clamp(min=0)] * mask[..., None]
    return cond, mask


def present_cells(cond: torch.Tensor, mask: torch.Tensor, family: BumpFamily) -> torch.Tensor:
    """``cond [B, K, 2]``, ``mask [B, K]`` -> ``present [B, N]`` bool: the cells the locations fall in."""
    g = family.grid
    col_row = ((cond + 1) / 2 * g).floor().clamp(0, g - 1).long()
    index = col_row[..., 1] * g + col_row[..., 0]
    present = torch.zeros(cond.shape[0], family.num_cells, dtype=torch.bool)
    rows = torch.arange(cond.shape[0])[:, None].expand_as(index)
    present[rows[mask], index[mask]] = True
    return present


def random_sets(batch: int, num_objects: torch.Tensor, family: BumpFamily,
                generator: torch.Generator) -> torch.Tensor:
    """Uniformly random sets of distinct cells: ``num_objects [B]`` sizes -> padded indices
    ``[B, max size]`` (-1 = padding)."""
    order = torch.rand(batch, family.num_cells, generator=generator).argsort(dim=1)
    width = int(num_objects.max()) if batch else 0
    cells = order[:, :width].clone()
    cells[torch.arange(width)[None, :] >= num_objects[:, None]] = -1
    return cells


def cells_to_present(cells: torch.Tensor, family: BumpFamily) -> torch.Tensor:
    """Padded indices ``[B, K]`` -> ``present [B, N]`` bool."""
    present = torch.zeros(cells.shape[0], family.num_cells + 1, dtype=torch.bool)
    present.scatter_(1, torch.where(cells >= 0, cells, family.num_cells), True)
    return present[:, :-1]


# -- exact samples and denoisers ---------------------------------------------------------------------

def sample_images(family: BumpFamily, present: torch.Tensor, generator: torch.Generator,
                  dtype=torch.float32) -> torch.Tensor:
    """Exact samples of ``p(x | c_J)``, one per row of ``present [B, N]``: ``[B, 3, S, S]``."""
    means = torch.as_tensor(block_means(family), dtype=torch.float64)
    states = cell_states(family, present)
    comp = torch.multinomial(torch.as_tensor(BLOCK_WEIGHTS), states.numel(), replacement=True,
                             generator=generator).view(states.shape)
    noise = torch.randn(*states.shape, family.block_dim, generator=generator, dtype=torch.float64)
    cells = means[states, comp] + NOISE_STD * noise
    return cells_to_image(cells, family.grid).to(dtype)


def denoise_states(family: BumpFamily, x: torch.Tensor, sigma: torch.Tensor,
                   states: torch.Tensor) -> torch.Tensor:
    """Exact Tweedie denoiser ``E[x_0 | x]`` of the block product with the given cell states.

    ``x [B, 3, S, S]``, ``sigma [B]``, ``states [B, N]``. Per cell block (components ``k`` with
    weight ``w_k``, mean ``mu_k``, covariance ``v I``; noised covariance ``(v + sigma^2) I``):
    ``D = sum_k r_k (mu_k + v / (v + sigma^2) (x - mu_k))``,
    ``r_k ∝ w_k exp(-|x - mu_k|^2 / (2 (v + sigma^2)))``. Computed in float64.
    """
    dtype = x.dtype
    cells = image_to_cells(x.double(), family.grid)                       # [B, N, D]
    means = torch.as_tensor(block_means(family))[states]                  # [B, N, 2, D]
    total = (BLOCK_VAR + sigma.double() ** 2)[:, None, None]              # [B, 1, 1]
    diff = cells[:, :, None, :] - means
    logits = torch.as_tensor(np.log(BLOCK_WEIGHTS)) - 0.5 * (diff ** 2).sum(-1) / total
    resp = torch.softmax(logits, dim=-1)                                   # [B, N, 2]
    posterior = means + (BLOCK_VAR / total)[..., None] * diff
    out = (resp[..., None] * posterior).sum(dim=2)
    return cells_to_image(out, family.grid).to(dtype)


class ExactDenoiser:
    """The exact denoiser of the family, ``D(x [B,3,S,S], sigma [B], cond [B,K,2], mask [B,K])``,
    the same call as the learned models. ``composed=True``: the composition operator
    ``D(x|{}) + sum_j [D(x|{c_j}) - D(x|{})]`` (T4 / 2502.04549 Def. 5.1 with the null model as
    background), built from the exact singleton and null denoisers; equal to the true denoiser
    for the CPC family, not for the shadow family."""

    def __init__(self, family: BumpFamily, composed: bool = False):
        self.family = family
        self.composed = composed

    def __call__(self, x, sigma, cond, mask):
        fam = self.family
        if not self.composed:
            return denoise_states(fam, x, sigma, cell_states(fam, present_cells(cond, mask, fam)))
        empty = torch.zeros(x.shape[0], fam.num_cells, dtype=torch.bool)
        null = denoise_states(fam, x, sigma, cell_states(fam, empty))
        out = null.clone()
        for j in range(cond.shape[1]):
            single = present_cells(cond[:, j:j + 1], mask[:, j:j + 1], fam)
            delta = denoise_states(fam, x, sigma, cell_states(fam, single)) - null
            out = out + delta * mask[:, j, None, None, None]
        return out


# -- the numerics family (reference for tests and the run's self-check) ------------------------------

def numerics_model(family: BumpFamily, present: np.ndarray):
    """The ``numerics`` block-product model of ``p(x | c_J)`` for one set (``present [N]`` bool),
    over ``S*S*3`` pixel-major coordinates, via ``families.cpc_family`` with the set's null blocks
    (shadowed where a left neighbour holds an object)."""
    from numerics import families
    from numerics.gmm import isotropic_mixture

    masks = cell_masks(family.size)              # "r{i}c{j}" -> 4 pixel indices
    means = block_means(family)
    states = cell_states(family, torch.as_tensor(present)[None])[0].numpy()
    ids = {f"r{n // family.grid}c{n % family.grid}": n for n in range(family.num_cells)}
    block = {s: isotropic_mixture(BLOCK_WEIGHTS, means[s], BLOCK_VAR) for s in (NULL, BUMP, SHADOW)}
    null_blocks = {c: block[SHADOW if states[n] == SHADOW else NULL] for c, n in ids.items()}
    singletons = {c: block[BUMP] for c in ids}
    J = frozenset(c for c, n in ids.items() if present[n])
    fam = families.cpc_family(family.size ** 2, CHANNELS, masks, null_blocks, singletons, None, sets=[J])
    return fam.models[J]


# -- counting objects ---------------------------------------------------------------------------------

def found_cells(images: torch.Tensor, family: BumpFamily) -> list[set[int]]:
    """Per image the set of cells whose mean intensity (4 pixels x 3 channels) exceeds
    ``bumps.THRESHOLD`` (numerics' ``on_cells`` on the channel mean)."""
    gray = images.double().mean(dim=1).reshape(images.shape[0], -1).numpy()   # [B, S*S]
    masks = cell_masks(family.size)
    index = {f"r{n // family.grid}c{n % family.grid}": n for n in range(family.num_cells)}
    return [{index[c] for c in found} for found in on_cells(gray, masks)]

