"""Colour conditioning of CLEVR scenes (issue 13 item 1; docs/colour-clevr.md).

A *colour conditioner* is one object's colour, as a one-hot vector over the 8 CLEVR colours
(``COLOR_NAMES`` order: gray, red, blue, green, brown, purple, cyan, yellow). A scene's
conditioner is the multiset of its objects' colours: ``[K, 8]`` one-hot rows, one per object,
in the order the metadata lists the objects (the models are permutation invariant). The
object locations are *not* given.

:class:`ColourDataset` is a view of a rendered CLEVR directory (any preset: every preset's
metadata records each object's ``color``) whose item ``i`` is ``(image float32 [3, H, W] in
[-1, 1], colours float32 [K_i, 8])``; it also keeps ``locations(i)`` (the objects' ``(u, v)``)
and ``masks`` for evaluation. ``colour_counts`` turns padded one-hot sets into the count vector
that the global-vector model sees.
"""

from __future__ import annotations

import os

import numpy as np

from empirical.clevr.scene import COLOR_NAMES

NUM_COLOURS = len(COLOR_NAMES)


def colour_index(name: str) -> int:
    """Index of a CLEVR colour name in ``COLOR_NAMES``; ValueError naming the known ones."""
    if name not in COLOR_NAMES:
        raise ValueError(f"unknown colour {name!r}; known: {', '.join(COLOR_NAMES)}")
    return COLOR_NAMES.index(name)


def colour_onehot(indices) -> np.ndarray:
    """Colour indices ``[K]`` (ints in ``0..7``) -> one-hot ``float32 [K, 8]`` (``[0, 8]`` for none)."""
    indices = np.asarray(list(indices), dtype=np.int64).reshape(-1)
    out = np.zeros((len(indices), NUM_COLOURS), np.float32)
    out[np.arange(len(indices)), indices] = 1.0
    return out


def onehot_to_indices(onehot) -> np.ndarray:
    """``[K, 8]`` one-hot rows -> colour indices ``[K]`` (argmax of each row)."""
    onehot = np.asarray(onehot).reshape(-1, NUM_COLOURS)
    return onehot.argmax(-1).astype(np.int64)


def colour_counts(cond, mask):
    """Padded one-hot sets ``cond [B, K, 8]``, ``mask [B, K]`` (torch) -> counts ``[B, 8]``."""
    return (cond * mask[..., None].to(cond.dtype)).sum(1)


def scene_colours(meta: dict) -> list[int]:
    """Colour indices of every object of one image's metadata entry, in metadata order."""
    return [colour_index(obj["color"]) for obj in meta["objects"]]


def random_colour_sets(k: int, num_sets: int, seed: int) -> list[np.ndarray]:
    """``num_sets`` colour multisets of size ``k``: each colour i.i.d. uniform over the 8, as the
    CLEVR generator draws them (``numpy.random.default_rng([seed, k])``); index arrays ``[k]``."""
    rng = np.random.default_rng([int(seed), int(k)])
    return [rng.integers(0, NUM_COLOURS, size=k) for _ in range(num_sets)]


def _dataset_base():
    import torch.utils.data
    return torch.utils.data.Dataset


class ColourDataset(_dataset_base()):
    """A rendered CLEVR directory seen through its colours: item i is ``(image float32 [3, H, W]
    in [-1, 1], colours float32 [K_i, 8] one-hot)``, one row per object (every object, whatever
    the preset's location conditioning)."""

    def __init__(self, path: str | os.PathLike | None = None, data=None):
        from empirical.clevr.dataset import load_dataset
        self.data = load_dataset(path) if data is None else data
        self._colours = [scene_colours(m) for m in self.data.metadata]

    def __len__(self) -> int:
        return len(self.data.metadata)

    def colours(self, i: int) -> list[int]:
        """Colour indices of image ``i``'s objects."""
        return list(self._colours[i])

    def locations(self, i: int) -> np.ndarray:
        """``(u, v)`` of image ``i``'s objects ``[K, 2]`` (metadata order; not given to the model)."""
        return np.asarray([o["location"] for o in self.data.metadata[i]["objects"]],
                          np.float64).reshape(-1, 2)

    def __getitem__(self, i: int):
        import torch
        image = torch.from_numpy(self.data.images[i]).permute(2, 0, 1).float() / 127.5 - 1.0
        return image, torch.from_numpy(colour_onehot(self._colours[i]))
