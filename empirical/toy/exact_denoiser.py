"""Exact denoisers of ``numerics`` conditional families as torch ``SetDenoiser``s (float64).

A ``numerics`` family (``numerics.families.ConditionalFamily`` or any map from conditioner sets to
``GaussianMixture`` / ``BlockProduct`` models) has a closed-form score at every noise level. Here its
parameters are copied to float64 torch tensors (via numpy) and the Tweedie denoiser

    D(x; sigma, J) = x + sigma^2 s_sigma(x | J),   s_sigma(x) = -sum_k r_k(x) (S_k + sigma^2 I)^{-1} (x - mu_k)

(``r_k`` the posterior component weights of the noised mixture; block-wise for block products) is
written in torch ops, so ``torch.func`` gives its exact input Jacobian and the diagnostics of
:mod:`empirical.diagnostics.locality` can be validated on it. It agrees with ``numerics.blocks.denoise`` to
rounding (tested).

Images: a family over ``pixels = H * W`` pixels with ``C`` channels is pixel-major (pixel ``p = row
* W + col`` owns coordinates ``p*C .. p*C + C - 1``); a torch image is ``[B, C, H, W]``. A
conditioner id ``c`` is given to the denoiser as the location of its mask's centroid
(:meth:`ExactFamilyDenoiser.location`, ``(u, v)`` as in :mod:`empirical.diagnostics.locality`); a location
is mapped back to the id whose centroid lies within ``1 / max(H, W)`` (half a pixel), else an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch


@dataclass(frozen=True)
class TorchMixture:
    """``weights [K]``, ``means [K, d]``, ``covs [K, d, d]`` (float64)."""
    weights: torch.Tensor
    means: torch.Tensor
    covs: torch.Tensor


@dataclass(frozen=True)
class TorchBlockProduct:
    """Disjoint coordinate ``indices`` (long ``[d_b]``, covering ``0..d-1``), one mixture per block,
    and ``inverse``: the permutation taking the concatenated block outputs back to coordinate order."""
    indices: tuple
    mixtures: tuple
    inverse: torch.Tensor


def _tensor(value) -> torch.Tensor:
    return torch.from_numpy(np.array(value, dtype=np.float64))


def to_torch(model) -> TorchMixture | TorchBlockProduct:
    """Copy a ``numerics`` ``GaussianMixture`` or ``BlockProduct`` to float64 torch tensors."""
    if hasattr(model, "indices"):
        indices = tuple(torch.from_numpy(np.asarray(i, dtype=np.int64)) for i in model.indices)
        order = torch.cat(indices)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order))
        return TorchBlockProduct(indices, tuple(to_torch(m) for m in model.mixtures), inverse)
    return TorchMixture(_tensor(model.weights), _tensor(model.means), _tensor(model.covs))


def mixture_score(mix: TorchMixture, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Score of ``mix * N(0, sigma^2 I)`` at ``x [N, d]`` -> ``[N, d]`` (closed form)."""
    d = mix.means.shape[-1]
    chol = torch.linalg.cholesky(mix.covs + sigma ** 2 * torch.eye(d, dtype=mix.covs.dtype))
    chol_inv = torch.linalg.solve_triangular(chol, torch.eye(d, dtype=chol.dtype).expand_as(chol), upper=False)
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)           # [K]
    diff = x[:, None, :] - mix.means[None]                                            # [N, K, d]
    white = torch.einsum("kij,nkj->nki", chol_inv, diff)                              # L^{-1}(x - mu)
    log_terms = torch.log(mix.weights) - 0.5 * (white.pow(2).sum(-1) + logdet)        # [N, K]
    resp = torch.softmax(log_terms, dim=-1)
    prec_diff = torch.einsum("kji,nkj->nki", chol_inv, white)                         # S^{-1}(x - mu)
    return -torch.einsum("nk,nkd->nd", resp, prec_diff)


