"""Pixel- and feature-space conditional locality of set-conditioned denoisers, for colour
conditioners (issue 13 item 1; definitions and choices in docs/colour-clevr.md).

A colour has no mask, so the leakage of :mod:`empirical.diagnostics.locality` (share of the
change outside the removed *location*'s disc) does not apply directly. Three measures here:

**Pixel-space footprint share** (:func:`colour_footprints`, :func:`footprint_share`). Remove
one colour ``c_j`` from the conditioner set; the change map
``Delta_j(k) = ||D(x, C) - D(x, C minus c_j)||_2`` (over channels, per pixel, the map of
``locality.conditional_change_maps``) is split between the *footprint of that colour's objects*
(the union of discs of ``radius`` pixels around every detection whose read-out colour is
``c_j``: the network cannot tell which of several same-coloured objects a token meant) and the
rest. ``inside`` is the share of ``sum_k Delta_j(k)`` on the footprint, ``area`` the share of
pixels it covers (what a change spread evenly over the image would put there), ``excess =
inside - area``. A conditionally local colour score has ``inside`` near 1; a score on which
every pixel feels the colour has ``inside`` near ``area``.

**Mean-shift orthogonality** (T8, :func:`mean_shift_cosines`). For conditioners ``c_1..c_n``
(the 8 colours, or 8 locations for a location model), at noisy inputs ``x = x0 + sigma n``:
``d_i = mean_x [F(x, {c_i}) - F(x, empty)]`` flattened over the coordinates of a space ``F``
(the denoiser output: pixel space; or internal activations: feature space, each channel at
each position a coordinate). T8 (Lemma 8.1): factorized conditionals make
``(mu_i - mu_b) . (mu_j - mu_b) = 0`` for ``i != j``. We report the ``|cos|`` matrix of the
``d_i`` and its mean off-diagonal entry, in the full space, pooled over positions (channel
vectors) and pooled over channels (position maps); and, because every conditioner also adds
"an object" (a component common to all ``d_i``), the share of that common component
(``common_share = ||mean_i d_i||^2 / mean_i ||d_i||^2``) and the ``|cos|`` matrix of the
centred shifts ``d_i - mean_j d_j`` (exactly orthogonal shifts of equal norm give
``1 / (n - 1)`` there, ``centred_reference``).

**Removal-support overlap** (:func:`removal_overlap`). On an image with conditioner set ``C``,
the change from removing ``c_j``, ``Delta_j = F(x, C) - F(x, C minus c_j)``, is turned into an
energy profile ``a_j = Delta_j^2 / sum Delta_j^2`` over the coordinates; for two removals
``j != l`` of the same image ``overlap = sum min(a_j, a_l)`` (1: the same coordinates change
in the same proportions; 0: disjoint supports, feature-space conditional locality). Its
reference ``overlap_shuffled`` is the same with the coordinates of ``a_l`` permuted at random
(same magnitudes, unrelated support); ``overlap / overlap_shuffled`` below 1 means the two
colours act on different coordinates, about 1 unrelated ones, above 1 shared ones. Reported
with ``|cos(Delta_j, Delta_l)|``, in pixel space and per feature layer, per sigma.

Feature layers (:data:`FEATURE_LAYERS`) of :class:`empirical.models.unet.SetUNet`: ``mid``, the
bottleneck (output of the middle block, ``[B, 2C, R/4, R/4]``: ``[B, 64, 8, 8]`` at ``mini``),
and ``dec``, the last decoder block (``[B, C, R, R]``, before the output convolution).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from empirical.diagnostics.locality import (DEFAULT_SIGMAS, conditional_change_maps,
                                            conditional_locality_per_removal, cosines_from_gram,
                                            disc_footprints, noisy_images)

FEATURE_LAYERS = ("mid", "dec")


def colour_footprints(detections, read_colours, cond_colours, mask, height: int, width: int,
                      radius: float) -> torch.Tensor:
    """Footprint of each conditioner ``[B, K, H, W]`` bool: the union of discs of ``radius`` pixels
    around image ``b``'s detections (``detections[b]`` ``[n_b, 2]`` ``(u, v)``) whose read colour
    (``read_colours[b]`` ``[n_b]``) equals conditioner ``j``'s colour (``cond_colours [B, K]``
    indices); empty where no detection has that colour or the entry is padding."""
    b, k = cond_colours.shape
    out = torch.zeros(b, k, height, width, dtype=torch.bool)
    for i in range(b):
        found = torch.as_tensor(np.asarray(detections[i], np.float64).reshape(-1, 2))
        if not len(found):
            continue
        discs = disc_footprints(found[None], torch.ones(1, len(found), dtype=torch.bool), height, width,
                                radius)[0]                                   # [n, H, W]
        colours = np.asarray(read_colours[i], np.int64).reshape(-1)
        for j in range(k):
            if bool(mask[i, j]):
                same = torch.as_tensor(colours == int(cond_colours[i, j]))
                if same.any():
                    out[i, j] = discs[same].any(0)
    return out


def footprint_share(denoiser, clean, cond, mask, footprints, sigmas=DEFAULT_SIGMAS, seed: int = 0) -> dict:
    """Pixel-space footprint share per sigma (module docstring) of ``denoiser`` at ``clean
    [B, C, H, W]`` noised with seeded noise (``torch.Generator().manual_seed(seed)``, the same noise
    at every sigma), conditioners ``cond [B, K, D]``, ``mask [B, K]``, ``footprints [B, K, H, W]``.
    Removals whose footprint is empty are skipped (counted in ``no_footprint``)."""
    per_sigma = []
    valid_fp = mask.cpu() & footprints.flatten(2).any(-1)
    area = footprints.flatten(2).double().mean(-1)                             # [B, K]
    for sigma in sigmas:
        g = torch.Generator().manual_seed(seed)
        x = noisy_images(clean, float(sigma), g)
        s = torch.full((clean.shape[0],), float(sigma), dtype=clean.dtype, device=clean.device)
        change, valid = conditional_change_maps(denoiser, x, s, cond, mask)
        per = conditional_locality_per_removal(change, valid & valid_fp, footprints)
        inside = per["inside"][valid & valid_fp]
        fp_area = area[valid & valid_fp]
        ok = torch.isfinite(inside)
        inside, fp_area = inside[ok], fp_area[ok]
        n = int(len(inside))
        per_sigma.append({
            "sigma": float(sigma), "removals": n, "no_footprint": int((mask.cpu() & ~valid_fp).sum()),
            "inside": float(inside.mean()) if n else None,
            "inside_sem": float(inside.std() / math.sqrt(n)) if n > 1 else None,
            "area": float(fp_area.mean()) if n else None,
            "excess": float((inside - fp_area).mean()) if n else None,
            "ratio": float((inside / fp_area).mean()) if n else None})
    return {"per_sigma": per_sigma, "seed": seed}


class FeatureTap:
    """Forward hooks that keep the activations of named layers of an ``EDMDenoiser``'s
    ``SetUNet``: ``with FeatureTap(model, layers) as tap: model(...); tap.features[name]``."""

    def __init__(self, model, layers=FEATURE_LAYERS):
        net = model.net
        modules = {"mid": net.mid["res2"], "dec": net.up[-1]["attn"] if "attn" in net.up[-1] else net.up[-1]["res"]}
        unknown = [name for name in layers if name not in modules]
        if unknown:
            raise ValueError(f"unknown feature layers {unknown}; known: {', '.join(modules)}")
        self.modules = {name: modules[name] for name in layers}
        self.features: dict[str, torch.Tensor] = {}
        self.handles = []

    def __enter__(self):
        for name, module in self.modules.items():
            self.handles.append(module.register_forward_hook(
                lambda _m, _i, out, name=name: self.features.__setitem__(name, out.detach())))
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        self.handles = []


@torch.no_grad()
def spaces_of(model, x, sigma, cond, mask, layers=FEATURE_LAYERS) -> dict[str, torch.Tensor]:
    """``{"pixel": D(x, sigma, cond, mask), layer: activations}`` for every layer, each ``[B, C, h, w]``."""
    with FeatureTap(model, layers) as tap:
        out = model(x, sigma, cond, mask)
    return {"pixel": out, **tap.features}


def abs_cosine_matrix(vectors: torch.Tensor) -> np.ndarray:
    """``|cos|`` between the rows of ``vectors [n, d]`` -> ``[n, n]`` (nan for a zero row)."""
    v = vectors.double()
    return cosines_from_gram(v @ v.T).abs().numpy()


def off_diagonal_mean(matrix: np.ndarray) -> float:
    """Mean of the off-diagonal entries of a square matrix (nan entries skipped)."""
    m = np.asarray(matrix, np.float64)
    off = m[~np.eye(len(m), dtype=bool)]
    off = off[np.isfinite(off)]
    return float(off.mean()) if len(off) else float("nan")


def cosine_summaries(shifts: torch.Tensor) -> dict:
    """For mean shifts ``[n, C, h, w]``: the ``|cos|`` matrix of the full vectors and its mean
    off-diagonal entry, and the same pooled over positions (``channels``) and over channels
    (``positions``, of the absolute shift)."""
    full = abs_cosine_matrix(shifts.flatten(1))
    channels = abs_cosine_matrix(shifts.mean(dim=(-2, -1)))
    positions = abs_cosine_matrix(shifts.abs().mean(1).flatten(1))
    flat = shifts.flatten(1).double()
    common = flat.mean(0, keepdim=True)
    centred = abs_cosine_matrix(flat - common)
    n = len(flat)
    return {"matrix": full.tolist(), "mean_offdiag": off_diagonal_mean(full),
            "centred_matrix": centred.tolist(), "centred_mean_offdiag": off_diagonal_mean(centred),
            "centred_reference": 1 / (n - 1) if n > 1 else None,
            "common_share": float(common.pow(2).sum() / flat.pow(2).sum(1).mean()),
            "channels_matrix": channels.tolist(), "channels_mean_offdiag": off_diagonal_mean(channels),
            "positions_matrix": positions.tolist(), "positions_mean_offdiag": off_diagonal_mean(positions),
            "dimension": int(shifts[0].numel()),
            "random_reference": float(math.sqrt(2 / (math.pi * shifts[0].numel())))}


def mean_shift_cosines(model, clean, singletons: torch.Tensor, sigmas=DEFAULT_SIGMAS, seed: int = 0,
                       layers=FEATURE_LAYERS, batch_size: int = 16) -> dict:
    """T8's mean-shift orthogonality (module docstring). ``clean [B, C, H, W]`` images,
    ``singletons [n, D]`` the conditioners; per sigma and space: :func:`cosine_summaries`, and
    the shift norms."""
    per_sigma = []
    n = singletons.shape[0]
    for sigma in sigmas:
        g = torch.Generator().manual_seed(seed)
        x = noisy_images(clean, float(sigma), g)
        sums: dict[str, torch.Tensor] = {}
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size]
            b = len(xb)
            s = torch.full((b,), float(sigma), dtype=xb.dtype)
            empty = torch.zeros(b, 0, singletons.shape[1], dtype=xb.dtype)
            base = spaces_of(model, xb, s, empty, torch.zeros(b, 0, dtype=torch.bool), layers)
            for i in range(n):
                cond = singletons[i].to(xb.dtype).expand(b, 1, -1).contiguous()
                spaces = spaces_of(model, xb, s, cond, torch.ones(b, 1, dtype=torch.bool), layers)
                for name, value in spaces.items():
                    shift = (value - base[name]).sum(0)
                    if name not in sums:
                        sums[name] = torch.zeros((n,) + tuple(shift.shape), dtype=torch.float64)
                    sums[name][i] += shift.double()
        entry = {"sigma": float(sigma)}
        for name, total in sums.items():
            shifts = total / len(x)
            entry[name] = cosine_summaries(shifts)
            entry[name]["shift_norms"] = shifts.flatten(1).norm(dim=1).tolist()
        per_sigma.append(entry)
    return {"per_sigma": per_sigma, "images": int(len(clean)), "conditioners": int(n), "seed": seed}


def _profile(delta: torch.Tensor) -> torch.Tensor:
    energy = delta.double().pow(2).flatten()
    total = energy.sum()
    return energy / total if total > 0 else energy * float("nan")


def overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    """``sum min(a, b)`` of two energy profiles (each summing to 1)."""
    return float(torch.minimum(a, b).sum())


def removal_overlap(model, clean, cond, mask, sigmas=DEFAULT_SIGMAS, seed: int = 0,
                    layers=FEATURE_LAYERS) -> dict:
    """Removal-support overlap (module docstring) per sigma and space, over every pair of real
    conditioners of each image of ``clean [B, C, H, W]``, ``cond [B, K, D]``, ``mask [B, K]``:
    means of ``overlap``, ``overlap_shuffled``, their ratio and ``abs_cos``, the number of pairs;
    the same on position maps (energy summed over channels) as ``positions_*``."""
    per_sigma = []
    for sigma in sigmas:
        g = torch.Generator().manual_seed(seed)
        shuffle = torch.Generator().manual_seed(seed + 1)
        x = noisy_images(clean, float(sigma), g)
        s = torch.full((len(x),), float(sigma), dtype=x.dtype)
        base = spaces_of(model, x, s, cond, mask, layers)
        deltas = []
        for j in range(cond.shape[1]):
            keep = [i for i in range(cond.shape[1]) if i != j]
            spaces = spaces_of(model, x, s, cond[:, keep], mask[:, keep], layers)
            deltas.append({name: base[name] - value for name, value in spaces.items()})
        entry = {"sigma": float(sigma)}
        for name in base:
            rows = {"overlap": [], "overlap_shuffled": [], "abs_cos": [], "positions_overlap": [],
                    "positions_overlap_shuffled": []}
            for b in range(len(x)):
                real = [j for j in range(cond.shape[1]) if bool(mask[b, j])]
                for p, j in enumerate(real):
                    for l in real[p + 1:]:
                        dj, dl = deltas[j][name][b], deltas[l][name][b]
                        aj, al = _profile(dj), _profile(dl)
                        if not (torch.isfinite(aj).all() and torch.isfinite(al).all()):
                            continue
                        perm = torch.randperm(len(al), generator=shuffle)
                        rows["overlap"].append(overlap(aj, al))
                        rows["overlap_shuffled"].append(overlap(aj, al[perm]))
                        cos = torch.nn.functional.cosine_similarity(dj.flatten().double(), dl.flatten().double(), dim=0)
                        rows["abs_cos"].append(float(cos.abs()))
                        pj, pl = _profile(dj.pow(2).sum(0).sqrt()), _profile(dl.pow(2).sum(0).sqrt())
                        pperm = torch.randperm(len(pl), generator=shuffle)
                        rows["positions_overlap"].append(overlap(pj, pl))
                        rows["positions_overlap_shuffled"].append(overlap(pj, pl[pperm]))
            summary = {key: float(np.mean(v)) if v else None for key, v in rows.items()}
            summary["pairs"] = len(rows["overlap"])
            summary["overlap_sem"] = (float(np.std(rows["overlap"]) / math.sqrt(len(rows["overlap"])))
                                      if len(rows["overlap"]) > 1 else None)
            for prefix in ("", "positions_"):
                o, r = summary[prefix + "overlap"], summary[prefix + "overlap_shuffled"]
                summary[prefix + "ratio"] = o / r if o is not None and r else None
            entry[name] = summary
        per_sigma.append(entry)
    return {"per_sigma": per_sigma, "images": int(len(clean)), "seed": seed}
