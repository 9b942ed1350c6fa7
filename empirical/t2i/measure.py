"""Spatial, conditional and feature-space locality of a text-conditioned latent denoiser.

The denoiser is any ``TextDenoiser``: ``D(x [1,C,H,W], sigma: float, cond) -> [1,C,H,W]`` with
``encode(prompt: str) -> cond`` and ``module`` (a ``torch.nn.Module`` whose sub-modules can be
hooked); :class:`empirical.t2i.model.DiffusersDenoiser` is one, the tests build others whose
answer is known. docs/t2i-locality.md states every number; in short, at ``x = x0 + sigma eps``:

* **spatial locality**: rows of ``dD/dx - I`` at a few output positions by VJP
  (:func:`empirical.diagnostics.locality.jacobian_energy_maps`), the share of the off-self
  energy within distance ``r`` (``within_r``, a curve over ``r``) and the effective radius (the
  smallest ``r`` holding ``effective_mass`` of it);
* **conditional locality** (the ablation): ``delta_i = F(full prompt) - F(prompt without part i)``
  for ``F`` = the output ``D`` and each hooked feature; the change map ``||delta_i||_2`` over
  channels per position; its share inside part ``i``'s region (with the region's area, the share
  a change spread evenly would have) and its spread (:func:`change_spread`); the channel
  participation of ``delta_i``'s energy; the support overlap of ``delta_i`` and ``delta_j``;
* **mean-shift cosines** (T8): ``d_i = E[F(base + part i)] - E[F(base)]`` over noise samples
  and seeds, and ``cos(d_i, d_j)``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from empirical.diagnostics.locality import (cosines_from_gram, effective_radius, jacobian_energy_maps,
                                            pixel_distances, pixel_locality_summary)

OUTPUT = "output"  # the group name of the denoiser output D itself


# -- geometry -------------------------------------------------------------------------------------

def region_mask(box, height: int, width: int) -> torch.Tensor:
    """``[H, W]`` bool: pixels whose centre ``((col + 1/2) / W, (row + 1/2) / H)`` lies in the
    normalised box ``[x0, y0, x1, y1]`` (``x0 <= x < x1``, ``y0 <= y < y1``)."""
    x0, y0, x1, y1 = box
    x = (torch.arange(width, dtype=torch.float64) + 0.5) / width
    y = (torch.arange(height, dtype=torch.float64) + 0.5) / height
    return ((y >= y0) & (y < y1))[:, None] & ((x >= x0) & (x < x1))[None, :]


def positions_to_pixels(points, height: int, width: int) -> torch.Tensor:
    """Normalised ``[x, y]`` points -> ``[P, 2]`` long (row, col) of the pixels holding them."""
    pts = torch.tensor(points, dtype=torch.float64).reshape(-1, 2)
    rows = (pts[:, 1] * height).floor().clamp(0, height - 1)
    cols = (pts[:, 0] * width).floor().clamp(0, width - 1)
    return torch.stack([rows, cols], dim=-1).long()


def draw_positions(count: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """``[count, 2]`` (row, col) drawn uniformly from ``generator``."""
    return torch.stack([torch.randint(0, height, (count,), generator=generator),
                        torch.randint(0, width, (count,), generator=generator)], dim=-1)


def change_spread(change: torch.Tensor, mass: float) -> dict:
    """Spread of a non-negative change map ``[h, w]`` around its centroid
    ``c = sum_k change(k) k / sum_k change(k)`` (pixel centres, (row, col)): ``radius`` = the
    smallest distance from ``c`` holding ``mass`` of the change, ``uniform_radius`` = the same
    for an even map around the same ``c`` (so ``ratio = radius / uniform_radius`` is ~1 for a
    change spread over the whole grid, small for a concentrated one), and ``centroid``, all in
    pixels of this grid; nan when the map is 0."""
    h, w = change.shape
    change = change.double()
    total = change.sum()
    if not total > 0:
        nan = float("nan")
        return {"radius": nan, "uniform_radius": nan, "ratio": nan, "centroid": [nan, nan]}
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                indexing="ij")
    centroid = torch.stack([(change * rows).sum() / total, (change * cols).sum() / total])
    distances = pixel_distances(centroid[None, None], h, w)[0, 0]
    radius = float(effective_radius(change, distances, mass))
    uniform = float(effective_radius(torch.ones_like(change), distances, mass))
    return {"radius": radius, "uniform_radius": uniform, "ratio": radius / uniform if uniform > 0 else float("nan"),
            "centroid": centroid.tolist()}


# -- features -------------------------------------------------------------------------------------

def resolve_features(module: torch.nn.Module, selectors) -> dict[str, list[str]]:
    """Selector -> module names. A selector is an exact sub-module name (``mid_block``,
    ``up_blocks.1``), the name of a ``ModuleList`` (``up_blocks``: its children), or a last
    name component (``attn2``: every cross-attention module). A ValueError naming a selector
    that matches nothing."""
    named = dict(module.named_modules())
    groups = {}
    for selector in selectors:
        if isinstance(named.get(selector), torch.nn.ModuleList):
            names = [f"{selector}.{i}" for i in range(len(named[selector]))]
        elif selector in named and selector:
            names = [selector]
        else:
            names = [n for n in named if n.rsplit(".", 1)[-1] == selector]
        if not names:
            raise ValueError(f"no module of {type(module).__name__} matches {selector!r} (an exact "
                             f"name, a ModuleList such as up_blocks, or a last name component such as attn2)")
        groups[selector] = names
    return groups


def as_feature_map(output, height: int, width: int) -> torch.Tensor:
    """A hooked module's output as ``[C, h, w]`` float32: ``[1, C, h, w]`` as is; tokens
    ``[1, N, C]`` (attention) reshaped with ``h / w = height / width`` (the latent's aspect). A
    tuple or a diffusers output object contributes its first entry."""
    if isinstance(output, dict):          # diffusers' BaseOutput (e.g. Transformer2DModelOutput)
        output = next(iter(output.values()))
    if isinstance(output, (tuple, list)):
        output = output[0]
    output = output.detach().float()
    if output.dim() == 4:
        return output[0]
    if output.dim() == 3:
        n, c = output.shape[1:]
        h = round(math.sqrt(n * height / width))
        if h * (n // h) != n:
            raise ValueError(f"cannot lay {n} tokens on a grid of aspect {height}:{width}")
        return output[0].T.reshape(c, h, n // h)
    raise ValueError(f"unsupported feature shape {tuple(output.shape)}")


class FeatureRecorder:
    """Forward hooks on named sub-modules; ``record()`` turns them on for the block it wraps and
    leaves the outputs in ``self.maps`` (name -> ``[C, h, w]``)."""

    def __init__(self, module: torch.nn.Module, names, latent_size: tuple[int, int]):
        self.maps: dict[str, torch.Tensor] = {}
        self.active = False
        self.latent_size = latent_size
        named = dict(module.named_modules())
        self.handles = [named[name].register_forward_hook(self._hook(name)) for name in names]

    def _hook(self, name):
        def hook(_module, _inputs, output):
            if self.active:
                self.maps[name] = as_feature_map(output, *self.latent_size)
        return hook

    @contextmanager
    def record(self):
        self.maps, self.active = {}, True
        try:
            yield self.maps
        finally:
            self.active = False

    def remove(self):
        for handle in self.handles:
            handle.remove()


# -- accumulating one prompt set at one sigma -----------------------------------------------------

@dataclass
class PartStats:
    """Running sums over samples for one (feature, part): the change map ``||delta||`` [h, w],
    the change energy ``delta^2`` [C, h, w], the mean shift ``d`` [C, h, w], the relative change
    ``||delta|| / ||F(full)||`` and the sample count."""
    change_map: torch.Tensor | None = None
    energy: torch.Tensor | None = None
    shift: torch.Tensor | None = None
    relative: float = 0.0
    samples: int = 0
    shift_samples: int = 0

    def add_change(self, delta: torch.Tensor, full: torch.Tensor) -> None:
        energy = delta.pow(2)
        norm = energy.sum(0).sqrt()
        self.change_map = norm if self.change_map is None else self.change_map + norm
        self.energy = energy if self.energy is None else self.energy + energy
        full_norm = float(full.norm())
        self.relative += float(delta.norm()) / full_norm if full_norm > 0 else float("nan")
        self.samples += 1

    def add_shift(self, shift: torch.Tensor) -> None:
        self.shift = shift.clone() if self.shift is None else self.shift + shift
        self.shift_samples += 1


def _divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` elementwise, nan where ``den`` is not positive."""
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.full_like(num, float("nan")))


