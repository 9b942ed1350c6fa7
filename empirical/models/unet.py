"""Set-conditioned UNet denoiser (Exp.1, Exp.2) and its global-vector variant (Exp.3).

Conditioners are a *set* of 2-D image locations ``(u, v)`` in ``[-1, 1]`` (``u`` right, ``v`` down),
padded to ``[B, K, 2]`` with a boolean ``mask [B, K]`` (True = real entry).

``cond_mode = "tokens"`` (Exp.1 / Exp.2): every location is embedded (Fourier features + MLP) as one
token; feature maps at the resolutions in ``attn_resolutions`` cross-attend to the tokens. A learned
*null token* is always appended, so attention has at least one key even for the empty set. There is
no positional encoding over the set index and padded entries are masked out of the attention, so the
output is invariant to permutations of the conditioners and accepts any ``K`` at test time.

``cond_mode = "global"`` (Exp.3, the second failing construction): the token embeddings are *summed*
(masked) into one global vector that is added to the noise embedding and injected into every
residual block by FiLM (scale/shift). This is still permutation invariant and accepts any ``K``, but
it mixes all conditioners into one global signal: every pixel sees every conditioner through the
same vector, so the score cannot be conditionally local (SCIENCE.md §6: conditional locality is what
length generalization needs). The sum also grows with ``K`` beyond what training showed.

:class:`EDMDenoiser` wraps a raw network with EDM preconditioning (``empirical.models.edm``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from empirical.models import edm

COND_MODES = ("tokens", "global")
COND_INPUTS = ("location", "colour")


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of :class:`SetUNet`. ``img_resolution`` must be divisible by
    ``2 ** (len(channel_mult) - 1)``."""
    img_resolution: int = 32
    in_channels: int = 3
    out_channels: int = 3
    channels: int = 32                      # base width; level i has channels * channel_mult[i]
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_blocks: int = 2                     # residual blocks per level (encoder)
    attn_resolutions: tuple[int, ...] = (16, 8)
    cond_mode: str = "tokens"
    fourier_octaves: int = 6                # location features sin/cos(2^j pi u), j < octaves
    head_channels: int = 32
    extra_cond_dim: int = 0                 # extra global vector (patch centre coords), 0 = none
    dropout: float = 0.0
    # "location": a conditioner is (u, v) (Fourier features); "colour": a one-hot colour vector
    # [num_colours] (docs/colour-clevr.md); the token MLP then embeds the one-hot directly
    cond_input: str = "location"
    num_colours: int = 8

    def __post_init__(self):
        if self.cond_mode not in COND_MODES:
            raise ValueError(f"cond_mode must be one of {COND_MODES}, got {self.cond_mode!r}")
        if self.cond_input not in COND_INPUTS:
            raise ValueError(f"cond_input must be one of {COND_INPUTS}, got {self.cond_input!r}")
        factor = 2 ** (len(self.channel_mult) - 1)
        if self.img_resolution % factor:
            raise ValueError(f"img_resolution {self.img_resolution} not divisible by {factor}")


def _groups(channels: int) -> int:
    """GroupNorm groups: up to 32, at least 4 channels per group where possible."""
    g = math.gcd(channels, 32)
    while g > 1 and channels // g < 4:
        g //= 2
    return g


def location_features(loc: torch.Tensor, octaves: int) -> torch.Tensor:
    """Fourier features of locations ``loc [..., 2]`` -> ``[..., 2 + 4 * octaves]``:
    ``(u, v, sin(2^j pi u), cos(2^j pi u), sin(2^j pi v), cos(2^j pi v))`` for ``j < octaves``."""
    freqs = math.pi * 2.0 ** torch.arange(octaves, dtype=loc.dtype, device=loc.device)
    angles = loc[..., None] * freqs                        # [..., 2, octaves]
    feats = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)
    return torch.cat([loc, feats], dim=-1)


