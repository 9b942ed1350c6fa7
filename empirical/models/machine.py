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

    def __post_init__(self):
        if self.img_resolution % self.grid:
            raise ValueError(f"img_resolution {self.img_resolution} not divisible by grid {self.grid}")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be float64 or float32, got {self.dtype!r}")
        if self.k < 0 or not self.tau > 0:
            raise ValueError("need k >= 0, tau > 0")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")

    @property
    def resolved_method(self) -> str:
        """The path a machine of this config computes its distances by ("matmul" or "boxsum")."""
        if self.method != "auto":
            return self.method
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
        return f"k={self.k}" if self.local else "non-local"

    # the fields of a TrainConfig that the clevr commands read from a run
    @property
    def experiment(self) -> str:
        return f"machine-k{self.k}" if self.local else "machine-nonlocal"

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

    def __init__(self, config: MachineConfig, images: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor):
        if images.shape[-1] != config.img_resolution or images.shape[-2] != config.img_resolution:
            raise ValueError(f"images are {tuple(images.shape[-2:])}, config wants {config.img_resolution} px")
        self.config = config
        self.max_count = max(int(mask.sum(1).max()) if mask.numel() else 0, 1)
        self.train_points, self.train_count = in_patch_conditioners(cond.float(), mask.bool(), config,
                                                                    self.max_count)
        counts = torch.arange(self.max_count + 1)
        # available[c, m]: some training patch at cell c holds exactly m conditioners
        self.available = (self.train_count[:, :, None] == counts).any(0)
        g, s, mg = config.grid, config.cell, config.margin
        dtype = getattr(torch, config.dtype)
        self.method = config.resolved_method
        self.size = len(images)
        self.centre_cells = (images.double().view(-1, 3, g, s, g, s).permute(2, 4, 0, 1, 3, 5)
                             .reshape(g * g, len(images), 3 * s * s))      # [G^2, N, 3 s^2]
        self.stored = None
        self.patch_norms = None
        if self.method == "boxsum":
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
        """``(-cost / (2 tau^2) [B, N, G^2], unmatched [B, G^2])`` for a conditioner batch (cached)."""
        if self._cache is not None and self._cache[0].shape == cond.shape and torch.equal(self._cache[0], cond) \
                and torch.equal(self._cache[1], mask):
            return self._cache[2], self._cache[3]
        cfg = self.config
        b, cells = cond.shape[0], cfg.grid ** 2
        points, count = in_patch_conditioners(cond.float(), mask.bool(), cfg, self.max_count)
        matched = (count <= self.max_count) & self.available[
            torch.arange(cells)[None, :].expand(b, -1), count.clamp(max=self.max_count)]
        cost = matching_cost(points, count.clamp(max=self.max_count), self.train_points, self.train_count)
        logits = torch.where(matched[:, None, :], -cost / (2 * cfg.tau ** 2), 0.0)
        self._cache = (cond.clone(), mask.clone(), logits, ~matched)
        return logits, ~matched

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        b = x.shape[0]
        g, s = cfg.grid, cfg.cell
        sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(b)
        cond_logits, self.last_unmatched = self.conditioner_logits(cond, mask)
        if self.method == "boxsum":
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


def machine_from_dataset(config: MachineConfig, dataset, limit: int | None = None) -> LocalConditionalMachine:
    """A machine over the first ``limit`` items of a dataset of ``(image [3,H,W], cond [K,2])``."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    items = [dataset[i] for i in range(n)]
    images = torch.stack([im for im, _ in items])
    most = max((c.shape[0] for _, c in items), default=0)
    cond = torch.zeros(n, max(most, 1), 2)
    mask = torch.zeros(n, max(most, 1), dtype=torch.bool)
    for i, (_, c) in enumerate(items):
        cond[i, :len(c)], mask[i, :len(c)] = c, True
    return LocalConditionalMachine(config, images, cond, mask)


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


def reference_denoise(config: MachineConfig, images, cond, mask, x, sigma, query_cond, query_mask):
    """The same estimator by a plain loop over cells and training images (float64; slow): the
    definition the fast path is tested and benchmarked against. Shapes as :class:`LocalConditionalMachine`."""
    g, s, p, mg = config.grid, config.cell, config.patch, config.margin
    train_pad = F.pad(images.double(), (mg,) * 4)
    query_pad = F.pad(x.double(), (mg,) * 4)
    most = max(int(mask.sum(1).max()), 1)
    _, train_count = in_patch_conditioners(cond.float(), mask.bool(), config, most)
    _, query_count = in_patch_conditioners(query_cond.float(), query_mask.bool(), config, most)
    cells = _all_cells(g)[0]
    out = torch.zeros(x.shape, dtype=torch.float64)
    for b in range(x.shape[0]):
        for index, (r, c) in enumerate(cells.tolist()):
            rows, cols = slice(r * s, r * s + p), slice(c * s, c * s + p)
            in_query = [tuple(query_cond[b, j].tolist()) for j in range(query_cond.shape[1])
                        if query_mask[b, j] and _in_patch(query_cond[b, j], r, c, config)]
            has_match = bool((train_count[:, index] == len(in_query)).any()) and len(in_query) <= most
            logits = []
            for n in range(len(images)):
                d2 = float(((query_pad[b, :, rows, cols] - train_pad[n, :, rows, cols]) ** 2).sum())
                logit = -d2 / (2 * float(sigma[b]) ** 2)
                if has_match:
                    in_train = [tuple(cond[n, j].tolist()) for j in range(cond.shape[1])
                                if mask[n, j] and _in_patch(cond[n, j], r, c, config)]
                    if len(in_train) != len(in_query):
                        logit = -math.inf
                    elif in_query:
                        logit -= min(sum((a[0] - t[0]) ** 2 + (a[1] - t[1]) ** 2 for a, t in zip(in_query, perm))
                                     for perm in itertools.permutations(in_train)) / (2 * config.tau ** 2)
                logits.append(logit)
            weights = torch.softmax(torch.tensor(logits, dtype=torch.float64), 0)
            centre = images[:, :, r * s:(r + 1) * s, c * s:(c + 1) * s].double()
            out[b, :, r * s:(r + 1) * s, c * s:(c + 1) * s] = (weights[:, None, None, None] * centre).sum(0)
    return out.float()


def _in_patch(point, r: int, c: int, config: MachineConfig) -> bool:
    col, row = ((point + 1) / 2 * config.grid).floor().clamp(0, config.grid - 1).long().tolist()
    return abs(col - c) <= config.k and abs(row - r) <= config.k