def _nan_to_none(value):
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def mean_abs_offdiagonal(matrix: torch.Tensor) -> float | None:
    """Mean of ``|M_ij|`` over ``i != j`` (finite entries), None when there are none."""
    n = matrix.shape[0]
    off = matrix[~torch.eye(n, dtype=torch.bool)].abs()
    off = off[torch.isfinite(off)]
    return float(off.mean()) if off.numel() else None


def pair_matrices(stats: list[PartStats]) -> dict[str, torch.Tensor]:
    """For one feature, across parts: ``gram`` of the mean shifts (``d_i . d_j``), ``overlap_num``
    (``sum_u sqrt(e_i(u) e_j(u))`` over units u = channel x position of the mean change energy)
    and ``energy`` (``sum_u e_i(u)``): sums that add over the members of a feature group."""
    shifts = torch.stack([(s.shift / s.shift_samples).flatten().double() for s in stats])
    energies = torch.stack([(s.energy / s.samples).flatten().double() for s in stats])
    roots = energies.sqrt()
    return {"gram": shifts @ shifts.T, "overlap_num": roots @ roots.T, "energy": energies.sum(1)}


def pair_summary(matrices: dict[str, torch.Tensor]) -> dict:
    """``mean_shift_cosine`` (T8), ``support_overlap`` (Bhattacharyya coefficient of the change
    energies: 1 = same units, 0 = disjoint units) and their mean ``|.|`` off the diagonal."""
    cos = cosines_from_gram(matrices["gram"])
    e = matrices["energy"]
    overlap = _divide(matrices["overlap_num"], (e[:, None] * e[None, :]).sqrt())
    return {"mean_shift_cosine": _nan_to_none(cos.tolist()),
            "mean_abs_cosine": mean_abs_offdiagonal(cos),
            "support_overlap": _nan_to_none(overlap.tolist()),
            "mean_overlap": mean_abs_offdiagonal(overlap)}