def noise_features(c_noise: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of the scalar noise level ``c_noise [B]`` -> ``[B, dim]`` (frequencies
    geometric from 1 to 100)."""
    half = dim // 2
    freqs = torch.exp(torch.linspace(0, math.log(100.0), half, device=c_noise.device))
    angles = c_noise[:, None].float() * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _mlp(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.SiLU(), nn.Linear(d_out, d_out))


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, FiLM from the embedding ``emb [B, E]``, GroupNorm-SiLU-conv, skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm2(h) * (1 + scale) + shift)
        h = self.conv2(self.dropout(h))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over pixels, then (tokens mode) cross-attention from pixels to the
    conditioner tokens ``tokens [B, T, D]`` with key mask ``key_mask [B, T]`` (True = attend)."""

    def __init__(self, channels: int, token_dim: int, head_channels: int, cross: bool):
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.cross = cross
        if cross:
            self.norm_x = nn.GroupNorm(_groups(channels), channels)
            self.q = nn.Conv2d(channels, channels, 1)
            self.kv = nn.Linear(token_dim, 2 * channels)
            self.proj_x = nn.Conv2d(channels, channels, 1)
            nn.init.zeros_(self.proj_x.weight)
            nn.init.zeros_(self.proj_x.bias)

    def _split(self, t: torch.Tensor) -> torch.Tensor:  # [B, L, C] -> [B, heads, L, C/heads]
        b, n, c = t.shape
        return t.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def _merge(self, t: torch.Tensor, h: int, w: int) -> torch.Tensor:  # -> [B, C, H, W]
        b, heads, n, ch = t.shape
        return t.transpose(1, 2).reshape(b, n, heads * ch).transpose(1, 2).reshape(b, heads * ch, h, w)

    def forward(self, x, tokens=None, key_mask=None):
        b, c, h, w = x.shape
        # contiguous: scaled_dot_product_attention takes its fused (flash) kernel only for a
        # unit-stride last dimension, and falls back to the 3-5x slower math kernel otherwise
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).contiguous().chunk(3, dim=2)
        out = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v))
        x = x + self.proj(self._merge(out, h, w))
        if self.cross:
            # not made contiguous: the fused kernel's rounding then depends on how many keys are
            # masked, and a conditioner outside a patch would change its output in the last bit
            q = self.q(self.norm_x(x)).flatten(2).transpose(1, 2)
            k, v = self.kv(tokens).chunk(2, dim=2)
            mask = key_mask[:, None, None, :]  # [B, 1, 1, T], broadcast over heads and queries
            out = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v),
                                                 attn_mask=mask)
            x = x + self.proj_x(self._merge(out, h, w))
        return x


