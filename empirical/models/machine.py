"""The local conditional score machine: the ideal patch-local denoiser, computed from a training set.

No training. For a training set ``{(y_n, C_n)}`` (images and conditioner sets) and the patch
geometry of :mod:`empirical.models.patch_local` (``G x G`` cells of side ``s``, patch half-width
``k`` cells, zero padding outside the image), the denoised value of cell ``c`` of a noisy query
``x`` at noise ``sigma`` with conditioners ``C`` is

    D(x, sigma, C)[c] = sum_n w_n y_n[c],
    w_n ∝ exp(-|| P_c x - P_c y_n ||^2 / (2 sigma^2)) * kappa_c(C, C_n),

where ``P_c`` cuts the patch of cell ``c`` (the same absolute position in every image: the patch
model sees its absolute centre coordinates) and ``kappa_c`` compares the conditioners that lie in
the patch: zero unless the counts are equal, else ``exp(-min_pi sum_j |a_j - b_pi(j)|^2 / (2 tau^2))``
over bijections of the query's in-patch conditioners ``a`` onto the training patch's ``b``
(offsets from the shared centre cancel, so absolute positions are compared). This is the exact
minimizer of the patch-local denoising loss over the empirical distribution of (training image,
cell) pairs, with the continuous conditioner offsets smoothed by a Gaussian kernel of width
``tau`` (derivation: docs/local-machine.md). A query patch whose conditioner count no training
patch at that cell has (e.g. more conditioners than any training patch holds) gets the
unconditional patch posterior (``kappa = 1``); such cells are counted in ``last_unmatched``.

``grid=1, k=0`` is the ideal *non-local* denoiser: one cell, the patch is the whole image, and
``D`` is the empirical-optimal denoiser, which reproduces training images.

Computation, two exact paths for the same distances (``MachineConfig.method``):

- ``"matmul"``: per cell, ``||q - p||^2 = ||q||^2 - 2 <q, p> + ||p||^2`` for all training patches
  ``p`` at once, the inner products as one matrix product ``[B, 3P^2] x [3P^2, N]`` (the anchors'
  trick of Kamb & Ganguli and Niedoba et al.), in float64 by default so that the expansion does
  not cancel at small sigma (the exponent is divided by ``2 sigma^2``). Its cost per (query,
  training image) pair grows with the patch area: ``G^2 * 3 P^2`` multiply-adds.
- ``"boxsum"``: the per-pixel squared distance ``e[b, n] = sum_channels (x[b] - y[n])^2`` (no
  expansion, so no cancellation: float32 is accurate), then every cell's patch sum at once as two
  products with 0/1 band matrices, ``d2[b, n] = R e[b, n] R^T`` (``R [G, H]``: ones on the rows of
  each cell's patch; the zero padding contributes nothing, so only the image's own pixels are
  summed), one query and a cache-sized tile of training images at a time. Its cost does not
  depend on ``k``: ``3 H W + G H W + G^2 H`` per pair. No per-cell patches are stored.
- ``"auto"`` (default) takes the cheaper by :func:`method_costs` (the rule and its measured
  constant are in docs/local-machine.md).

The softmax over ``N`` is a log-sum-exp in float64. The conditioner term is matched only where a
patch holds conditioners, and cached across the sampler's calls. The result is float32.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from empirical.models.patch_local import PatchGeometry, _all_cells, relative_conditioners

# training patches are stored per cell (no copy per call) up to this size, else cut per call
STORE_BYTES = 4 * 2 ** 30
# the box-sum path's working memory: squared differences of one query against a tile of training
# images, and the float64 logits of a chunk of queries
TILE_BYTES = 2 ** 21
LOGIT_BYTES = 2 ** 24
METHODS = ("auto", "matmul", "boxsum")
CONDITIONINGS = ("all", "one")
# "auto": box-sum when its multiply-adds times this factor are fewer than the matmul path's
# (elementwise squared differences and small band products run slower per multiply-add than the
# per-cell matrix product); measured by benchmarks/bench_machine.py, see docs/local-machine.md
BOXSUM_FACTOR = 1.5


@dataclass(frozen=True)
class MachineConfig(PatchGeometry):
    img_resolution: int = 32
    grid: int = 16              # 1 with k = 0: the non-local ideal denoiser
    k: int = 2                  # patch half-width in cells
    tau: float = 0.05           # conditioner kernel width, image units ([-1, 1] coordinates)
    dtype: str = "float64"      # of the patch distances (the softmax is always float64)
    sampler_steps: int = 18     # Heun steps when a command samples it (the mini preset's)
    method: str = "auto"        # of the patch distances: "matmul", "boxsum" or "auto" (the cheaper)
    window: int = 0             # position window in cells: training patches from cells within this
                                # Chebyshev distance of the query's (0: the same cell only)
    conditioning: str = "all"   # "all": every object's location; "one": each (image, one of its
                                # objects) pair with prior 1/m, the data of Exp.2 (see machine_from_dataset)

    def __post_init__(self):
        if self.img_resolution % self.grid:
            raise ValueError(f"img_resolution {self.img_resolution} not divisible by grid {self.grid}")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be float64 or float32, got {self.dtype!r}")
        if self.k < 0 or not self.tau > 0:
            raise ValueError("need k >= 0, tau > 0")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {', '.join(CONDITIONINGS)}, got {self.conditioning!r}")
        if self.window < 0:
            raise ValueError(f"window must be >= 0, got {self.window}")
        if self.window and self.grid == 1:
            raise ValueError("window needs a local machine (grid > 1); the non-local one has one cell")
        if self.window and self.method == "matmul":
            raise ValueError("window > 0 is computed by the box-sum path only (method 'boxsum' or 'auto')")

    @property
    def resolved_method(self) -> str:
        """The path a machine of this config computes its distances by ("matmul" or "boxsum")."""
        if self.method != "auto":
            return self.method
        if self.window:
            return "boxsum"
        costs = method_costs(self)
        return "boxsum" if costs["boxsum"] < costs["matmul"] else "matmul"

    @property
    def margin(self) -> int:
        return self.k * self.cell

    @property
    def local(self) -> bool:
        return self.grid > 1

    @property
    def label(self) -> str:
        label = f"k={self.k}, window {self.window}" if self.window else f"k={self.k}"
        label = label if self.local else "non-local"
        return label if self.conditioning == "all" else f"{label}, one location"

    # the fields of a TrainConfig that the clevr commands read from a run
    @property
    def experiment(self) -> str:
        name = f"machine-k{self.k}-w{self.window}" if self.window else f"machine-k{self.k}"
        name = name if self.local else "machine-nonlocal"
        return name if self.conditioning == "all" else f"{name}-one"

    @property
    def preset(self) -> str:
        return "machine"

    @property
    def resolution(self) -> int:
        return self.img_resolution

    @property
    def schedule(self) -> "MachineConfig":
        return self


def method_costs(config: MachineConfig) -> dict[str, float]:
    """The "auto" rule's cost of each path per (query, training image) pair, in multiply-adds
    (the box-sum's scaled by the measured ``BOXSUM_FACTOR``): matmul ``G^2 * 3 P^2`` (a patch
    inner product per cell), box-sum ``3 H W`` (squared differences) ``+ G H W + G^2 H`` (the two
    band products)."""
    g, p, h = config.grid, config.patch, config.img_resolution
    return {"matmul": float(g * g * 3 * p * p), "boxsum": BOXSUM_FACTOR * (3 * h * h + g * h * h + g * g * h)}


def window_sources(config: MachineConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The position window's shifts and source cells: ``(shifts [D, 2] (row, col) in cells,
    source [D, G^2])``, ``D = (2 window + 1)^2``, shift 0 first; ``source[d, c]`` is the row-major
    index of cell ``c + shifts[d]``, or -1 where that lies outside the grid."""
    g, w = config.grid, config.window
    offsets = [(0, 0)] + [(r, c) for r in range(-w, w + 1) for c in range(-w, w + 1) if (r, c) != (0, 0)]
    cells = _all_cells(g)[0]                                               # [G^2, 2] (row, col)
    shifts = torch.tensor(offsets, dtype=torch.long)
    target = cells[None] + shifts[:, None]                                 # [D, G^2, 2]
    inside = ((target >= 0) & (target < g)).all(-1)
    return shifts, torch.where(inside, target[..., 0] * g + target[..., 1], -1)