def part_summary(stats: PartStats, region, latent_size: tuple[int, int], mass: float) -> dict:
    """One (feature, part): ``region_share`` (share of the mean change map inside the part's region)
    and ``region_area`` (its share of the grid) when a region is given; ``spread`` (change_spread,
    radii in latent pixels); ``channel_participation`` (``(sum_c E_c)^2 / (C sum_c E_c^2)`` of the
    change energy per channel: 1/C = one channel, 1 = all equally); ``relative_change``."""
    change = stats.change_map / stats.samples
    c, h, w = stats.energy.shape
    scale = latent_size[0] / h
    spread = change_spread(change, mass)
    out = {"relative_change": stats.relative / stats.samples,
           "spread_radius": spread["radius"] * scale, "spread_uniform_radius": spread["uniform_radius"] * scale,
           "spread_ratio": spread["ratio"], "grid": [h, w]}
    per_channel = (stats.energy / stats.samples).double().sum(dim=(1, 2))
    denom = c * per_channel.pow(2).sum()
    out["channel_participation"] = float(per_channel.sum() ** 2 / denom) if denom > 0 else float("nan")
    if region is not None:
        inside = region_mask(region, h, w)
        total = change.double().sum()
        out["region_share"] = float((change.double() * inside).sum() / total) if total > 0 else float("nan")
        out["region_area"] = float(inside.double().mean())
    return {k: _nan_to_none(v) for k, v in out.items()}


