"""Colour read-out at detected object centres (issue 13 item 1; docs/colour-clevr.md).

The detector (``empirical.detection.detector``) finds object centres ``(u, v)``; the read-out
names the colour of the object at each centre. It is a small classifier of the
``(2 r + 1) x (2 r + 1)`` pixel patch around the centre (``r = PATCH_RADIUS`` = 2: 5 x 5 pixels at
32 px, an object's size; edge pixels replicated at the border), an MLP with one hidden layer,
fitted on renders: patches at each object's projected centre (``location`` in the metadata),
shifted by up to ``jitter`` pixels so that it tolerates the detector's error, labelled with the
object's colour. Objects showing fewer than ``min_pixels`` pixels (mostly hidden behind
others) are left out of the fit; evaluation counts every object the detector matches.

Validation (:func:`readout_pairs`, scored by ``empirical.evaluation.colour``) is on held-out renders and reads the colour at the
*detected* centres that the Hungarian matching (``matching.matched_pairs``) pairs with a true
object, so it scores the read-out as Kmax uses it: per-colour accuracy and the 8 x 8 confusion
(rows: true colour, columns: read colour), plus the same at the true centres.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from empirical.clevr.colour import NUM_COLOURS, colour_index
from empirical.detection.matching import DEFAULT_TOLERANCE, matched_pairs

PATCH_RADIUS = 2
HIDDEN = 128


def centre_pixels(centres: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(u, v)`` centres ``[n, 2]`` -> nearest pixel ``(row, col)`` ``int [n, 2]``, clipped to the image."""
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    col = np.clip(np.floor((centres[:, 0] + 1) / 2 * width), 0, width - 1)
    row = np.clip(np.floor((centres[:, 1] + 1) / 2 * height), 0, height - 1)
    return np.stack([row, col], axis=-1).astype(np.int64)


def patches_at(image: np.ndarray, centres: np.ndarray, radius: int = PATCH_RADIUS) -> np.ndarray:
    """The ``(2r+1)^2 * 3`` patch features (``[-1, 1]`` scale) of ``image uint8 [H, W, 3]`` around
    each centre ``(u, v)`` ``[n, 2]`` -> ``float32 [n, (2r+1)^2 * 3]``."""
    h, w = image.shape[:2]
    padded = np.pad(np.asarray(image, np.float32) / 127.5 - 1.0, ((radius, radius), (radius, radius), (0, 0)),
                    mode="edge")
    size = 2 * radius + 1
    pixels = centre_pixels(centres, h, w)
    out = np.empty((len(pixels), size * size * 3), np.float32)
    for i, (row, col) in enumerate(pixels):
        out[i] = padded[row:row + size, col:col + size].reshape(-1)
    return out


def _network(inputs: int, hidden: int = HIDDEN):
    import torch
    return torch.nn.Sequential(torch.nn.Linear(inputs, hidden), torch.nn.SiLU(),
                               torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
                               torch.nn.Linear(hidden, NUM_COLOURS))


class ColourReadout:
    """``readout(images uint8 [N, H, W, 3], centres: sequence of [n_i, 2]) -> list of int [n_i]``
    colour indices (``COLOR_NAMES`` order) at each centre."""

    def __init__(self, network, radius: int = PATCH_RADIUS, info: dict | None = None):
        self.network = network.eval()
        self.radius = radius
        self.info = dict(info or {})

    def logits(self, features: np.ndarray) -> np.ndarray:
        import torch
        with torch.no_grad():
            return self.network(torch.from_numpy(np.asarray(features, np.float32))).numpy()

    def __call__(self, images: np.ndarray, centres) -> list[np.ndarray]:
        out = []
        for image, c in zip(np.asarray(images), centres):
            c = np.asarray(c, np.float64).reshape(-1, 2)
            out.append(self.logits(patches_at(image, c, self.radius)).argmax(-1).astype(np.int64)
                       if len(c) else np.zeros(0, np.int64))
        return out

    def save(self, path: str | Path) -> None:
        import torch
        from localcomp.provenance import write_bytes_atomic
        buffer = io.BytesIO()
        torch.save({"state": self.network.state_dict(), "radius": self.radius, "info": self.info}, buffer)
        write_bytes_atomic(Path(path), buffer.getvalue())


def load_readout(path: str | Path) -> ColourReadout:
    import torch
    state = torch.load(path, map_location="cpu", weights_only=False)
    size = 2 * state["radius"] + 1
    network = _network(size * size * 3)
    network.load_state_dict(state["state"])
    return ColourReadout(network, state["radius"], state.get("info"))


