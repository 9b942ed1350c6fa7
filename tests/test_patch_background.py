"""The patch model's second training patch: free of listed conditioners, or of every object."""

import pytest
import torch

from empirical.models.patch_local import PatchConfig, PatchLocalDenoiser, relative_conditioners
from empirical.models.unet import UNetConfig

pytestmark = pytest.mark.usefixtures("torch_one_thread")

NET = UNetConfig(img_resolution=8, channels=8, channel_mult=(1, 2), num_blocks=1, head_channels=8)


def _holds(locations, cells_rc, k, grid=16):
    mask = torch.ones(locations.shape[:2], dtype=torch.bool)
    _, inside = relative_conditioners(locations, mask, cells_rc[:, None], grid, k)
    return inside[:, 0].any(-1)


@pytest.mark.parametrize("background", ["no_conditioner", "no_object"])
def test_background_patch_avoids_what_it_should(background):
    model = PatchLocalDenoiser(PatchConfig(img_resolution=32, k=2, net=NET, background=background))
    gen = torch.Generator().manual_seed(0)
    objects = torch.rand(64, 3, 2, generator=gen) * 1.6 - 0.8      # three objects per image
    listed, mask = objects[:, :1], torch.ones(64, 1, dtype=torch.bool)   # `one`: the first is listed
    cells = model.choose_cells(listed, mask, gen, (objects, torch.ones(64, 3, dtype=torch.bool)))
    with_cond, background_cell = cells[:, 0], cells[:, 1]
    assert _holds(listed, with_cond, 2).all()
    assert not _holds(listed, background_cell, 2).any()
    unlisted_hit = _holds(objects[:, 1:], background_cell, 2)
    if background == "no_object":
        # every image here has object-free patches (3 objects cannot cover a 16x16 grid at k=2)
        assert not unlisted_hit.any()
    else:
        assert unlisted_hit.any()  # the default may land on an unlisted object (the failure we study)


def test_no_object_background_needs_the_objects():
    model = PatchLocalDenoiser(PatchConfig(img_resolution=32, k=2, net=NET, background="no_object"))
    with pytest.raises(ValueError, match="objects"):
        model.choose_cells(torch.zeros(2, 1, 2), torch.ones(2, 1, dtype=torch.bool), torch.Generator())
    with pytest.raises(ValueError, match="background"):
        PatchConfig(background="nothing")