def model_score(model, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Score of a torch mixture or block product noised at ``sigma``; ``x [N, d]`` -> ``[N, d]``."""
    if isinstance(model, TorchBlockProduct):
        parts = [mixture_score(m, x[:, i], sigma) for i, m in zip(model.indices, model.mixtures)]
        return torch.cat(parts, dim=-1)[:, model.inverse]
    return mixture_score(model, x, sigma)


def model_denoise(model, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Tweedie denoiser ``x + sigma^2 s_sigma(x)``; ``x [N, d]``."""
    return x + sigma ** 2 * model_score(model, x, sigma)


def model_sample(model, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` exact samples ``[n, d]`` (float64) of the clean model."""
    if isinstance(model, TorchBlockProduct):
        parts = [model_sample(m, n, generator) for m in model.mixtures]
        return torch.cat(parts, dim=-1)[:, model.inverse]
    comp = torch.multinomial(model.weights, n, replacement=True, generator=generator)
    z = torch.randn(n, model.means.shape[-1], generator=generator, dtype=torch.float64)
    chol = torch.linalg.cholesky(model.covs)
    return model.means[comp] + torch.einsum("nij,nj->ni", chol[comp], z)


class ExactFamilyDenoiser:
    """A ``SetDenoiser`` for the exact scores of a conditional family.

    ``models``: a dict ``frozenset(ids) -> numerics model`` (e.g. ``family.models``) or a callable
    building the model of a set on demand (cached); ``masks``: ``id -> pixel indices``;
    ``height * width`` pixels, ``channels`` per pixel."""

    def __init__(self, models: dict | Callable, masks: dict, height: int, width: int, channels: int = 1):
        self.masks = {c: tuple(int(p) for p in pix) for c, pix in masks.items()}
        self.height, self.width, self.channels = height, width, channels
        self._source = models
        self._cache: dict = {}
        self.ids = sorted(self.masks)
        self._centroids = torch.stack([self.location(c) for c in self.ids])           # [N_ids, 2]

    @classmethod
    def from_family(cls, family, height: int, width: int) -> "ExactFamilyDenoiser":
        """Wrap a ``numerics.families.ConditionalFamily`` whose pixels form an ``H x W`` image."""
        if family.pixels != height * width:
            raise ValueError(f"family has {family.pixels} pixels, not {height} x {width}")
        return cls(family.models, family.masks, height, width, family.channels)

    # -- conditioners <-> ids ------------------------------------------------------------------
    def location(self, c) -> torch.Tensor:
        """``(u, v)`` of the centroid of ``M(c)`` (float64 ``[2]``)."""
        pix = torch.tensor(self.masks[c], dtype=torch.float64)
        rows, cols = pix // self.width, pix % self.width
        return torch.stack([2 * (cols.mean() + 0.5) / self.width - 1, 2 * (rows.mean() + 0.5) / self.height - 1])

    def locations(self, sets: list) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cond [B, K, 2] float64, mask [B, K])`` for a list of id collections (padded)."""
        k = max([len(s) for s in sets] + [1])
        cond = torch.zeros(len(sets), k, 2, dtype=torch.float64)
        mask = torch.zeros(len(sets), k, dtype=torch.bool)
        for b, s in enumerate(sets):
            for j, c in enumerate(sorted(s)):
                cond[b, j], mask[b, j] = self.location(c), True
        return cond, mask

    def set_of(self, cond_b: torch.Tensor, mask_b: torch.Tensor) -> frozenset:
        """The id set named by one image's locations ``cond_b [K, 2]``, ``mask_b [K]``."""
        ids = []
        for loc in cond_b[mask_b].detach().double():
            dist = (self._centroids - loc).norm(dim=-1)
            best = int(dist.argmin())
            if float(dist[best]) > 1.0 / max(self.height, self.width):
                raise ValueError(f"conditioner location {loc.tolist()} is no mask centroid of this family")
            ids.append(self.ids[best])
        if len(set(ids)) != len(ids):
            raise ValueError(f"conditioner set {ids} repeats an id")
        return frozenset(ids)

    def model(self, J: frozenset):
        """The torch model of set ``J`` (converted once, cached)."""
        if J not in self._cache:
            if callable(self._source):
                source = self._source(J)
            elif J in self._source:
                source = self._source[J]
            else:
                raise ValueError(f"no model for conditioner set {sorted(J)}")
            self._cache[J] = to_torch(source)
        return self._cache[J]

    # -- images <-> coordinates ----------------------------------------------------------------
    def to_coords(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> pixel-major ``[B, H*W*C]``."""
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)

    def to_image(self, flat: torch.Tensor) -> torch.Tensor:
        """Pixel-major ``[B, H*W*C]`` -> ``[B, C, H, W]``."""
        return flat.reshape(flat.shape[0], self.height, self.width, self.channels).permute(0, 3, 1, 2)

    # -- the denoiser ----------------------------------------------------------------------------
    def __call__(self, x, sigma, cond, mask):
        """``D(x [B,C,H,W], sigma [B], cond [B,K,2], mask [B,K])``, computed in float64 and
        returned in ``x``'s dtype."""
        flat = self.to_coords(x.double())
        outs = [model_denoise(self.model(self.set_of(cond[b], mask[b])), flat[b:b + 1], float(sigma[b]))
                for b in range(x.shape[0])]
        return self.to_image(torch.cat(outs)).to(x.dtype)

    def sample_clean(self, cond, mask, generator: torch.Generator) -> torch.Tensor:
        """One exact clean sample per image from ``p(. | set named by cond[b])``: ``[B, C, H, W]``."""
        flat = torch.cat([model_sample(self.model(self.set_of(cond[b], mask[b])), 1, generator)
                          for b in range(cond.shape[0])])
        return self.to_image(flat)

    # -- regions for the diagnostics ---------------------------------------------------------------
    def footprints(self, cond, mask) -> torch.Tensor:
        """``[B, K, H, W]`` bool: the mask ``M(c_j)`` of each real conditioner."""
        b, k = mask.shape
        out = torch.zeros(b, k, self.height * self.width, dtype=torch.bool)
        for i in range(b):
            for j in range(k):
                if mask[i, j]:
                    (c,) = self.set_of(cond[i, j:j + 1], mask[i, j:j + 1])
                    out[i, j, list(self.masks[c])] = True
        return out.reshape(b, k, self.height, self.width)

    def block_labels(self, cond, mask) -> torch.Tensor:
        """``[B, H, W]`` long: the LCS partition of each image's set ``J``: label ``j`` on
        ``M(c_j)``, ``K`` on the background ``B_J`` (pixels in no mask of ``J``)."""
        fp = self.footprints(cond, mask)
        labels = torch.full(fp.shape[:1] + fp.shape[2:], fp.shape[1], dtype=torch.long)
        for j in reversed(range(fp.shape[1])):  # a pixel in two masks goes to the first
            labels[fp[:, j]] = j
        return labels
