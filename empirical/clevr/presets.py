"""Named CLEVR data presets (object-count range, conditioning mode, defaults).

Conditioning modes:
- ``all``: the conditioners are every object's image location (Exp.1);
- ``one``: one uniformly chosen object's location (Exp.2);
- ``colour``: every object's location, and the metadata also lists each conditioner's colour
  name (``conditioner_colors``) for colour-conditioned models.
"""

from __future__ import annotations

from dataclasses import dataclass

from localcomp.errors import UserError

CONDITIONING_MODES = ("all", "one", "colour")


@dataclass(frozen=True)
class DataPreset:
    """A dataset recipe: objects per image uniform on {min_objects..max_objects}."""

    name: str
    min_objects: int
    max_objects: int
    conditioning: str
    num_images: int = 10_000
    resolution: int = 64
    spp: int = 64
    shard_size: int = 100
    description: str = ""


PRESETS: dict[str, DataPreset] = {p.name: p for p in [
    DataPreset("clevr1", 1, 1, "all", description="training, 1 object, its location"),
    DataPreset("clevr1-one", 1, 1, "one", description="training, 1 object (same as clevr1)"),
    DataPreset("clevr1-3", 1, 3, "all", description="training, 1-3 objects, all locations (Exp.1)"),
    DataPreset("clevr1-3-one", 1, 3, "one", description="training, 1-3 objects, one location (Exp.2)"),
    DataPreset("clevr1-5", 1, 5, "all", description="training, 1-5 objects, all locations (Exp.1)"),
    DataPreset("clevr1-5-one", 1, 5, "one", description="training, 1-5 objects, one location (Exp.2)"),
    DataPreset("clevr1-3-colour", 1, 3, "colour",
               description="training, 1-3 objects, locations + colour names"),
    DataPreset("clevr0-12", 0, 12, "all", num_images=2_000,
               description="evaluation / detector training, 0-12 objects"),
    DataPreset("clevr6-12", 6, 12, "all", num_images=2_000,
               description="detector fine-tuning, 6-12 objects (where counting errors are)"),
]}


def get_preset(name: str) -> DataPreset:
    """The preset called ``name``; a UserError listing the known names otherwise."""
    if name not in PRESETS:
        raise UserError(f"--preset: unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]
