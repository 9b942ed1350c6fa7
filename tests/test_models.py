"""Denoisers on tiny configs: shapes, permutation invariance, null token, patch locality."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from empirical.models.patch_local import PatchConfig, PatchLocalDenoiser, location_cells
from empirical.models.unet import EDMDenoiser, UNetConfig


# one torch thread: the `torch_one_thread` fixture in conftest.py
pytestmark = pytest.mark.usefixtures("torch_one_thread")

RES = 16
TINY_NET = UNetConfig(img_resolution=RES, channels=16, channel_mult=(1, 2), num_blocks=1,
                      attn_resolutions=(8,), head_channels=16)


def _perturbed(model):
    """Zero-initialised output layers make an untrained net trivially constant: randomise them."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _unet(mode):
    return _perturbed(EDMDenoiser(UNetConfig(**{**TINY_NET.__dict__, "cond_mode": mode})))


def _patch(k, mode="tokens"):
    net = UNetConfig(img_resolution=8, channels=16, channel_mult=(1, 2), num_blocks=1, head_channels=16,
                     cond_mode=mode)
    return _perturbed(PatchLocalDenoiser(PatchConfig(img_resolution=RES, k=k, net=net, chunk_size=128)))


MODELS = {"unet-tokens": lambda: _unet("tokens"), "unet-global": lambda: _unet("global"),
          "patch-k1": lambda: _patch(1), "patch-k1-global": lambda: _patch(1, "global")}
_CACHE = {}


def model(name):
    if name not in _CACHE:
        _CACHE[name] = MODELS[name]()
    return _CACHE[name]


def _inputs(b=2, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, RES, RES, generator=g)
    cond = torch.rand(b, k, 2, generator=g) * 2 - 1
    mask = torch.ones(b, k, dtype=torch.bool)
    return x, torch.full((b,), 0.8), cond, mask


@pytest.mark.parametrize("name", list(MODELS))
def test_shapes_and_conditioning_matters(name):
    m = model(name)
    x, sigma, cond, mask = _inputs()
    with torch.no_grad():
        out = m(x, sigma, cond, mask)
        empty = m(x, sigma, cond[:, :0], mask[:, :0])
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert (out - empty).abs().max() > 1e-4  # the conditioners reach the output


@pytest.mark.parametrize("name", list(MODELS))
def test_permutation_invariance(name):
    """Three random permutations of a 5-set (two entries padded), batched in one forward pass."""
    m = model(name)
    x, sigma, cond, mask = _inputs(b=1, k=5)
    mask[0, 3:] = False
    g = torch.Generator().manual_seed(0)
    perms = [torch.arange(5)] + [torch.randperm(5, generator=g) for _ in range(3)]
    with torch.no_grad():
        out = m(x.expand(4, -1, -1, -1), sigma.expand(4), torch.cat([cond[:, p] for p in perms]),
                torch.cat([mask[:, p] for p in perms]))
    assert torch.allclose(out[1:], out[:1].expand(3, -1, -1, -1), atol=1e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_empty_set_null_token_and_padding(name):
    """K = 0, an all-masked set and padded garbage all give the same (finite) output; any K works."""
    m = model(name)
    x, sigma, cond, mask = _inputs(k=3)
    with torch.no_grad():
        empty = m(x, sigma, cond[:, :0], mask[:, :0])
        all_masked = m(x, sigma, cond * 0 + 0.3, torch.zeros_like(mask))
        real = m(x, sigma, cond[:, :2], mask[:, :2])
        padded = m(x, sigma, torch.cat([cond[:, :2], torch.rand(2, 4, 2)], 1),
                   torch.cat([mask[:, :2], torch.zeros(2, 4, dtype=torch.bool)], 1))
        many = m(x, sigma, torch.rand(2, 12, 2) * 2 - 1, torch.ones(2, 12, dtype=torch.bool))
    assert torch.isfinite(empty).all() and torch.isfinite(many).all()
    assert torch.allclose(empty, all_masked, atol=1e-5)
    assert torch.allclose(real, padded, atol=1e-5)


def _patch_rect(row, col, k, cell):
    return slice(max(row - k, 0) * cell, (row + k + 1) * cell), slice(max(col - k, 0) * cell, (col + k + 1) * cell)


@given(row=st.integers(0, 15), col=st.integers(0, 15), seed=st.integers(0, 100))
def test_patch_model_is_local_in_pixels(row, col, seed):
    """Changing every pixel outside cell (row, col)'s patch leaves that cell's output exactly unchanged;
    changing a pixel inside the patch (but outside the cell) changes it."""
    m, k, cell = model("patch-k1"), 1, 1
    x, sigma, cond, mask = _inputs(b=1, k=2, seed=seed)
    rows, cols = _patch_rect(row, col, k, cell)
    inside = torch.zeros(RES, RES, dtype=torch.bool)
    inside[rows, cols] = True
    x2 = torch.where(inside, x, torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 1)))
    x3 = x.clone()
    r_in, c_in = (row + 1, col) if row + 1 < 16 else (row - 1, col)
    x3[:, :, r_in, c_in] += 1.0
    with torch.no_grad():
        a, b, c = (m(v, sigma, cond, mask)[:, :, row * cell:(row + 1) * cell, col * cell:(col + 1) * cell]
                   for v in (x, x2, x3))
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-6


@given(seed=st.integers(0, 100))
def test_patch_model_ignores_conditioners_outside_the_patch(seed):
    m, k = model("patch-k1"), 1
    x, sigma, _, _ = _inputs(b=1, k=1, seed=seed)
    g = torch.Generator().manual_seed(seed)
    near = torch.tensor([[[-0.9, -0.9]]])                 # cell (0, 0)
    far = torch.rand(1, 3, 2, generator=g) * 0.6 + 0.3    # cells >= 10: outside every patch of cell (0..2)
    mask1 = torch.ones(1, 1, dtype=torch.bool)
    with torch.no_grad():
        a = m(x, sigma, near, mask1)
        b = m(x, sigma, torch.cat([near, far], 1), torch.ones(1, 4, dtype=torch.bool))
    assert torch.equal(a[..., :3, :3], b[..., :3, :3])     # cells within k of (0,0), far ones absent
    far_cells = location_cells(far[0], 16)
    r, c = int(far_cells[0, 1]), int(far_cells[0, 0])
    assert (a[..., r, c] - b[..., r, c]).abs().max() > 1e-6  # where they are, they matter


def test_k8_centre_patch_covers_whole_image():
    cfg = PatchConfig(img_resolution=RES, k=8)
    assert cfg.patch == 17 * cfg.cell >= RES