def training_patches(data, indices, radius: int = PATCH_RADIUS, jitter: float = 1.0, copies: int = 4,
                     min_pixels: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Patches ``[M, F]`` and colour labels ``[M]`` from the objects of ``data`` (a
    ``ClevrData``) in images ``indices``: ``copies`` patches per object, at its centre shifted by
    up to ``jitter`` pixels (uniform, ``numpy.random.default_rng(seed)``; the first copy unshifted)."""
    rng = np.random.default_rng(seed)
    features, labels = [], []
    for i in indices:
        image = data.images[i]
        h, w = image.shape[:2]
        objects = [o for o in data.metadata[i]["objects"] if o.get("pixels", min_pixels) >= min_pixels]
        if not objects:
            continue
        centres = np.asarray([o["location"] for o in objects], np.float64)
        for copy in range(copies):
            shift = rng.uniform(-jitter, jitter, size=centres.shape) * (2.0 / np.array([w, h])) if copy else 0.0
            features.append(patches_at(image, centres + shift, radius))
            labels.append([colour_index(o["color"]) for o in objects])
    return np.concatenate(features), np.concatenate([np.asarray(lab, np.int64) for lab in labels])


def fit_readout(features: np.ndarray, labels: np.ndarray, radius: int = PATCH_RADIUS, epochs: int = 60,
                batch_size: int = 256, lr: float = 2e-3, seed: int = 0) -> ColourReadout:
    """Fit the read-out MLP (Adam, cross-entropy, ``epochs`` passes, seeded) on patch ``features``
    ``[M, F]`` and colour ``labels`` ``[M]``; classes are weighted by inverse frequency."""
    import torch
    torch.manual_seed(seed)
    x = torch.from_numpy(np.asarray(features, np.float32))
    y = torch.from_numpy(np.asarray(labels, np.int64))
    network = _network(x.shape[1])
    counts = torch.bincount(y, minlength=NUM_COLOURS).float().clamp(min=1)
    loss_fn = torch.nn.CrossEntropyLoss(weight=counts.sum() / counts / NUM_COLOURS)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        for group in optimizer.param_groups:  # cosine decay to 0
            group["lr"] = lr * 0.5 * (1 + np.cos(np.pi * epoch / epochs))
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            loss = loss_fn(network(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    info = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "examples": int(len(x)),
            "class_counts": counts.long().tolist(), "hidden": HIDDEN}
    return ColourReadout(network, radius, info)


def readout_pairs(readout: ColourReadout, detector, data, indices, tolerance: float = DEFAULT_TOLERANCE,
                  min_pixels: int = 0) -> dict:
    """(true colour, read colour) pairs on the images ``indices`` of ``data`` (held-out renders):
    ``at_detections`` reads the colour at every detected centre matched (within ``tolerance``)
    to a true object; ``at_true_centres`` at every object's projected centre (objects with at
    least ``min_pixels`` visible pixels); each ``(true int [M], read int [M])``.
    ``matched_detections`` counts the objects the detector matched
    (``empirical.evaluation.colour.confusion_summary`` scores the pairs)."""
    from empirical.detection.detector import detect_objects
    indices = list(indices)
    images = data.images[indices]
    detections = detect_objects(detector, images)
    det_true, det_read, true_true, true_read = [], [], [], []
    objects_total = 0
    for image, found, i in zip(images, detections, indices):
        objects = data.metadata[i]["objects"]
        objects_total += len(objects)
        truth = np.asarray([o["location"] for o in objects], np.float64).reshape(-1, 2)
        colours = np.asarray([colour_index(o["color"]) for o in objects], np.int64)
        pairs = matched_pairs(found, truth, tolerance)
        if pairs:
            read = readout([image], [np.asarray(found)[[d for _, d in pairs]]])[0]
            det_true.extend(colours[[t for t, _ in pairs]])
            det_read.extend(read)
        keep = [j for j, o in enumerate(objects) if o.get("pixels", 0) >= min_pixels]
        if keep:
            true_true.extend(colours[keep])
            true_read.extend(readout([image], [truth[keep]])[0])
    as_arrays = lambda a, b: (np.asarray(a, np.int64), np.asarray(b, np.int64))  # noqa: E731
    return {"images": len(indices), "objects": objects_total, "matched_detections": len(det_true),
            "at_detections": as_arrays(det_true, det_read),
            "at_true_centres": as_arrays(true_true, true_read),
            "tolerance": tolerance, "min_pixels_true_centres": min_pixels}