@dataclass
class SigmaAccumulator:
    """Everything gathered for one prompt set at one sigma: ``stats[feature][part]``."""
    part_names: list[str]
    stats: dict[str, list[PartStats]] = field(default_factory=dict)
    energy_maps: list[torch.Tensor] = field(default_factory=list)

    def part(self, feature: str, i: int) -> PartStats:
        if feature not in self.stats:
            self.stats[feature] = [PartStats() for _ in self.part_names]
        return self.stats[feature][i]


def forward_features(denoiser, recorder: FeatureRecorder | None, x, sigma: float, cond) -> dict[str, torch.Tensor]:
    """One forward pass: ``{OUTPUT: D [C,H,W], hooked name: [C,h,w] ...}`` (no grad)."""
    with torch.no_grad():
        if recorder is None:
            return {OUTPUT: denoiser(x, sigma, cond)[0].float()}
        with recorder.record() as maps:
            out = denoiser(x, sigma, cond)[0].float()
        return {OUTPUT: out, **maps}


def accumulate_ablations(acc: SigmaAccumulator, denoiser, recorder, x, sigma: float, conds: dict) -> None:
    """Add one noisy latent ``x``'s ablation changes and mean shifts to ``acc``. ``conds``:
    ``full``, ``base``, ``without`` (list per part) and ``only`` (list per part)."""
    full = forward_features(denoiser, recorder, x, sigma, conds["full"])
    for i, cond in enumerate(conds["without"]):
        ablated = forward_features(denoiser, recorder, x, sigma, cond)
        for name, value in full.items():
            acc.part(name, i).add_change(value - ablated[name], value)
    base = forward_features(denoiser, recorder, x, sigma, conds["base"])
    for i, cond in enumerate(conds["only"]):
        single = forward_features(denoiser, recorder, x, sigma, cond)
        for name, value in base.items():
            acc.part(name, i).add_shift(single[name] - value)


def output_jacobian_energy(denoiser, x, sigma: float, cond, pixels: torch.Tensor) -> torch.Tensor:
    """Energy maps ``[P, H, W]`` of the rows of ``dD/dx - I`` at ``pixels [P, 2]`` (row, col): one
    forward and ``P * C`` VJPs (looped: the memory of one backward pass at a time)."""
    def as_set_denoiser(xx, _sigma, _cond, _mask):
        return denoiser(xx, sigma, cond)
    empty = torch.zeros(1, 0, 2)
    return jacobian_energy_maps(as_set_denoiser, x.float(), torch.tensor([sigma]), empty,
                                torch.zeros(1, 0, dtype=torch.bool), pixels[None], vectorize=False)[0]


def summarize_sigma(acc: SigmaAccumulator, groups: dict[str, list[str]], parts, pixels, latent_size,
                    radii, mass: float) -> dict:
    """The JSON record of one (prompt set, sigma): ``spatial`` (Jacobian), ``conditional`` (the
    output's per-part ablation numbers and pair matrices) and ``features`` (per group: the pair
    matrices of the concatenated members, and per member the per-part numbers)."""
    out = {}
    if acc.energy_maps:
        energy = torch.stack(acc.energy_maps)                       # [S, P, H, W]
        pix = pixels[None].expand(energy.shape[0], -1, -1)
        spatial = pixel_locality_summary(energy, pix, radii, mass)
        spatial["curve"] = {"radii": list(radii), "within": [spatial[f"within_r{r:g}"] for r in radii]}
        out["spatial"] = spatial
    regions = [p.region for p in parts]

    def feature_record(name):
        return {part.name: part_summary(s, regions[i], latent_size, mass)
                for i, (part, s) in enumerate(zip(parts, acc.stats[name]))}

    out["conditional"] = {"parts": feature_record(OUTPUT), **pair_summary(pair_matrices(acc.stats[OUTPUT]))}
    features = {}
    for group, members in groups.items():
        mats = [pair_matrices(acc.stats[m]) for m in members if m in acc.stats]
        if not mats:
            continue
        total = {k: sum(m[k] for m in mats) for k in ("gram", "overlap_num", "energy")}
        features[group] = {**pair_summary(total),
                           "modules": {m: {"parts": feature_record(m), **pair_summary(pair_matrices(acc.stats[m]))}
                                       for m in members if m in acc.stats}}
    out["features"] = features
    return out
