"""Locality diagnostics for any conditional denoiser (SCIENCE.md §3 "LCS", §6 "Diagnostics").

Public API (stable; tensors in, dicts of floats out; every map and summary comes back on the CPU)::

    SetDenoiser                     protocol: D(x [B,C,H,W], sigma [B], cond [B,K,2], mask [B,K]) -> [B,C,H,W]
    from_list_denoiser(fn)          adapter: fn(x [1,C,H,W], sigma: float, locations [K,2]) -> [1,C,H,W]
    measure_locality(denoiser, clean, cond, mask, sigmas=DEFAULT_SIGMAS, seed=0, pixels=None,
                     footprints=None, radius=None, allowed=None, radii=RADII, mass=EFFECTIVE_MASS,
                     pixels_per_image=3, vectorize=None, progress=False, keep_maps=False,
                     jacobian_images=None)
        -> {"per_sigma": [measure_at_sigma ...], "summary": overall_summary, "pixels", "radius", "seed"}
    measure_denoiser_locality(denoiser, dataset, num_images=8, min_objects=2, sigmas=DEFAULT_SIGMAS,
                              seed=0, device=None, **measure_locality_options)
        -> measure_locality's dict + {"images": dataset indices}   (items (image [C,H,W], cond [K,2]))
    measure_at_sigma(denoiser, x, sigma, cond, mask, pixels, footprints, allowed=None, radii=RADII,
                     mass=EFFECTIVE_MASS, vectorize=None, keep_maps=False, jacobian_images=None)
        -> {"sigma", "pixel": pixel_locality_summary, "conditional": conditional_locality_summary}
    jacobian_energy_maps(denoiser, x, sigma, cond, mask, pixels, vectorize=None) -> energy [B,P,H,W]
    pixel_locality_summary(energy, pixels, radii=RADII, mass=EFFECTIVE_MASS, allowed=None) -> dict
    conditional_change_maps(denoiser, x, sigma, cond, mask) -> (change [B,K,H,W], valid [B,K])
    conditional_locality_summary(change, valid, footprints) -> dict
    overall_summary(per_sigma) -> dict  (conditional_leakage, pixel_effective_radius, ...)
    disc_footprints(cond, mask, height, width, radius) -> bool [B,K,H,W]
    box_regions(pixels, half_width, height, width) -> bool [B,P,H,W]
    label_regions(labels [B,H,W], pixels) -> bool [B,P,H,W]
    choose_pixels(cond, mask, height, width, per_image, generator=None) -> long [B,P,2] (row, col)

Conventions. Images ``x [B, C, H, W]``; conditioners are 2-D locations ``cond [B, K, 2]`` with
``(u, v)`` in ``[-1, 1]`` (``u`` right: column, ``v`` down: row; pixel ``(row, col)`` has centre
``u = 2 (col + 1/2) / W - 1``, ``v = 2 (row + 1/2) / H - 1``), padded, with ``mask [B, K]``
(True = real entry). Our ``EDMDenoiser`` and ``PatchLocalDenoiser`` *are* ``SetDenoiser``s;
:func:`from_list_denoiser` adapts a model that takes one image and a list of locations; the exact
denoisers of ``numerics`` families are wrapped in :mod:`empirical.toy.exact_denoiser`.

**Pixel locality.** The score Jacobian ``ds_i/dx_k`` is what LCS constrains. With
``D = x + sigma^2 s`` (Tweedie), ``dD/dx - I = sigma^2 ds/dx``: we take rows of ``dD/dx`` by
reverse mode (one VJP per output coordinate, batched with ``torch.func.vmap`` or looped) and
subtract the identity (which is local trivially and dominates ``dD/dx`` at small sigma). For output pixel
``i`` (all ``C`` output channels) its *energy map* is
``E_i(k) = sum_{c_out, c_in} (dD_{i,c_out}/dx_{k,c_in} - delta_{ik} delta_{c_out c_in})^2``
over input pixels ``k``; fractions of ``E_i`` are scale free, so the ``sigma^2`` is irrelevant.
Summaries are over the *other* pixels ``k != i``: the self entry holds the diagonal of the score
Jacobian (about ``-1 / (sigma^2 + sigma_data^2)`` per channel for any denoiser at large sigma,
where ``D ~ c_skip x``), which is local trivially and would dominate every fraction; it is reported
apart as ``self_fraction = E_i(i) / sum_k E_i(k)``. Then
``within[r] = sum_{0 < |k - i| <= r} E_i(k) / sum_{k != i} E_i(k)`` (Euclidean distance between
pixel centres, in pixels), the *effective radius* (smallest distance ``r`` at which the
cumulative off-self energy of all pixels at distance ``<= r`` reaches ``EFFECTIVE_MASS``), and,
when an *allowed* region per output pixel is given (its CPC block, its patch), the violation
``outside_allowed = sum_{k not allowed} E_i(k) / sum_k E_i(k)``, relative to the *whole* map
(as ``numerics.locality.pixel_locality_violation``: a violation is measured against the full
Jacobian; off-self energy can itself be at rounding level, e.g. isotropic blocks).

**Conditional locality.** For each real conditioner ``c_j`` of image ``b`` we evaluate the
denoiser without it (the entry is *deleted*, not only masked) and map
``Delta_j(k) = || D(x, C)[:, k] - D(x, C minus c_j)[:, k] ||_2`` (over channels) per pixel ``k``.
With ``F_j`` the footprint of ``c_j`` (a disc around its location, or a given mask) the
summaries are fractions of ``sum_k Delta_j(k)``: ``inside`` (on ``F_j``), ``other_objects`` (on
other conditioners' footprints, outside ``F_j``), ``background`` (on no footprint) and
``leakage = 1 - inside = other_objects + background``. For an exactly CPC family the change
lies in the removed object's mask: leakage 0 (T1, conditional locality).

Every fraction is ``nan`` when its denominator is 0 (no dependence at all); means skip ``nan``
and the count of such cases is reported. Every default is explained in docs/locality-diagnostics.md.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

import torch

RADII = (1, 2, 4, 8)        # pixels: radii at which the Jacobian energy fraction is reported
EFFECTIVE_MASS = 0.9        # the effective radius holds this fraction of the Jacobian energy
DEFAULT_SIGMAS = (0.1, 0.5, 2.0)


class SetDenoiser(Protocol):
    """``D(x [B,C,H,W], sigma [B], cond [B,K,2], mask [B,K] bool) -> x0_hat [B,C,H,W]``.

    Must be differentiable in ``x`` with ``torch.func`` (no in-place updates of ``x``, no
    ``.item()`` on it) and must treat ``mask == False`` entries as absent."""

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor: ...


def from_list_denoiser(fn: Callable) -> SetDenoiser:
    """Adapt ``fn(x [1,C,H,W], sigma: float, locations [K_b,2]) -> [1,C,H,W]`` (one image and an
    unpadded location list) to :class:`SetDenoiser` by looping over the batch."""
    def denoiser(x, sigma, cond, mask):
        return torch.cat([fn(x[b:b + 1], float(sigma[b]), cond[b][mask[b]]) for b in range(x.shape[0])])
    return denoiser


# -- geometry ------------------------------------------------------------------------------------

def location_to_pixel(cond: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``cond [..., 2]`` (u, v) -> integer ``(row, col) [..., 2]`` of the pixel holding it."""
    col = ((cond[..., 0] + 1) / 2 * width).floor().clamp(0, width - 1)
    row = ((cond[..., 1] + 1) / 2 * height).floor().clamp(0, height - 1)
    return torch.stack([row, col], dim=-1).long()