class SetUNet(nn.Module):
    """Raw network ``F(x_in [B,C,H,W], c_noise [B], cond [B,K,2], mask [B,K], extra [B,E]?)``
    -> ``[B, out_channels, H, W]``. See the module docstring for the two conditioning modes."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = cfg = config
        ch0 = cfg.channels
        emb_dim = 4 * ch0
        tok_dim = emb_dim
        self.noise_dim = ch0
        self.noise_mlp = _mlp(ch0, emb_dim)
        self.cond_mlp = _mlp(self.cond_dim, tok_dim)
        self.null_token = nn.Parameter(torch.randn(tok_dim) * 0.02)
        if cfg.cond_mode == "global":
            self.global_proj = nn.Linear(tok_dim, emb_dim)
        if cfg.extra_cond_dim:
            self.extra_mlp = _mlp(cfg.extra_cond_dim * (1 + 2 * cfg.fourier_octaves), emb_dim)
        cross = cfg.cond_mode == "tokens"

        def attn(c):
            return AttentionBlock(c, tok_dim, cfg.head_channels, cross)

        self.conv_in = nn.Conv2d(cfg.in_channels, ch0, 3, padding=1)
        self.down = nn.ModuleList()
        skip_channels = [ch0]
        c, res = ch0, cfg.img_resolution
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_blocks):
                block = nn.ModuleDict({"res": ResBlock(c, ch0 * mult, emb_dim, cfg.dropout)})
                c = ch0 * mult
                if res in cfg.attn_resolutions:
                    block["attn"] = attn(c)
                self.down.append(block)
                skip_channels.append(c)
            if level < len(cfg.channel_mult) - 1:
                self.down.append(nn.ModuleDict({"down": nn.Conv2d(c, c, 3, stride=2, padding=1)}))
                skip_channels.append(c)
                res //= 2
        self.mid = nn.ModuleDict({"res1": ResBlock(c, c, emb_dim, cfg.dropout), "attn": attn(c),
                                  "res2": ResBlock(c, c, emb_dim, cfg.dropout)})
        self.up = nn.ModuleList()
        for level in reversed(range(len(cfg.channel_mult))):
            mult = cfg.channel_mult[level]
            for _ in range(cfg.num_blocks + 1):
                block = nn.ModuleDict({"res": ResBlock(c + skip_channels.pop(), ch0 * mult, emb_dim,
                                                       cfg.dropout)})
                c = ch0 * mult
                if res in cfg.attn_resolutions:
                    block["attn"] = attn(c)
                self.up.append(block)
            if level > 0:
                self.up.append(nn.ModuleDict({"up": nn.Conv2d(c, c, 3, padding=1)}))
                res *= 2
        self.norm_out = nn.GroupNorm(_groups(c), c)
        self.conv_out = nn.Conv2d(c, cfg.out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @property
    def cond_dim(self) -> int:
        """Width of one conditioner entry's input features."""
        if getattr(self.config, "cond_input", "location") == "colour":
            return self.config.num_colours
        return 2 + 4 * self.config.fourier_octaves

    def cond_features(self, cond: torch.Tensor) -> torch.Tensor:
        """``cond [B, K, 2]`` locations -> Fourier features; ``[B, K, num_colours]`` one-hot
        colours (``cond_input = "colour"``) pass unchanged. With ``cond_mode = "global"`` the
        masked sum of the colour tokens is a linear map of the colour count vector."""
        if getattr(self.config, "cond_input", "location") == "colour":
            return cond
        return location_features(cond, self.config.fourier_octaves)

    def conditioning(self, c_noise, cond, mask, extra=None):
        """``(emb [B, E], tokens [B, 1+K, D] or None, key_mask [B, 1+K] or None)``."""
        emb = self.noise_mlp(noise_features(c_noise, self.noise_dim))
        if extra is not None:
            emb = emb + self.extra_mlp(location_features(extra, self.config.fourier_octaves))
        tok = self.cond_mlp(self.cond_features(cond))  # [B, K, D]
        b = cond.shape[0]
        if self.config.cond_mode == "global":
            summed = (tok * mask[..., None].to(tok.dtype)).sum(dim=1) + self.null_token
            return emb + self.global_proj(summed), None, None
        tokens = torch.cat([self.null_token.expand(b, 1, -1), tok], dim=1)
        key_mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        return emb, tokens, key_mask

    def forward(self, x, c_noise, cond, mask, extra=None):
        emb, tokens, key_mask = self.conditioning(c_noise, cond, mask, extra)
        h = self.conv_in(x)
        skips = [h]
        for block in self.down:
            if "down" in block:
                h = block["down"](h)
            else:
                h = block["res"](h, emb)
                if "attn" in block:
                    h = block["attn"](h, tokens, key_mask)
            skips.append(h)
        h = self.mid["res1"](h, emb)
        h = self.mid["attn"](h, tokens, key_mask)
        h = self.mid["res2"](h, emb)
        for block in self.up:
            if "up" in block:
                h = block["up"](F.interpolate(h, scale_factor=2.0, mode="nearest"))
            else:
                h = block["res"](torch.cat([h, skips.pop()], dim=1), emb)
                if "attn" in block:
                    h = block["attn"](h, tokens, key_mask)
        return self.conv_out(F.silu(self.norm_out(h)))


@dataclass(frozen=True)
class SigmaDistribution:
    """Training noise levels: ``ln sigma ~ N(p_mean, p_std^2)`` (EDM defaults)."""
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_data: float = edm.SIGMA_DATA


class EDMDenoiser(nn.Module):
    """``D(x [B,3,H,W], sigma [B], cond [B,K,2], mask [B,K]) -> x0_hat`` with EDM preconditioning."""

    def __init__(self, config: UNetConfig, sigma_data: float = edm.SIGMA_DATA):
        super().__init__()
        self.net = SetUNet(config)
        self.sigma_data = sigma_data

    def forward(self, x, sigma, cond, mask):
        c_skip, c_out, c_in, c_noise = edm.preconditioning(sigma, self.sigma_data)
        f = self.net(c_in[:, None, None, None] * x, c_noise, cond, mask)
        return c_skip[:, None, None, None] * x + c_out[:, None, None, None] * f

    def training_loss(self, images, cond, mask, generator, sigma_dist: SigmaDistribution, objects=None):
        """EDM loss ``E[lambda(sigma) |D(x0 + sigma n) - x0|^2]`` averaged over pixels and batch.
        ``objects`` (every object's locations and mask) is accepted for the patch model's API and unused."""
        b = images.shape[0]
        sigma = edm.sample_sigma(b, sigma_dist.p_mean, sigma_dist.p_std, generator, images.device)
        noise = torch.randn(images.shape, generator=generator).to(images.device)
        denoised = self(images + sigma[:, None, None, None] * noise, sigma, cond, mask)
        weight = edm.loss_weight(sigma, self.sigma_data)[:, None, None, None]
        return (weight * (denoised - images) ** 2).mean()