def in_patch_conditioners(cond: torch.Tensor, mask: torch.Tensor, config: MachineConfig,
                          max_count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The conditioners inside each cell's patch, packed first: ``(points [B, G^2, max_count, 2],
    count [B, G^2])``; a count above ``max_count`` is kept (its points are truncated)."""
    b = cond.shape[0]
    g = config.grid
    cells = _all_cells(g, cond.device).expand(b, g * g, 2)
    _, inside = relative_conditioners(cond, mask, cells, g, config.k)      # [B, G^2, K]
    count = inside.sum(-1)
    order = torch.argsort((~inside).to(torch.int8), dim=-1, stable=True)    # inside ones first
    kk = cond.shape[1]
    take = order[..., :max_count] if kk >= max_count else F.pad(order, (0, max_count - kk))
    points = torch.gather(cond[:, None].expand(b, g * g, kk, 2), 2, take[..., None].expand(*take.shape, 2)) \
        if kk else cond.new_zeros(b, g * g, max_count, 2)
    return points, count


def matching_cost(query: torch.Tensor, query_count: torch.Tensor, train: torch.Tensor,
                  train_count: torch.Tensor) -> torch.Tensor:
    """``min_pi sum_j |a_j - b_pi(j)|^2`` where the counts are equal, ``inf`` where they differ.

    ``query [B, C, M, 2]``, ``query_count [B, C]``, ``train [N, C, M, 2]``, ``train_count [N, C]``
    (``C`` cells, points packed first) -> ``[B, N, C]`` float32. Only the (query, cell) pairs
    that hold conditioners are matched (most patches of a scene hold none)."""
    m = query.shape[2]
    same = query_count[:, None, :] == train_count[None, :, :]
    cost = torch.where(same, 0.0, math.inf)
    for count in range(1, m + 1):
        bi, ci = (query_count == count).nonzero(as_tuple=True)
        for lo in range(0, len(bi), 512):        # bounds the [N, Q, count, count] block
            b_q, c_q = bi[lo:lo + 512], ci[lo:lo + 512]
            a = query[b_q, c_q, :count]                                   # [Q, count, 2]
            t = train[:, c_q, :count]                                     # [N, Q, count, 2]
            pair = ((a[None, :, :, None, :] - t[:, :, None, :, :]) ** 2).sum(-1)
            idx = torch.arange(count)
            best = torch.stack([pair[..., idx, torch.tensor(p)].sum(-1)
                                for p in itertools.permutations(range(count))]).amin(0)   # [N, Q]
            cost[b_q, :, c_q] = torch.where(same[b_q, :, c_q], best.T, math.inf)
    return cost


class LocalConditionalMachine:
    """``D(x [B,3,H,W], sigma [B], cond [B,K,2], mask [B,K]) -> [B,3,H,W]`` from a training set.

    ``images [N, 3, H, W]`` float in [-1, 1], ``cond [N, M, 2]``, ``mask [N, M]`` (each training
    image's conditioners). Differentiable in ``x`` (so the locality diagnostics apply). The
    conditioner term depends only on ``(cond, mask)``, so it is cached for the last conditioner
    batch (a sampler calls ``D`` many times with the same conditioners)."""

    def __init__(self, config: MachineConfig, images: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor,
                 log_prior: torch.Tensor | None = None):
        if images.shape[-1] != config.img_resolution or images.shape[-2] != config.img_resolution:
            raise ValueError(f"images are {tuple(images.shape[-2:])}, config wants {config.img_resolution} px")
        self.config = config
        self.max_count = max(int(mask.sum(1).max()) if mask.numel() else 0, 1)
        self.train_points, self.train_count = in_patch_conditioners(cond.float(), mask.bool(), config,
                                                                    self.max_count)
        counts = torch.arange(self.max_count + 1)
        # available[c, m]: some training patch at cell c holds exactly m conditioners
        self.available = (self.train_count[:, :, None] == counts).any(0)
        self.shifts, self.source = window_sources(config)                  # [D, 2], [D, G^2]
        if config.window:
            valid = self.source >= 0
            # ... or, with a window, some training patch at a cell of c's window
            self.available = (self.available[self.source.clamp(min=0)] & valid[..., None]).any(0)
        g, s, mg = config.grid, config.cell, config.margin
        dtype = getattr(torch, config.dtype)
        self.method = config.resolved_method
        self.size = len(images)
        # log prior weight of each training pair ([N], float64; None: uniform)
        self.log_prior = None if log_prior is None else log_prior.double().reshape(len(images))
        self.centre_cells = (images.double().view(-1, 3, g, s, g, s).permute(2, 4, 0, 1, 3, 5)
                             .reshape(g * g, len(images), 3 * s * s))      # [G^2, N, 3 s^2]
        self.stored = None
        self.patch_norms = None
        if config.window:
            # padded by the patch margin and the window, so that every shifted patch is a slice
            self.padded = F.pad(images.to(dtype), (mg + config.window * s,) * 4).contiguous()
            # band[r, i] = 1 where row i of the margin-padded query lies in the patch of cell row r
            rows = torch.arange(config.img_resolution + 2 * mg)
            self.band = ((rows[None, :] >= torch.arange(g)[:, None] * s)
                         & (rows[None, :] < torch.arange(g)[:, None] * s + config.patch)).to(dtype)
        elif self.method == "boxsum":
            self.images = images.to(dtype).contiguous()                      # [N, 3, H, W]
            cells = torch.arange(config.img_resolution) // s
            # band[r, h] = 1 where pixel row h lies in the patch of cell row r (the padding adds 0)
            self.band = ((cells[None, :] - torch.arange(g)[:, None]).abs() <= config.k).to(dtype)   # [G, H]
        else:
            self.padded = F.pad(images.to(dtype), (mg,) * 4)                  # [N, 3, H+2m, W+2m]
            if g * g * len(images) * 3 * config.patch ** 2 * self.padded.element_size() <= STORE_BYTES:
                self.stored = torch.stack([self._train_patches(c) for c in range(g * g)])   # [G^2, N, 3P^2]
            self.patch_norms = torch.stack([(self._train_patches(c).double() ** 2).sum(1) for c in range(g * g)])
        self._cache: tuple | None = None
        self.last_unmatched: torch.Tensor | None = None    # [B, G^2] bool of the last call

    def __len__(self) -> int:
        return self.size

    def _train_patches(self, cell: int) -> torch.Tensor:
        """Training patches of one cell, flattened: ``[N, 3 P^2]`` (the matmul path's)."""
        if self.stored is not None:
            return self.stored[cell]
        s, p, g = self.config.cell, self.config.patch, self.config.grid
        r, c = divmod(cell, g)
        return self.padded[:, :, r * s:r * s + p, c * s:c * s + p].reshape(len(self), -1)

    def boxsum_distances(self, x: torch.Tensor) -> torch.Tensor:
        """``||P_c x[b] - P_c y_n||^2`` for every query, training image and cell: ``[B, N, G^2]``
        (the config's dtype), from per-pixel squared differences and two band products, one query
        and ``TILE_BYTES`` of training images at a time (small tiles stay in cache: 4-5x faster
        than one broadcast over the whole batch, measured). Differentiable in ``x``."""
        _, _, h, w = x.shape
        g = self.config.grid
        x = x.to(self.images.dtype)
        step = max(1, TILE_BYTES // (3 * h * w * self.images.element_size()))
        rows = []
        for query in x:
            tiles = []
            for lo in range(0, len(self), step):
                e = ((self.images[lo:lo + step] - query) ** 2).sum(1)               # [n, H, W]
                cols = (e.reshape(-1, w) @ self.band.T).view(-1, h, g)             # [n, H, G(col)]
                box = cols.transpose(1, 2).reshape(-1, h) @ self.band.T            # [n G(col), G(row)]
                tiles.append(box.view(-1, g, g).transpose(1, 2).reshape(-1, g * g))
            rows.append(torch.cat(tiles))
        return torch.stack(rows)

    def conditioner_logits(self, cond: torch.Tensor, mask: torch.Tensor):
        """``(-cost / (2 tau^2) [B, N, G^2], unmatched [B, G^2])`` for a conditioner batch (cached);
        with a position window the logits are ``[B, D, N, G^2]``, one slice per shift."""
        if self._cache is not None and self._cache[0].shape == cond.shape and torch.equal(self._cache[0], cond) \
                and torch.equal(self._cache[1], mask):
            return self._cache[2], self._cache[3]
        cfg = self.config
        b, cells = cond.shape[0], cfg.grid ** 2
        points, count = in_patch_conditioners(cond.float(), mask.bool(), cfg, self.max_count)
        matched = (count <= self.max_count) & self.available[
            torch.arange(cells)[None, :].expand(b, -1), count.clamp(max=self.max_count)]
        count = count.clamp(max=self.max_count)
        if cfg.window:
            # the training patch at cell c + shift, its conditioners moved by -shift (relative offsets)
            costs = []
            for shift, source in zip(self.shifts, self.source):
                move = torch.stack([shift[1], shift[0]]).float() * 2 / cfg.grid        # (x: col, y: row)
                train = self.train_points[:, source.clamp(min=0)] - move
                train_count = torch.where(source >= 0, self.train_count[:, source.clamp(min=0)], -1)
                costs.append(matching_cost(points, count, train, train_count))
            logits = torch.where(matched[:, None, None, :], -torch.stack(costs, 1) / (2 * cfg.tau ** 2), 0.0)
        else:
            cost = matching_cost(points, count, self.train_points, self.train_count)
            logits = torch.where(matched[:, None, :], -cost / (2 * cfg.tau ** 2), 0.0)
        if self.log_prior is not None:
            logits = logits + self.log_prior.float()[:, None]          # over N, broadcast over cells
        self._cache = (cond.clone(), mask.clone(), logits, ~matched)
        return logits, ~matched

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        b = x.shape[0]
        g, s = cfg.grid, cfg.cell
        sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(b)
        cond_logits, self.last_unmatched = self.conditioner_logits(cond, mask)
        if cfg.window:
            out = self._window_cells(x, sigma, cond_logits)
        elif self.method == "boxsum":
            out = self._boxsum_cells(x, sigma, cond_logits)
        else:
            out = self._matmul_cells(x, sigma, cond_logits)                 # [B, G^2, 3 s^2]
        return out.float().view(b, g, g, 3, s, s).permute(0, 3, 1, 4, 2, 5).reshape(b, 3, g * s, g * s)

    def _matmul_cells(self, x, sigma, cond_logits) -> torch.Tensor:
        cfg = self.config
        g, s, p, mg = cfg.grid, cfg.cell, cfg.patch, cfg.margin
        query = F.unfold(F.pad(x.to(self.padded.dtype), (mg,) * 4), p, stride=s)  # [B, 3 P^2, G^2]
        cells = []
        for c in range(g * g):
            q = query[:, :, c]                                              # [B, 3 P^2]
            d2 = ((q.double() ** 2).sum(1, keepdim=True) - 2 * (q @ self._train_patches(c).T).double()
                  + self.patch_norms[c])
            weights = torch.softmax(-d2.clamp(min=0) / (2 * sigma[:, None] ** 2) + cond_logits[:, :, c], dim=1)
            cells.append(weights @ self.centre_cells[c])                    # [B, 3 s^2]
        return torch.stack(cells, 1)                                        # [B, G^2, 3 s^2]

    def _boxsum_cells(self, x, sigma, cond_logits) -> torch.Tensor:
        cells = self.config.grid ** 2
        step = max(1, LOGIT_BYTES // (8 * len(self) * cells))              # queries per chunk
        out = []
        for lo in range(0, x.shape[0], step):
            d2 = self.boxsum_distances(x[lo:lo + step]).double()            # [b, N, G^2]
            scale = (-0.5 / sigma[lo:lo + step] ** 2)[:, None, None]
            weights = torch.softmax(torch.addcmul(cond_logits[lo:lo + step], d2, scale), dim=1)
            out.append(torch.einsum("bnc,cnd->bcd", weights, self.centre_cells))  # [b, G^2, 3 s^2]
        return torch.cat(out, 0)


    def window_distances(self, x: torch.Tensor) -> torch.Tensor:
        """``||P_c x[b] - P_{c+d} y_n||^2`` for every query, shift ``d`` of the window, training
        image and cell: ``[B, D, N, G^2]`` (the box-sum path on the margin-padded canvas, where
        the shifted training patch may hold pixels that the query's padding does not; entries
        whose ``c + d`` is off the grid are meaningless and masked by the caller)."""
        cfg = self.config
        g, s, mg, w = cfg.grid, cfg.cell, cfg.margin, cfg.window
        x = F.pad(x.to(self.padded.dtype), (mg,) * 4)                           # [B, 3, Hp, Hp]
        hp = x.shape[-1]
        step = max(1, TILE_BYTES // (3 * hp * hp * self.padded.element_size()))
        rows = []
        for query in x:
            tiles = []
            for lo in range(0, len(self), step):
                per_shift = []
                for dr, dc in self.shifts.tolist():
                    r0, c0 = (w + dr) * s, (w + dc) * s
                    d = (self.padded[lo:lo + step, :, r0:r0 + hp, c0:c0 + hp] - query).square_()
                    e = d[:, 0] + d[:, 1] + d[:, 2]        # (faster here than a strided .sum(1))
                    cols = (e.reshape(-1, hp) @ self.band.T).view(-1, hp, g)
                    box = cols.transpose(1, 2).reshape(-1, hp) @ self.band.T
                    per_shift.append(box.view(-1, g, g).transpose(1, 2).reshape(-1, g * g))
                tiles.append(torch.stack(per_shift))                              # [D, n, G^2]
            rows.append(torch.cat(tiles, 1))
        return torch.stack(rows)

    def _window_cells(self, x, sigma, cond_logits) -> torch.Tensor:
        """The softmax over (shift, training image) per cell, one query at a time (the logits of
        one query are ``D N G^2`` float64), then ``sum_d sum_n w[d, n, c] y_n[c + d]``."""
        cells = self.config.grid ** 2
        valid = self.source >= 0                                                  # [D, G^2]
        out = []
        for b in range(x.shape[0]):
            d2 = self.window_distances(x[b:b + 1]).double()[0]                    # [D, N, G^2]
            logits = (cond_logits[b] + d2 * (-0.5 / sigma[b] ** 2)).masked_fill(~valid[:, None, :], -math.inf)
            weights = torch.softmax(logits.reshape(-1, cells), 0).view_as(logits)
            total = torch.zeros(cells, self.centre_cells.shape[-1], dtype=torch.float64)
            for d, source in enumerate(self.source):
                keep = valid[d].nonzero(as_tuple=True)[0]                         # query cells c
                # move the weights to the source cells, so one einsum reads y_n[c + d]
                moved = torch.zeros(len(self), cells, dtype=torch.float64).index_copy(
                    1, source[keep], weights[d][:, keep])
                mean = torch.einsum("nc,cnd->cd", moved, self.centre_cells)       # [G^2 (source), 3 s^2]
                total = total.index_add(0, keep, mean[source[keep]])
            out.append(total)
        return torch.stack(out)


def machine_from_dataset(config: MachineConfig, dataset, limit: int | None = None) -> LocalConditionalMachine:
    """A machine over the first ``limit`` items of a dataset of ``(image [3,H,W], cond [K,2])``.

    ``config.conditioning == "one"``: the training pairs are each image with *one* of its ``m``
    conditioners, every choice, each with prior ``1/m`` (an image without objects once, with none):
    the empirical distribution that Exp.2's training samples (``select_conditioners``, uniform
    choice), so the machine is its exact minimizer."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    items = [dataset[i] for i in range(n)]
    log_prior = None
    if config.conditioning == "one":
        pairs = [(im, c[j:j + 1], -math.log(len(c))) for im, c in items for j in range(len(c))]
        pairs += [(im, c, 0.0) for im, c in items if len(c) == 0]
        items = [(im, c) for im, c, _ in pairs]
        log_prior = torch.tensor([w for _, _, w in pairs], dtype=torch.float64)
    images = torch.stack([im for im, _ in items])
    most = max((c.shape[0] for _, c in items), default=0)
    cond = torch.zeros(len(items), max(most, 1), 2)
    mask = torch.zeros(len(items), max(most, 1), dtype=torch.bool)
    for i, (_, c) in enumerate(items):
        cond[i, :len(c)], mask[i, :len(c)] = c, True
    return LocalConditionalMachine(config, images, cond, mask, log_prior)


MACHINE_FILE = "machine.json"


def write_machine_run(out_dir, config: MachineConfig, data: str, limit: int | None) -> dict:
    """A run folder that ``clevr sample``, ``kmax`` and ``locality`` read like a trained run:
    ``machine.json`` (the config and the training data it is built from) and ``run.json``."""
    from localcomp.provenance import write_json_atomic, write_run_record

    record = {"config": asdict(config), "data": str(data), "limit": limit}
    write_json_atomic(Path(out_dir) / MACHINE_FILE, record)
    write_run_record(out_dir, {"machine": record, "data": str(data)}, None)
    return record


def load_machine_run(run_dir) -> tuple[LocalConditionalMachine, MachineConfig]:
    """The machine of a run folder written by :func:`write_machine_run` (built from its data)."""
    from empirical.clevr.sources import load_data

    record = json.loads((Path(run_dir) / MACHINE_FILE).read_text())
    config = MachineConfig(**record["config"])
    dataset = load_data(record["data"], config.img_resolution)
    return machine_from_dataset(config, dataset, record["limit"]), config


def reference_denoise(config: MachineConfig, images, cond, mask, x, sigma, query_cond, query_mask,
                      log_prior=None):
    """The same estimator by a plain loop over cells, window shifts and training images (float64;
    slow): the definition the fast path is tested and benchmarked against. Shapes as
    :class:`LocalConditionalMachine`."""
    g, s, p, mg = config.grid, config.cell, config.patch, config.margin
    w = config.window
    train_pad = F.pad(images.double(), (mg + w * s,) * 4)
    query_pad = F.pad(x.double(), (mg,) * 4)
    most = max(int(mask.sum(1).max()), 1)
    cells = _all_cells(g)[0]
    shifts = [(dr, dc) for dr in range(-w, w + 1) for dc in range(-w, w + 1)]
    out = torch.zeros(x.shape, dtype=torch.float64)
    for b in range(x.shape[0]):
        for r, c in cells.tolist():
            q = query_pad[b, :, r * s:r * s + p, c * s:c * s + p]
            in_query = [tuple(query_cond[b, j].tolist()) for j in range(query_cond.shape[1])
                        if query_mask[b, j] and _in_patch(query_cond[b, j], r, c, config)]
            pool = []       # (logit without the conditioner term, shifted in-patch conditioners, centre)
            for dr, dc in shifts:
                rs, cs = r + dr, c + dc
                if not (0 <= rs < g and 0 <= cs < g):
                    continue
                rows, cols = slice((w + rs - r) * s + r * s, (w + rs - r) * s + r * s + p), \
                    slice((w + cs - c) * s + c * s, (w + cs - c) * s + c * s + p)
                move = (dc * 2 / g, dr * 2 / g)
                for n in range(len(images)):
                    d2 = float(((q - train_pad[n, :, rows, cols]) ** 2).sum())
                    in_train = [(float(cond[n, j, 0]) - move[0], float(cond[n, j, 1]) - move[1])
                                for j in range(cond.shape[1]) if mask[n, j] and _in_patch(cond[n, j], rs, cs, config)]
                    centre = images[n, :, rs * s:(rs + 1) * s, cs * s:(cs + 1) * s].double()
                    prior = 0.0 if log_prior is None else float(log_prior[n])
                    pool.append((-d2 / (2 * float(sigma[b]) ** 2) + prior, in_train, centre))
            has_match = len(in_query) <= most and any(len(t) == len(in_query) for _, t, _ in pool)
            logits = []
            for logit, in_train, _ in pool:
                if has_match:
                    if len(in_train) != len(in_query):
                        logit = -math.inf
                    elif in_query:
                        logit -= min(sum((a[0] - t[0]) ** 2 + (a[1] - t[1]) ** 2 for a, t in zip(in_query, perm))
                                     for perm in itertools.permutations(in_train)) / (2 * config.tau ** 2)
                logits.append(logit)
            weights = torch.softmax(torch.tensor(logits, dtype=torch.float64), 0)
            centres = torch.stack([centre for _, _, centre in pool])
            out[b, :, r * s:(r + 1) * s, c * s:(c + 1) * s] = (weights[:, None, None, None] * centres).sum(0)
    return out.float()


def _in_patch(point, r: int, c: int, config: MachineConfig) -> bool:
    col, row = ((point + 1) / 2 * config.grid).floor().clamp(0, config.grid - 1).long().tolist()
    return abs(col - c) <= config.k and abs(row - r) <= config.k