def _pixel_grid(height: int, width: int, dtype=torch.float64) -> torch.Tensor:
    """``[H, W, 2]`` (row, col) of every pixel."""
    rows, cols = torch.meshgrid(torch.arange(height, dtype=dtype), torch.arange(width, dtype=dtype),
                                indexing="ij")
    return torch.stack([rows, cols], dim=-1)


def pixel_distances(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Euclidean distance (pixels) from each ``pixels [B, P, 2]`` (row, col) to every pixel:
    ``[B, P, H, W]``."""
    grid = _pixel_grid(height, width).to(pixels.device)
    diff = grid[None, None] - pixels.to(torch.float64)[:, :, None, None, :]
    return diff.pow(2).sum(-1).sqrt()


def disc_footprints(cond: torch.Tensor, mask: torch.Tensor, height: int, width: int,
                    radius: float) -> torch.Tensor:
    """``[B, K, H, W]`` bool: pixels whose centre lies within ``radius`` pixels of the location
    (continuous location, pixel units); all False for padded entries."""
    centre_row = (cond[..., 1].double() + 1) / 2 * height - 0.5
    centre_col = (cond[..., 0].double() + 1) / 2 * width - 0.5
    grid = _pixel_grid(height, width).to(cond.device)
    dist = ((grid[None, None, :, :, 0] - centre_row[..., None, None]) ** 2
            + (grid[None, None, :, :, 1] - centre_col[..., None, None]) ** 2).sqrt()
    return (dist <= radius) & mask[..., None, None]


def box_regions(pixels: torch.Tensor, half_width: int, height: int, width: int) -> torch.Tensor:
    """``[B, P, H, W]`` bool: the square of side ``2 half_width + 1`` centred on each output pixel
    (Chebyshev distance ``<= half_width``)."""
    grid = _pixel_grid(height, width, torch.long).to(pixels.device)
    diff = (grid[None, None] - pixels[:, :, None, None, :]).abs().amax(-1)
    return diff <= half_width


def label_regions(labels: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """``labels [B, H, W]`` (a partition of the pixels, e.g. CPC blocks) -> ``[B, P, H, W]`` bool:
    the pixels sharing the output pixel's label."""
    pixels = pixels.to(labels.device)
    own = labels[torch.arange(labels.shape[0], device=labels.device)[:, None], pixels[..., 0], pixels[..., 1]]
    return labels[:, None] == own[..., None, None]


def choose_pixels(cond: torch.Tensor, mask: torch.Tensor, height: int, width: int, per_image: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Output pixels for the Jacobian: ``[B, P, 2]`` (row, col, on the CPU), ``P = per_image``. The pixels
    under the first ``min(K_b, P - 1)`` conditioners (objects), the rest drawn uniformly
    (background or objects alike), from ``generator``."""
    b = cond.shape[0]
    chosen = torch.stack([torch.randint(0, height, (b, per_image), generator=generator),
                          torch.randint(0, width, (b, per_image), generator=generator)], dim=-1)
    on_objects = location_to_pixel(cond, height, width).cpu()
    mask = mask.cpu()
    for i in range(b):
        real = on_objects[i][mask[i]][:max(per_image - 1, 0)]
        chosen[i, :len(real)] = real
    return chosen


# -- pixel locality ------------------------------------------------------------------------------

def _rows_one_image(denoiser, x1, sigma1, cond1, mask1, pixels1, vectorize) -> torch.Tensor:
    """Rows of ``dD/dx - I`` for one image: ``[P, C, C, H, W]`` (output channel, input channel)."""
    _, ch, h, w = x1.shape
    p = pixels1.shape[0]
    pixels1 = pixels1.to(x1.device)
    cot = torch.zeros(p, ch, 1, ch, h, w, dtype=x1.dtype, device=x1.device)
    idx_p = torch.arange(p, device=x1.device)[:, None].expand(p, ch)
    idx_c = torch.arange(ch, device=x1.device)[None, :].expand(p, ch)
    cot[idx_p, idx_c, 0, idx_c, pixels1[:, 0, None].expand(p, ch), pixels1[:, 1, None].expand(p, ch)] = 1
    cot = cot.reshape(p * ch, 1, ch, h, w)
    _, vjp_fn = torch.func.vjp(lambda xx: denoiser(xx, sigma1, cond1, mask1), x1)
    if vectorize is None:  # measured: vmap is ~1.7x slower than a loop on CPU, batched on GPU
        vectorize = x1.device.type == "cuda"
    if vectorize:
        rows = torch.func.vmap(vjp_fn)(cot)[0]
    else:
        rows = torch.stack([vjp_fn(c)[0] for c in cot])
    return (rows - cot).reshape(p, ch, ch, h, w)


def jacobian_energy_maps(denoiser: SetDenoiser, x, sigma, cond, mask, pixels,
                         vectorize: bool | None = None) -> torch.Tensor:
    """Energy maps ``E_i(k)`` of the rows of ``dD/dx - I``: ``[B, P, H, W]``.

    ``x [B,C,H,W]``, ``sigma [B]``, ``cond [B,K,2]``, ``mask [B,K]``, ``pixels [B,P,2]`` (row, col)
    output pixels. Returned on the CPU (summaries run there). One forward pass per image
    (``torch.func.vjp``) and ``P*C`` VJPs, batched by ``torch.func.vmap`` (``vectorize=True``) or
    looped (``False``; also for models whose ops lack batching rules). Default ``None``: vmap on
    CUDA, loop on CPU, where we measured the loop 1.7x faster (docs/locality-diagnostics.md).
    Images are done one at a time: a VJP costs a backward pass over the whole batch it was
    taken on."""
    maps = []
    for b in range(x.shape[0]):
        rows = _rows_one_image(denoiser, x[b:b + 1].detach(), sigma[b:b + 1], cond[b:b + 1],
                               mask[b:b + 1], pixels[b], vectorize)
        maps.append(rows.detach().pow(2).sum(dim=(1, 2)).cpu())
    return torch.stack(maps)


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)),
                       torch.full_like(num, float("nan")))


def _nanmean(values: torch.Tensor) -> float | None:
    """Mean over finite entries; None when there are none (JSON has no NaN)."""
    finite = values[torch.isfinite(values)]
    return float(finite.double().mean()) if finite.numel() else None


def _nanmax(values: torch.Tensor) -> float | None:
    finite = values[torch.isfinite(values)]
    return float(finite.double().max()) if finite.numel() else None


def effective_radius(energy: torch.Tensor, distances: torch.Tensor,
                     mass: float = EFFECTIVE_MASS) -> torch.Tensor:
    """Smallest distance ``r`` with ``sum_{d_k <= r} E(k) >= mass * sum_k E(k)``; ``energy``,
    ``distances`` ``[..., H, W]`` -> ``[...]`` (nan where the energy is 0)."""
    e = energy.flatten(-2).double()
    d = distances.flatten(-2)
    order = d.argsort(dim=-1, stable=True)
    d_sorted = d.gather(-1, order)
    cum = e.gather(-1, order).cumsum(-1)
    total = cum[..., -1:]
    # all pixels at the same distance enter together: use the cumulative sum at each tie's end
    reached = cum >= mass * total * (1 - 1e-12)
    first = reached.float().argmax(-1, keepdim=True)
    radius = d_sorted.gather(-1, first)[..., 0]
    return torch.where(total[..., 0] > 0, radius, torch.full_like(radius, float("nan")))


def pixel_locality_per_pixel(energy, pixels, radii=RADII, mass: float = EFFECTIVE_MASS,
                             allowed=None) -> dict:
    """Per output pixel: ``within_r{r}`` ``[B, P]`` for each radius, ``effective_radius [B, P]``
    (fractions of the energy of the *other* pixels ``k != i``), ``self_fraction [B, P]`` (the
    output pixel's own share of the whole map) and, with ``allowed [B,P,H,W]``,
    ``outside_allowed [B, P]`` (share of the whole map). See the module docstring."""
    _, _, h, w = energy.shape
    energy = energy.double()
    pixels = pixels.to(energy.device)
    allowed = None if allowed is None else allowed.to(energy.device)
    dist = pixel_distances(pixels, h, w)
    full = energy.sum(dim=(-2, -1))
    self_fraction = _safe_ratio((energy * (dist == 0)).sum(dim=(-2, -1)), full)
    outside = None if allowed is None else _safe_ratio((energy * ~allowed).sum(dim=(-2, -1)), full)
    energy = energy * (dist > 0)
    total = energy.sum(dim=(-2, -1))
    out = {f"within_r{r:g}": _safe_ratio((energy * (dist <= r)).sum(dim=(-2, -1)), total) for r in radii}
    out["effective_radius"] = effective_radius(energy, dist, mass)
    out["self_fraction"] = self_fraction
    if allowed is not None:
        out["outside_allowed"] = outside
    return out


def pixel_locality_summary(energy, pixels, radii=RADII, mass: float = EFFECTIVE_MASS, allowed=None) -> dict:
    """Means over output pixels of :func:`pixel_locality_per_pixel` (``outside_allowed`` also
    as a max), the number of pixels and of pixels with zero off-self energy (excluded from the
    means)."""
    per = pixel_locality_per_pixel(energy, pixels, radii, mass, allowed)
    summary = {name: _nanmean(v) for name, v in per.items()}
    if allowed is not None:
        summary["outside_allowed_max"] = _nanmax(per["outside_allowed"])
    summary["pixels"] = int(energy.shape[0] * energy.shape[1])
    summary["zero_energy_pixels"] = int(torch.isnan(per["effective_radius"]).sum())
    summary["mass"] = mass
    return summary


# -- conditional locality ------------------------------------------------------------------------

def _without(cond, mask, j: int):
    keep = [i for i in range(cond.shape[1]) if i != j]
    return cond[:, keep], mask[:, keep]


@torch.no_grad()
def conditional_change_maps(denoiser: SetDenoiser, x, sigma, cond, mask):
    """``(change [B, K, H, W], valid [B, K])``: ``change[b, j, k] = ||D(x, C) - D(x, C minus
    c_j)||_2`` over channels at pixel ``k``; ``valid = mask`` (padded entries give zero maps);
    both on the CPU. ``K + 1`` batched forward passes."""
    base = denoiser(x, sigma, cond, mask)
    maps = []
    for j in range(cond.shape[1]):
        sub_cond, sub_mask = _without(cond, mask, j)
        diff = (base - denoiser(x, sigma, sub_cond, sub_mask)).pow(2).sum(1).sqrt()
        maps.append(diff * mask[:, j, None, None])
    h, w = x.shape[-2:]
    change = torch.stack(maps, dim=1) if maps else x.new_zeros(x.shape[0], 0, h, w)
    return change.cpu(), mask.cpu().clone()


def conditional_locality_per_removal(change, valid, footprints) -> dict:
    """Per (image, conditioner) fractions of the total change: ``inside``, ``other_objects``,
    ``background``, ``leakage`` (each ``[B, K]``, nan where invalid or the change is 0) and
    ``total`` (sum of the change map, in image units per pixel)."""
    change = change.double()
    own = footprints = footprints.to(change.device)
    valid = valid.to(change.device)
    real = footprints & valid[..., None, None]
    any_fp = real.any(dim=1, keepdim=True)                       # [B, 1, H, W]
    others = any_fp & ~own
    background = ~any_fp & ~own
    total = change.sum(dim=(-2, -1))
    total_valid = torch.where(valid, total, torch.zeros_like(total))
    frac = lambda region: _safe_ratio((change * region).sum(dim=(-2, -1)), total_valid)  # noqa: E731
    inside = frac(own)
    return {"inside": inside, "other_objects": frac(others), "background": frac(background),
            "leakage": 1 - inside, "total": torch.where(valid, total, torch.full_like(total, float("nan")))}


def conditional_locality_summary(change, valid, footprints) -> dict:
    """Means over real conditioners of :func:`conditional_locality_per_removal` (``leakage``
    also as a max and with its standard error over removals, ``leakage_sem``), ``mean_change``
    (mean over pixels of the change map), the number of removals and of removals that changed
    nothing (excluded from the fraction means)."""
    per = conditional_locality_per_removal(change, valid, footprints)
    h, w = change.shape[-2:]
    summary = {name: _nanmean(per[name][valid])
               for name in ("inside", "other_objects", "background", "leakage")}
    summary["leakage_max"] = _nanmax(per["leakage"][valid])
    leak = per["leakage"][valid]
    leak = leak[torch.isfinite(leak)]
    summary["leakage_sem"] = float(leak.std() / len(leak) ** 0.5) if len(leak) > 1 else None
    summary["mean_change"] = _nanmean(per["total"][valid] / (h * w))
    summary["removals"] = int(valid.sum())
    summary["zero_change_removals"] = int((per["total"][valid] == 0).sum())
    return summary


# -- everything at one sigma and over a grid -----------------------------------------------------

def measure_at_sigma(denoiser: SetDenoiser, x, sigma: float, cond, mask, pixels, footprints,
                     allowed=None, radii=RADII, mass: float = EFFECTIVE_MASS,
                     vectorize: bool | None = None, keep_maps: bool = False,
                     jacobian_images: int | None = None) -> dict:
    """Pixel and conditional locality of ``denoiser`` at noisy images ``x [B,C,H,W]`` (given):
    ``{"sigma", "pixel": pixel_locality_summary, "conditional": conditional_locality_summary}``;
    with ``keep_maps`` also ``"maps": {"x", "energy" [B',P,H,W], "change" [B,K,H,W]}`` (tensors).
    ``jacobian_images``: take Jacobian rows of the first ``B'`` images only (default all)."""
    sig = torch.full((x.shape[0],), float(sigma), dtype=x.dtype, device=x.device)
    n = x.shape[0] if jacobian_images is None else min(jacobian_images, x.shape[0])
    pixels = pixels[:n]
    allowed = None if allowed is None else allowed[:n]
    energy = jacobian_energy_maps(denoiser, x[:n], sig[:n], cond[:n], mask[:n], pixels, vectorize)
    change, valid = conditional_change_maps(denoiser, x, sig, cond, mask)
    result = {"sigma": float(sigma),
              "pixel": pixel_locality_summary(energy, pixels, radii, mass, allowed),
              "conditional": conditional_locality_summary(change, valid, footprints)}
    if keep_maps:
        result["maps"] = {"x": x, "energy": energy, "change": change}
    return result


def overall_summary(per_sigma: list[dict]) -> dict:
    """Numbers a table can use, averaged over the sigma grid (None where undefined):
    ``conditional_leakage`` (mean leakage), ``conditional_leakage_max``,
    ``cross_talk_objects``, ``cross_talk_background``, ``pixel_effective_radius``,
    ``pixel_self_fraction``, ``pixel_energy_within_r{r}`` (and ``pixel_energy_outside_allowed``)."""
    def mean_of(part, key):
        vals = [r[part][key] for r in per_sigma if r[part].get(key) is not None]
        return float(sum(vals) / len(vals)) if vals else None

    maxima = [r["conditional"]["leakage_max"] for r in per_sigma
              if r["conditional"]["leakage_max"] is not None]
    out = {"conditional_leakage": mean_of("conditional", "leakage"),
           "conditional_leakage_max": max(maxima) if maxima else None,
           "cross_talk_objects": mean_of("conditional", "other_objects"),
           "cross_talk_background": mean_of("conditional", "background"),
           "pixel_effective_radius": mean_of("pixel", "effective_radius"),
           "pixel_self_fraction": mean_of("pixel", "self_fraction")}
    for key in per_sigma[0]["pixel"] if per_sigma else ():
        if key.startswith("within_r"):
            out[f"pixel_energy_{key}"] = mean_of("pixel", key)
    if per_sigma and "outside_allowed" in per_sigma[0]["pixel"]:
        out["pixel_energy_outside_allowed"] = mean_of("pixel", "outside_allowed")
    return out


def noisy_images(clean: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """``clean + sigma * n``, ``n ~ N(0, I)`` drawn from ``generator`` (CPU) in ``clean``'s dtype."""
    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype).to(clean.device)
    return clean + sigma * noise


def measure_locality(denoiser: SetDenoiser, clean, cond, mask, sigmas=DEFAULT_SIGMAS, seed: int = 0,
                     pixels=None, footprints=None, radius: float | None = None, allowed=None,
                     radii=RADII, mass: float = EFFECTIVE_MASS, pixels_per_image: int = 3,
                     vectorize: bool | None = None, progress: bool = False, keep_maps: bool = False,
                     jacobian_images: int | None = None) -> dict:
    """Locality over a sigma grid at ``x = clean + sigma * n`` (the same ``n`` at every sigma,
    seeded by ``seed``).

    ``clean [B,C,H,W]``, ``cond [B,K,2]``, ``mask [B,K]``. ``pixels [B,P,2]`` default:
    :func:`choose_pixels` (``pixels_per_image``, seeded). ``footprints [B,K,H,W]`` default:
    :func:`disc_footprints` with ``radius`` (default ``H / 8`` pixels). Returns
    ``{"per_sigma": [measure_at_sigma...], "summary": overall_summary, "pixels", "radius", "seed"}``.
    ``jacobian_images``: Jacobian rows for the first that many images only (cost control).
    """
    if not sigmas:
        raise ValueError("sigmas: need at least one noise level")
    if any(not (s > 0 and math.isfinite(s)) for s in sigmas):
        raise ValueError(f"sigmas: must be positive and finite, got {list(sigmas)}")
    b, _, h, w = clean.shape
    generator = torch.Generator().manual_seed(seed)
    if pixels is None:
        pixels = choose_pixels(cond, mask, h, w, pixels_per_image, generator)
    if footprints is None:
        radius = h / 8 if radius is None else radius
        footprints = disc_footprints(cond, mask, h, w, radius)
    noise_generator = torch.Generator().manual_seed(seed + 1)
    noise = torch.randn(clean.shape, generator=noise_generator, dtype=clean.dtype).to(clean.device)
    iterator = list(sigmas)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, desc="locality sigma", unit="sigma")
    per_sigma = [measure_at_sigma(denoiser, clean + s * noise, s, cond, mask, pixels, footprints, allowed,
                                  radii, mass, vectorize, keep_maps, jacobian_images) for s in iterator]
    return {"per_sigma": per_sigma, "summary": overall_summary(per_sigma),
            "pixels": pixels.tolist(), "radius": radius, "seed": seed}


def select_items(dataset, num_images: int, min_objects: int, start: int = 0,
                 max_objects: int | None = None) -> list[int]:
    """Indices of the first ``num_images`` items of ``dataset`` from index ``start`` with at least
    ``min_objects`` (and at most ``max_objects``) conditioners; a ValueError when there is none."""
    indices = []
    for i in range(start, len(dataset)):
        count = dataset[i][1].shape[0]
        if count >= min_objects and (max_objects is None or count <= max_objects):
            indices.append(i)
            if len(indices) == num_images:
                break
    if not indices:
        raise ValueError(f"no item with >= {min_objects} conditioners in the dataset")
    return indices


def measure_denoiser_locality(denoiser: SetDenoiser, dataset, num_images: int = 8, min_objects: int = 2,
                              sigmas=DEFAULT_SIGMAS, seed: int = 0, device=None, **options) -> dict:
    """:func:`measure_locality` of ``denoiser`` on a dataset, as ``localcomp clevr locality`` does
    for a trained run (the public entry point, docs/api.md).

    ``dataset``: any indexable of ``(image [C,H,W], cond [K_i,2])`` (``ClevrDataset``,
    ``BlobDataset``, a list). The first ``num_images`` items with at least ``min_objects``
    conditioners are padded into ``clean, cond, mask`` and moved to ``device`` (default: the
    device of ``denoiser``'s parameters when it is a ``torch.nn.Module``, else the CPU).
    ``options`` go to :func:`measure_locality` (``radius``, ``footprints``, ``pixels_per_image``,
    ``jacobian_images``, ...). Returns its dict plus ``"images"``: the dataset indices used."""
    indices = select_items(dataset, num_images, min_objects)
    items = [dataset[i] for i in indices]
    clean = torch.stack([torch.as_tensor(image) for image, _ in items])
    k = max(int(c.shape[0]) for _, c in items)
    cond = torch.zeros(len(items), k, 2, dtype=clean.dtype)
    mask = torch.zeros(len(items), k, dtype=torch.bool)
    for b, (_, c) in enumerate(items):
        cond[b, :c.shape[0]] = torch.as_tensor(c, dtype=clean.dtype)
        mask[b, :c.shape[0]] = True
    if device is None:
        params = list(denoiser.parameters()) if isinstance(denoiser, torch.nn.Module) else []
        device = params[0].device if params else torch.device("cpu")
    clean, cond, mask = clean.to(device), cond.to(device), mask.to(device)
    result = measure_locality(denoiser, clean, cond, mask, sigmas, seed=seed, **options)
    result["images"] = indices
    return result


def cosines_from_gram(gram: torch.Tensor) -> torch.Tensor:
    """Cosines ``G_ij / sqrt(G_ii G_jj)`` of a Gram matrix ``G [n, n]`` of ``n`` vectors (nan
    where a vector is zero). Shared by the colour and text-to-image mean-shift (T8) measures."""
    norms = gram.diagonal().clamp_min(0).sqrt()
    den = norms[:, None] * norms[None, :]
    return torch.where(den > 0, gram / torch.where(den > 0, den, torch.ones_like(den)),
                       torch.full_like(gram, float("nan")))
