"""Patch-local denoiser (Exp.2L / Exp.3L; SCIENCE.md §6): local by construction.

The ``H x W`` image is split into a ``G x G`` grid of cells (``G = 16``, cell side ``s = H / G``).
The denoised value of cell ``(r, c)`` is computed from its patch: the ``(2k+1) x (2k+1)`` cells
centred on it (side ``P = (2k+1) s`` pixels). The network sees only

* the noisy patch (times ``c_in``), plus a validity channel (1 inside the image, 0 in padding),
* the conditioners whose cell lies inside the patch, in patch-relative coordinates
  ``(loc - centre) / ((2k+1) / G)`` (in ``(-1, 1)``); the others are masked out,
* the patch centre's absolute coordinates ``(u_c, v_c) = (2 (c + 1/2) / G - 1, 2 (r + 1/2) / G - 1)``,
* the noise level ``sigma``,

and only its centre cell is written back: ``D(x)[cell] = c_skip x[cell] + c_out F(patch)[centre]``.
All ``B G^2`` patches are cut with ``unfold`` and run through the network in one batched forward
(in chunks of ``chunk_size`` patches, which bounds memory and keeps a CPU's working set in cache;
chunking does not change the result).

Borders: patches reaching outside the image are **zero-padded** (zero is mid-grey in ``[-1, 1]``);
the validity channel tells the network which pixels are padding, so zero padding is not mistaken
for image content. (Replicate padding would copy border content into the patch and make the
padding indistinguishable from a scene; zero padding plus a mask is the cleaner signal.)

``k = 8`` (the paper's control) makes the patch 17 cells wide, larger than the 16-cell image: a
centre cell's patch covers the whole image and every patch covers at least 9 of 16 cells per axis.

The network ``F`` is a :class:`~empirical.models.unet.SetUNet` on the patch (zero-padded to a size the
UNet's down-sampling divides), with ``extra_cond_dim = 2`` for the centre coordinates and attention
(self- and cross-) at its lowest resolution and in its middle block (``net.attn_resolutions`` is
overridden accordingly; the patch is small, so this reaches every pixel of it). Its
``cond_mode`` is ``tokens`` (Exp.2L) or ``global`` (Exp.3L: the Exp.3 construction made local).

Training (per image): one patch whose area contains a conditioner and one that contains none, each
with its own sigma and noise; the EDM loss on the centre cell, averaged over the two. (If no patch
of an image contains a conditioner, e.g. the empty set, or every patch does, e.g. k = 8, the
missing kind is replaced by a uniformly drawn patch.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from empirical.models import edm
from empirical.models.unet import SetUNet, SigmaDistribution, UNetConfig


class PatchGeometry:
    """Cell and patch sizes of a ``grid x grid`` cell grid on ``img_resolution`` pixels with patch
    half-width ``k`` cells (shared by the patch model and the local conditional machine)."""
    img_resolution: int
    grid: int
    k: int

    @property
    def cell(self) -> int:
        return self.img_resolution // self.grid

    @property
    def patch(self) -> int:
        return (2 * self.k + 1) * self.cell


@dataclass(frozen=True)
class PatchConfig(PatchGeometry):
    """Patch model: image size, grid, half-width ``k`` in cells, and the network inside. Of ``net``
    only widths, depth, heads and ``cond_mode`` matter: resolution, input channels, the extra
    (centre) vector and the attention resolutions are set from the patch."""
    img_resolution: int = 32
    grid: int = 16
    k: int = 2
    net: UNetConfig = UNetConfig(img_resolution=16, channel_mult=(1, 2))
    # patches per network call at inference; None: 256 on a CPU, 4096 on an accelerator. On the
    # CPU small chunks stay in cache: one core denoises the mini48 exp2l 1.6x faster in bf16 and 2.3x
    # in fp32 in chunks of 256 than of 4096 (benchmarks/results/patch_sampling.json); the result
    # does not depend on the chunking
    chunk_size: int | None = None
    # training's second patch per image: "no_conditioner" (its patch holds no *listed* conditioner,
    # the default) or "no_object" (its patch holds no object at all, listed or not; needs the full
    # object list, see ``training_loss(objects=...)``); only differs under ``one`` conditioning
    background: str = "no_conditioner"

    def __post_init__(self):
        if self.img_resolution % self.grid:
            raise ValueError(f"img_resolution {self.img_resolution} not divisible by grid {self.grid}")
        if self.k < 0:
            raise ValueError("k must be >= 0")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 or None, got {self.chunk_size}")
        if self.background not in ("no_conditioner", "no_object"):
            raise ValueError(f"background must be 'no_conditioner' or 'no_object', got {self.background!r}")

    @property
    def net_resolution(self) -> int:
        factor = 2 ** (len(self.net.channel_mult) - 1)
        return -(-self.patch // factor) * factor


def inference_chunk_size(chunk_size: int | None, device) -> int:
    """Patches per network call: ``chunk_size``, or for None the device's default (256 on a CPU,
    where chunks that stay in cache are fastest; 4096 elsewhere)."""
    if chunk_size is not None:
        return chunk_size
    return 256 if torch.device(device).type == "cpu" else 4096


def cell_centres(grid: int) -> torch.Tensor:
    """Absolute ``(u, v)`` of every cell centre, row-major over ``(row, col)``: ``[G*G, 2]``."""
    t = 2 * (torch.arange(grid, dtype=torch.float32) + 0.5) / grid - 1
    v, u = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([u.flatten(), v.flatten()], dim=1)


def _all_cells(grid: int, device=None) -> torch.Tensor:
    """``(row, col)`` of every cell, row-major: ``[1, G*G, 2]``."""
    rows, cols = torch.meshgrid(torch.arange(grid, device=device), torch.arange(grid, device=device),
                                indexing="ij")
    return torch.stack([rows.flatten(), cols.flatten()], dim=1)[None]


def location_cells(cond: torch.Tensor, grid: int) -> torch.Tensor:
    """Cell index ``(col, row)`` of locations ``cond [..., 2]`` in ``[-1, 1]`` -> int ``[..., 2]``."""
    return ((cond + 1) / 2 * grid).floor().clamp(0, grid - 1).long()


def relative_conditioners(cond, mask, cells_rc, grid: int, k: int):
    """Conditioners as seen from patches.

    ``cond [B, K, 2]``, ``mask [B, K]``, ``cells_rc [B, N, 2]`` (row, col of each patch centre).
    Returns ``rel [B, N, K, 2]`` (zero where masked) and ``inside [B, N, K]``: the conditioner's cell
    is within ``k`` cells of the centre in both axes (and the entry is real).
    """
    loc_cell = location_cells(cond, grid)                            # [B, K, 2] (col, row)
    d_col = loc_cell[:, None, :, 0] - cells_rc[:, :, None, 1]
    d_row = loc_cell[:, None, :, 1] - cells_rc[:, :, None, 0]
    inside = (d_col.abs() <= k) & (d_row.abs() <= k) & mask[:, None, :]
    centre = torch.stack([2 * (cells_rc[..., 1] + 0.5) / grid - 1,
                          2 * (cells_rc[..., 0] + 0.5) / grid - 1], dim=-1)  # [B, N, 2]
    rel = (cond[:, None] - centre[:, :, None]) / ((2 * k + 1) / grid)
    return rel * inside[..., None], inside


class PatchLocalDenoiser(nn.Module):
    """``D(x [B,3,H,W], sigma [B], cond [B,K,2], mask [B,K]) -> [B,3,H,W]``, local by construction."""

    def __init__(self, config: PatchConfig, sigma_data: float = edm.SIGMA_DATA):
        super().__init__()
        self.config = config
        self.sigma_data = sigma_data
        lowest = config.net_resolution // 2 ** (len(config.net.channel_mult) - 1)
        self.net = SetUNet(replace(config.net, img_resolution=config.net_resolution, in_channels=4,
                                   out_channels=3, extra_cond_dim=2, attn_resolutions=(lowest,)))

    # -- one batch of patches -------------------------------------------------------------------
    def denoise_patches(self, patches, valid, sigma, rel, inside, centre):
        """Centre cells of denoised patches.

        ``patches [N,3,P,P]`` noisy, ``valid [N,1,P,P]``, ``sigma [N]``, ``rel [N,K,2]``,
        ``inside [N,K]``, ``centre [N,2]`` -> ``[N, 3, s, s]``.
        """
        cfg = self.config
        c_skip, c_out, c_in, c_noise = edm.preconditioning(sigma, self.sigma_data)
        inp = torch.cat([c_in[:, None, None, None] * patches, valid], dim=1)
        pad = cfg.net_resolution - cfg.patch
        inp = F.pad(inp, (0, pad, 0, pad))
        out = self.net(inp, c_noise, rel, inside, extra=centre)
        lo, hi = cfg.k * cfg.cell, (cfg.k + 1) * cfg.cell
        return (c_skip[:, None, None, None] * patches[:, :, lo:hi, lo:hi]
                + c_out[:, None, None, None] * out[:, :, lo:hi, lo:hi])

    def _padded(self, x: torch.Tensor):
        margin = self.config.k * self.config.cell
        valid = torch.ones_like(x[:, :1])
        return F.pad(x, (margin,) * 4), F.pad(valid, (margin,) * 4)

    # -- full image: all cells in one batched pass ----------------------------------------------
    def forward(self, x, sigma, cond, mask):
        cfg = self.config
        b, ch, h, w = x.shape
        g, s, p = cfg.grid, cfg.cell, cfg.patch
        n = g * g
        xp, vp = self._padded(x)
        patches = F.unfold(xp, p, stride=s).view(b, ch, p, p, n).permute(0, 4, 1, 2, 3).reshape(b * n, ch, p, p)
        valid = F.unfold(vp, p, stride=s).view(b, 1, p, p, n).permute(0, 4, 1, 2, 3).reshape(b * n, 1, p, p)
        cells_rc = _all_cells(g, x.device).expand(b, n, 2)
        rel, inside = relative_conditioners(cond, mask, cells_rc, g, cfg.k)
        centre = cell_centres(g).to(x.device, x.dtype).repeat(b, 1)
        sig = sigma.repeat_interleave(n)
        kk = cond.shape[1]
        rel, inside = rel.reshape(b * n, kk, 2), inside.reshape(b * n, kk)
        chunk = inference_chunk_size(cfg.chunk_size, x.device)
        outs = [self.denoise_patches(patches[i:i + chunk], valid[i:i + chunk], sig[i:i + chunk],
                                     rel[i:i + chunk], inside[i:i + chunk], centre[i:i + chunk])
                for i in range(0, b * n, chunk)]
        cells = torch.cat(outs).view(b, g, g, ch, s, s)
        return cells.permute(0, 3, 1, 4, 2, 5).reshape(b, ch, h, w)

    # -- training: two patches per image ----------------------------------------------------------
    def choose_cells(self, cond, mask, generator, objects=None) -> torch.Tensor:
        """Per image one patch centre whose patch contains a conditioner and one whose patch
        contains none: ``[B, 2, 2]`` (row, col); fallback to uniform when a kind does not exist.
        With ``config.background == "no_object"`` and ``objects = (locations [B,M,2], mask [B,M])``
        (every object of the image), the second patch must contain no object at all."""
        g, k = self.config.grid, self.config.k
        b = cond.shape[0]
        cells_rc = _all_cells(g, cond.device).expand(b, g * g, 2)
        _, inside = relative_conditioners(cond, mask, cells_rc, g, k)
        has = inside.any(dim=2).float().cpu()                            # [B, N]; CPU generator
        empty = 1 - has
        if self.config.background == "no_object":
            if objects is None:
                raise ValueError("background='no_object' needs objects=(locations, mask) of every object")
            _, holds_object = relative_conditioners(objects[0], objects[1], cells_rc, g, k)
            empty = 1 - holds_object.any(dim=2).float().cpu()
        picks = []
        for weights in (has, empty):
            weights = torch.where(weights.sum(1, keepdim=True) > 0, weights, torch.ones_like(weights))
            picks.append(torch.multinomial(weights, 1, generator=generator)[:, 0])
        idx = torch.stack(picks, dim=1).to(cond.device)                   # [B, 2]
        return torch.stack([idx // g, idx % g], dim=-1)

    def _cut(self, padded, cells_rc):
        """Patches of ``padded [B,C,H+2m,W+2m]`` at centres ``cells_rc [B,M,2]`` -> ``[B*M,C,P,P]``."""
        s, p = self.config.cell, self.config.patch
        return torch.stack([padded[bi, :, r * s:r * s + p, c * s:c * s + p]
                            for bi in range(cells_rc.shape[0])
                            for r, c in cells_rc[bi].tolist()])

    def training_loss(self, images, cond, mask, generator, sigma_dist: SigmaDistribution, objects=None):
        """Mean over images of the average EDM loss of its two patches (centre cell only).
        ``objects``: every object's (locations, mask), used by ``background="no_object"``."""
        cfg = self.config
        b = images.shape[0]
        cells_rc = self.choose_cells(cond, mask, generator, objects)     # [B, 2, 2]
        m = cells_rc.shape[1]
        xp, vp = self._padded(images)
        clean = self._cut(xp, cells_rc)
        valid = self._cut(vp, cells_rc)
        noise_p = torch.randn(clean.shape, generator=generator).to(clean.device) * valid  # 0 in padding
        sigma = edm.sample_sigma(b * m, sigma_dist.p_mean, sigma_dist.p_std, generator, images.device)
        noisy = clean + sigma[:, None, None, None] * noise_p
        rel, inside = relative_conditioners(cond, mask, cells_rc, cfg.grid, cfg.k)
        rel, inside = rel.reshape(b * m, -1, 2), inside.reshape(b * m, -1)
        centre = torch.stack([2 * (cells_rc[..., 1] + 0.5) / cfg.grid - 1,
                              2 * (cells_rc[..., 0] + 0.5) / cfg.grid - 1], dim=-1).reshape(b * m, 2)
        denoised = self.denoise_patches(noisy, valid, sigma, rel, inside, centre.to(images.dtype))
        lo, hi = cfg.k * cfg.cell, (cfg.k + 1) * cfg.cell
        target = clean[:, :, lo:hi, lo:hi]
        weight = edm.loss_weight(sigma, self.sigma_data)[:, None, None, None]
        per_patch = (weight * (denoised - target) ** 2).mean(dim=(1, 2, 3))
        return per_patch.view(b, m).mean()
