"""Object detector for Kmax: a small encoder-decoder (UNet-like) centre-heatmap network.

Input: uint8 images [B, H, W, 3], square, any size. Every image is first resized to the
detector's *working resolution*, stored with the network: 32 px by default (64 px renders are
2x2 area-averaged, which is what a 32 px render with a box pixel filter estimates, up to the
sRGB curve), so one network serves 32 and 64 px; 48 for the framed 48 px data of issue 11.
The network sees RGB scaled to [-1, 1] plus two coordinate channels (u, v) (the
camera is fixed for a detector, so an object's apparent size depends on where it is), and outputs one logit
per cell of a heatmap at **twice** the working resolution (at 32 px 64x64 cells of half a pixel):
"an object's projected centre lies in this cell". Twice, because at 32 px two centres can lie
1.2 px apart (see ``docs/clevr-data.md``), which a 3x3 peak search at 1 px cells would merge.

Architecture (width c): two conv blocks at each of 32, 16 and 8 px (c, 2c, 4c channels;
stride-2 convolutions down, nearest upsampling + skip concatenation up, the 8 px block
dilated 1 and 2), GroupNorm + SiLU, and a 3x3 conv to 4 channels + PixelShuffle(2) as the
head (the 2x heatmap).

Targets: per object, a Gaussian exp(-d^2 / (2 sigma^2)) (sigma = 1 cell = 0.5 px, d from the
cell centre to the object's centre) with the cell holding the centre set to exactly 1; max
over objects. Loss: CenterNet's penalty-reduced focal loss (alpha 2, beta 4), normalized by
the number of objects. Decoding: cells that are the maximum of their 3x3 neighbourhood with
probability >= ``threshold`` (tuned on a validation split and stored in the checkpoint) are
detections; each centre is refined to the probability-weighted mean of that 3x3 neighbourhood
and returned in the dataset convention ``u = 2*col/W - 1``, ``v = 2*row/H - 1`` (continuous
pixel coordinates, pixel centres at integer + 0.5).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np

WORKING_RESOLUTION = 32
HEATMAP_SCALE = 2
DEFAULT_THRESHOLD = 0.4
TARGET_SIGMA_CELLS = 1.0
FOCAL_ALPHA = 2.0
FOCAL_BETA = 4.0
ARCHITECTURE = "unet2-shuffle"


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1):
    import torch.nn as nn
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation,
                                   dilation=dilation),
                         nn.GroupNorm(min(8, cout // 4), cout), nn.SiLU())


def _network_class():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class CentreNet(nn.Module):
        """UNet with two downsamplings; forward: float [B, 5, R, R] -> logits [B, 1, 2R, 2R]
        (R divisible by 4; R = ``working_resolution`` for images taken there by
        :func:`network_input`). ``threshold`` (a buffer, saved with the weights) is the decoding
        probability threshold."""

        def __init__(self, width: int, working_resolution: int = WORKING_RESOLUTION):
            super().__init__()
            c = width
            self.width = width
            self.working_resolution = int(working_resolution)
            self.enc1 = nn.Sequential(_block(5, c), _block(c, c))
            self.enc2 = nn.Sequential(_block(c, 2 * c, stride=2), _block(2 * c, 2 * c))
            self.mid = nn.Sequential(_block(2 * c, 4 * c, stride=2), _block(4 * c, 4 * c),
                                     _block(4 * c, 4 * c, dilation=2))
            self.dec2 = nn.Sequential(_block(6 * c, 2 * c), _block(2 * c, 2 * c))
            self.dec1 = nn.Sequential(_block(3 * c, c), _block(c, c))
            self.head = nn.Sequential(nn.Conv2d(c, HEATMAP_SCALE ** 2, 3, padding=1),
                                      nn.PixelShuffle(HEATMAP_SCALE))
            # a low initial object probability (CenterNet's prior bias -2.19 ~ p = 0.1)
            nn.init.constant_(self.head[0].bias, -2.19)
            self.register_buffer("threshold", torch.tensor(DEFAULT_THRESHOLD))

        def forward(self, x):
            s1 = self.enc1(x)
            s2 = self.enc2(s1)
            s3 = self.mid(s2)
            d2 = self.dec2(torch.cat([F.interpolate(s3, scale_factor=2.0), s2], 1))
            d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0), s1], 1))
            return self.head(d1)

    return CentreNet


def build_network(width: int = 32, working_resolution: int = WORKING_RESOLUTION):
    """An untrained :class:`CentreNet` of ``width`` base channels (a multiple of 4) that reads
    images at ``working_resolution`` px (a multiple of 4)."""
    if width < 4 or width % 4:
        raise ValueError(f"width must be a positive multiple of 4, got {width}")
    if working_resolution < 4 or working_resolution % 4:
        raise ValueError(f"working_resolution must be a positive multiple of 4, got {working_resolution}")
    return _network_class()(width, working_resolution)


def to_working_resolution(images: np.ndarray, working_resolution: int = WORKING_RESOLUTION):
    """uint8 [B, H, W, 3] (square) -> float32 tensor [B, 3, R, R] in [-1, 1], R =
    ``working_resolution``: area average when H is a multiple of R, bilinear (antialiased)
    resampling otherwise."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    size, working = x.shape[-1], int(working_resolution)
    if size == working:
        return x
    if size % working == 0:
        return F.avg_pool2d(x, size // working)
    return F.interpolate(x, size=(working, working), mode="bilinear", antialias=True,
                         align_corners=False)


def add_coordinates(x):
    """float [B, 3, R, R] -> [B, 5, R, R]: appends the (u, v) maps of the pixel centres."""
    import torch

    b, _, h, w = x.shape
    u = (2 * (torch.arange(w) + 0.5) / w - 1).view(1, 1, 1, w).expand(b, 1, h, w)
    v = (2 * (torch.arange(h) + 0.5) / h - 1).view(1, 1, h, 1).expand(b, 1, h, w)
    return torch.cat([x, u, v], dim=1)


def network_input(images: np.ndarray, working_resolution: int = WORKING_RESOLUTION):
    """uint8 [B, H, W, 3] -> float32 tensor [B, 5, R, R] (working resolution R + (u, v))."""
    return add_coordinates(to_working_resolution(images, working_resolution))


def heatmap_targets(locations: list[np.ndarray], size: int) -> np.ndarray:
    """float32 [B, 1, S, S] targets for a heatmap of S x S cells: per object (location
    (u, v) in [-1, 1]) exp(-d^2 / (2 sigma^2)), d the distance in cells between a cell centre
    and the object's centre, and exactly 1 in the cell holding the centre; max over objects."""
    centres = np.arange(size) + 0.5
    out = np.zeros((len(locations), 1, size, size), dtype=np.float32)
    for b, locs in enumerate(locations):
        for u, v in np.asarray(locs, dtype=np.float64).reshape(-1, 2):
            col, row = (u + 1) * size / 2, (v + 1) * size / 2
            d2 = (centres[None, :] - col) ** 2 + (centres[:, None] - row) ** 2
            blob = np.exp(-d2 / (2 * TARGET_SIGMA_CELLS ** 2))
            r, c = int(np.clip(np.floor(row), 0, size - 1)), int(np.clip(np.floor(col), 0, size - 1))
            blob[r, c] = 1.0
            out[b, 0] = np.maximum(out[b, 0], blob)
    return out


def _focal_terms(logits, target):
    """Per-cell penalty-reduced focal loss [B, 1, S, S] and the positive cells (target == 1):
    positives -(1-p)^a log p; others -(1-y)^b p^a log(1-p)."""
    import torch
    import torch.nn.functional as F

    positive = target >= 1.0
    p = torch.sigmoid(logits)
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    terms = torch.where(positive, (1 - p) ** FOCAL_ALPHA * log_p,
                        (1 - target) ** FOCAL_BETA * p ** FOCAL_ALPHA * log_not_p)
    return -terms, positive


def focal_loss(logits, target):
    """CenterNet's penalty-reduced focal loss (:func:`_focal_terms`), summed over the batch and
    divided by max(1, #positives)."""
    terms, positive = _focal_terms(logits, target)
    return terms.sum() / positive.sum().clamp(min=1)


def focal_loss_per_image(logits, target):
    """float [B]: each image's focal loss, divided by max(1, its own #positives)."""
    terms, positive = _focal_terms(logits, target)
    return terms.sum(dim=(1, 2, 3)) / positive.sum(dim=(1, 2, 3)).clamp(min=1)


def decode_heatmap(prob: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> list[np.ndarray]:
    """prob [B, S, S] -> per image float [n, 2] centres (u, v) of the cells that are the
    maximum of their 3x3 neighbourhood with probability >= threshold, refined to the
    probability-weighted mean cell position of that neighbourhood."""
    from scipy.ndimage import maximum_filter

    prob = np.asarray(prob, dtype=np.float64)
    size = prob.shape[-1]
    peaks = (prob >= threshold) & (prob == maximum_filter(prob, size=(1, 3, 3), mode="constant"))
    padded = np.pad(prob, ((0, 0), (1, 1), (1, 1)))
    offsets = np.arange(-1, 2)
    results = []
    for b in range(len(prob)):
        rows, cols = np.nonzero(peaks[b])
        # 3x3 neighbourhoods [n, 3, 3] (in the padded map, cell (r, c) sits at (r+1, c+1))
        patches = padded[b][rows[:, None, None] + 1 + offsets[None, :, None],
                            cols[:, None, None] + 1 + offsets[None, None, :]]
        weight = patches.sum(axis=(1, 2))
        r = rows + (patches.sum(axis=2) @ offsets) / weight
        c = cols + (patches.sum(axis=1) @ offsets) / weight
        centres = np.stack([2 * (c + 0.5) / size - 1, 2 * (r + 0.5) / size - 1], axis=-1)
        results.append(centres.reshape(-1, 2))
    return results


def save_detector(network, path: str | Path) -> None:
    """Atomically write ``{"architecture", "width", "working_resolution", "state_dict"}``
    (threshold included)."""
    import torch

    from localcomp.provenance import write_bytes_atomic

    buffer = io.BytesIO()
    torch.save({"architecture": ARCHITECTURE, "width": network.width,
                "working_resolution": network.working_resolution,
                "state_dict": {k: v.detach().clone() for k, v in network.state_dict().items()}},
               buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_detector(path: str | Path):
    """A trained network (eval mode) from a checkpoint written by :func:`save_detector` (or a
    bare ``{"width", "state_dict"}`` of this architecture; threshold then the default, working
    resolution 32 when the checkpoint does not name one).
    UserError for a checkpoint of another architecture (e.g. the old dilated conv net)."""
    import torch

    from localcomp.errors import UserError

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    architecture = checkpoint.get("architecture", ARCHITECTURE)
    network = build_network(int(checkpoint["width"]),
                            int(checkpoint.get("working_resolution", WORKING_RESOLUTION)))
    state = dict(checkpoint["state_dict"])
    state.setdefault("threshold", network.threshold)
    if architecture != ARCHITECTURE or set(state) != set(network.state_dict()):
        raise UserError(f"--detector: {path} holds a different detector architecture "
                        f"({architecture!r}, {len(state)} tensors) than this code's "
                        f"{ARCHITECTURE!r}; retrain it with `localcomp clevr detector train`")
    network.load_state_dict(state)
    network.eval()
    return network


def predict_heatmaps(network, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Object-centre probabilities float32 [B, 2R, 2R] for uint8 images [B, H, W, 3] (R the
    network's working resolution)."""
    import torch

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [B, H, W, 3], got {images.dtype} {images.shape}")
    if images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be square, got {images.shape[1]}x{images.shape[2]}")
    size = network.working_resolution * HEATMAP_SCALE
    out = np.zeros((len(images), size, size), dtype=np.float32)
    was_training = network.training
    network.eval()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = network(network_input(images[start:start + batch_size],
                                           network.working_resolution))
            out[start:start + batch_size] = torch.sigmoid(logits[:, 0]).numpy()
    network.train(was_training)
    return out


def detect_objects(detector, images: np.ndarray, batch_size: int = 256,
                   threshold: float | None = None) -> list[np.ndarray]:
    """Object centres per image: list of float [n_i, 2] in the [-1, 1] convention.
    ``detector``: a network from :func:`build_network`/:func:`load_detector`, a path to one, or
    any other callable ``images uint8 [B, H, W, 3] -> sequence of [n_i, 2]`` centres (a
    researcher's own detector; ``batch_size`` and ``threshold`` are then not used);
    ``threshold`` defaults to the one stored with the network."""
    if isinstance(detector, (str, Path)):
        detector = load_detector(detector)
    if callable(detector) and not hasattr(detector, "threshold"):  # not one of our networks
        found = [np.asarray(d, dtype=np.float64).reshape(-1, 2) for d in detector(np.asarray(images))]
        if len(found) != len(images):
            raise ValueError(f"detector returned {len(found)} detection lists for {len(images)} images")
        return found
    threshold = float(detector.threshold) if threshold is None else threshold
    return decode_heatmap(predict_heatmaps(detector, images, batch_size), threshold)


# --- training ----------------------------------------------------------------------------

def augment(x, rng: np.random.Generator):
    """Photometric augmentation of float [B, 3, R, R] images in [-1, 1] (per image, each with
    probability 1/2): brightness/contrast (gain U(0.8, 1.2), offset U(-0.1, 0.1)), Gaussian
    blur (sigma U(0.3, 0.8) px), additive Gaussian noise (std U(0, 0.08)); clipped to [-1, 1].
    No flips: the camera is fixed and the (u, v) channels encode perspective."""
    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    x = x.clone()
    on = torch.from_numpy(rng.random((3, b)) < 0.5)
    gain = torch.from_numpy(rng.uniform(0.8, 1.2, b)).float().view(b, 1, 1, 1)
    offset = torch.from_numpy(rng.uniform(-0.1, 0.1, b)).float().view(b, 1, 1, 1)
    x = torch.where(on[0].view(b, 1, 1, 1), x * gain + offset, x)
    sigma = rng.uniform(0.3, 0.8, b)
    taps = np.arange(-2, 3)
    kernels = np.exp(-taps[None, :] ** 2 / (2 * sigma[:, None] ** 2))
    kernels = torch.from_numpy(kernels / kernels.sum(1, keepdims=True)).float()   # [B, 5]
    blurred = x.permute(1, 0, 2, 3).reshape(1, 3 * b, *x.shape[2:])                # [1, 3B, R, R]
    weight_h = kernels.repeat_interleave(3, 0).view(3 * b, 1, 1, 5)
    weight_v = kernels.repeat_interleave(3, 0).view(3 * b, 1, 5, 1)
    # channel order after permute is (c, b): reorder the per-image kernels to match
    order = torch.arange(3 * b).view(b, 3).t().reshape(-1)
    weight_h, weight_v = weight_h[order], weight_v[order]
    blurred = F.conv2d(F.pad(blurred, (2, 2, 0, 0), mode="replicate"), weight_h, groups=3 * b)
    blurred = F.conv2d(F.pad(blurred, (0, 0, 2, 2), mode="replicate"), weight_v, groups=3 * b)
    blurred = blurred.view(3, b, *x.shape[2:]).permute(1, 0, 2, 3)
    x = torch.where(on[1].view(b, 1, 1, 1), blurred, x)
    noise_std = torch.from_numpy(rng.uniform(0, 0.08, b)).float().view(b, 1, 1, 1)
    noise = torch.from_numpy(rng.standard_normal(x.shape)).float() * noise_std
    x = torch.where(on[2].view(b, 1, 1, 1), x + noise, x)
    return x.clamp(-1, 1)


def object_locations(data) -> list[np.ndarray]:
    """Per image float [n, 2]: every object's centre (u, v) from a dataset's metadata."""
    return [np.array([o["location"] for o in m["objects"]], dtype=np.float64).reshape(-1, 2)
            for m in data.metadata]


def train_detector(datasets: list, steps: int, seed: int, batch_size: int = 32,
                   width: int = 32, lr: float = 2e-3, progress: bool = True,
                   checkpoint: str | Path | None = None, checkpoint_every: int = 500,
                   ema_decay: float = 0.998, init=None, hard_fraction: float = 0.0,
                   working_resolution: int = WORKING_RESOLUTION):
    """Train on ``datasets`` (:class:`empirical.clevr.dataset.ClevrData`, any square resolutions;
    all images are taken to ``working_resolution`` once, up front); batches are drawn
    uniformly over the pooled images, augmented (:func:`augment`), with AdamW and a one-cycle
    schedule. Returns (EMA network in eval mode, loss history). With ``checkpoint`` the EMA
    network is saved there every ``checkpoint_every`` steps (a killed run keeps its progress).
    ``init``: a network of the same ``width`` (e.g. :func:`load_detector`) whose weights (and
    threshold) the training starts from (fine-tuning; its working resolution may differ, the
    weights of a fully convolutional network do not depend on it); the EMA starts from them too.
    ``hard_fraction`` (fine-tuning only): that share of every batch is drawn with probability
    proportional to the ``init`` network's own loss on each (unaugmented) training image
    (:func:`hard_example_weights`), the rest uniformly: the images the network gets wrong, e.g.
    low-contrast or barely visible objects, are seen more often."""
    import copy

    import torch
    from tqdm import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images = torch.cat([to_working_resolution(d.images, working_resolution) for d in datasets])
    locations = [loc for d in datasets for loc in object_locations(d)]
    targets = torch.from_numpy(heatmap_targets(locations, working_resolution * HEATMAP_SCALE))
    network = build_network(width, working_resolution)
    if init is not None:
        if init.width != width:
            raise ValueError(f"init network has width {init.width}, not {width}")
        network.load_state_dict(init.state_dict())
        network.train()
    if not 0.0 <= hard_fraction < 1.0:
        raise ValueError(f"hard_fraction must be in [0, 1), got {hard_fraction}")
    num_hard = int(round(hard_fraction * batch_size))
    hard_weights = None
    if num_hard:
        if init is None:
            raise ValueError("hard_fraction needs an init network (its losses pick the images)")
        hard_weights = hard_example_weights(network, images, targets)
    ema = copy.deepcopy(network)
    optimiser = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps,
                                                   pct_start=0.15)
    losses = []
    bar = tqdm(range(steps), desc="train detector", disable=not progress)
    for step in bar:
        idx = rng.integers(0, len(images), size=batch_size)
        if hard_weights is not None:
            idx[:num_hard] = rng.choice(len(images), size=num_hard, p=hard_weights)
        idx = torch.from_numpy(idx)
        x = add_coordinates(augment(images[idx], rng))
        loss = focal_loss(network(x), targets[idx])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        with torch.no_grad():
            decay = min(ema_decay, (1 + step) / (10 + step))
            for e, p in zip(ema.parameters(), network.parameters()):
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)
            for e, p in zip(ema.buffers(), network.buffers()):
                e.copy_(p)
        losses.append(float(loss.detach()))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            save_detector(ema, checkpoint)
    ema.eval()
    return ema, losses


def hard_example_weights(network, images, targets, batch_size: int = 256) -> np.ndarray:
    """float64 [N] summing to 1: each image's :func:`focal_loss_per_image` under ``network``
    (eval mode, no augmentation), normalized. ``images`` float [N, 3, R, R] at the working
    resolution, ``targets`` [N, 1, S, S] (:func:`heatmap_targets`)."""
    import torch

    was_training = network.training
    network.eval()
    losses = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = add_coordinates(images[start:start + batch_size])
            losses.append(focal_loss_per_image(network(x), targets[start:start + batch_size]))
    network.train(was_training)
    weights = torch.cat(losses).double().numpy()
    return weights / weights.sum()


# --- evaluation --------------------------------------------------------------------------

def per_k_accuracy(detections: list[np.ndarray], truths: list[np.ndarray],
                   tolerance: float) -> dict:
    """Per K (true object count): n, exact-count accuracy and location match rate (exactly K
    detections, Hungarian-matched one-to-one within ``tolerance``, see :mod:`empirical.evaluation.kmax`)."""
    from empirical.detection.matching import sample_succeeds

    per_k: dict[int, dict] = {}
    for found, truth in zip(detections, truths):
        entry = per_k.setdefault(len(truth), {"n": 0, "exact": 0, "matched": 0})
        entry["n"] += 1
        entry["exact"] += int(len(found) == len(truth))
        entry["matched"] += int(sample_succeeds(found, truth, tolerance))
    return {k: {"n": e["n"], "exact_count_accuracy": e["exact"] / e["n"],
                "location_match_rate": e["matched"] / e["n"]} for k, e in sorted(per_k.items())}


def count_accuracy(detector, data, tolerance: float | None = None,
                   threshold: float | None = None) -> dict:
    """:func:`per_k_accuracy` of ``detector`` on a dataset (default Kmax tolerance)."""
    from empirical.detection.matching import DEFAULT_TOLERANCE

    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    detections = detect_objects(detector, data.images, threshold=threshold)
    return per_k_accuracy(detections, object_locations(data), tolerance)


def tune_threshold(network, datasets: list, candidates: np.ndarray | None = None) -> dict:
    """Pick the decoding threshold on validation ``datasets``: the candidate maximizing the
    smallest per-K exact-count accuracy (over every dataset and K), ties broken by the mean.
    Returns {"threshold", "min_accuracy", "mean_accuracy", "scores": [[t, min, mean], ...]}."""
    candidates = np.round(np.arange(0.1, 0.901, 0.025), 3) if candidates is None else candidates
    heatmaps = [predict_heatmaps(network, d.images) for d in datasets]
    counts = [np.array([len(loc) for loc in object_locations(d)]) for d in datasets]
    scores = []
    for t in candidates:
        accs = []
        for heat, truth in zip(heatmaps, counts):
            found = np.array([len(c) for c in decode_heatmap(heat, float(t))])
            accs += [float(np.mean(found[truth == k] == k)) for k in np.unique(truth)]
        scores.append([float(t), min(accs), float(np.mean(accs))])
    best = max(scores, key=lambda s: (s[1], s[2]))
    return {"threshold": best[0], "min_accuracy": best[1], "mean_accuracy": best[2],
            "scores": scores}


def _summary(per_k: dict) -> dict:
    return {"min_exact_count_accuracy": min(e["exact_count_accuracy"] for e in per_k.values()),
            "min_location_match_rate": min(e["location_match_rate"] for e in per_k.values())}


def load_init_network(path: str | Path, width: int):
    """The detector at ``path`` to fine-tune from (``--init``); UserError naming ``--init`` when
    the file is missing, holds another architecture, or its width differs from ``width``."""
    from localcomp.errors import UserError

    if not Path(path).is_file():
        raise UserError(f"--init: {path} does not exist")
    try:
        network = load_detector(path)
    except UserError as error:
        raise UserError(f"--init: {path} is not a detector of this architecture ({error})") from None
    except Exception as error:  # not a torch checkpoint at all
        raise UserError(f"--init: cannot read {path} as a detector checkpoint: {error}") from None
    if network.width != width:
        raise UserError(f"--init: {path} has width {network.width}, but --width is {width}; "
                        f"pass --width {network.width} to fine-tune it")
    return network


def train_detector_cli(args) -> int:
    import torch

    from empirical.clevr.dataset import load_dataset
    from localcomp.errors import UserError
    from localcomp.provenance import write_json_atomic, write_run_record

    working_resolution = getattr(args, "working_resolution", WORKING_RESOLUTION)
    if working_resolution < 4 or working_resolution % 4:
        raise UserError(f"--working-resolution: must be a positive multiple of 4, got "
                        f"{working_resolution}")
    for name in ("steps", "width", "batch_size", "threads"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    if args.width % 4:
        raise UserError(f"--width: must be a multiple of 4 (GroupNorm groups), got {args.width}")
    if not args.lr > 0:
        raise UserError(f"--lr: must be > 0, got {args.lr}")
    init = getattr(args, "init", None)
    hard_fraction = getattr(args, "hard_fraction", 0.0)
    if not 0.0 <= hard_fraction < 1.0:
        raise UserError(f"--hard-fraction: must be in [0, 1), got {hard_fraction}")
    if hard_fraction > 0 and init is None:
        raise UserError("--hard-fraction: needs --init (the initial network's losses pick the "
                        "hard images)")
    init_network = load_init_network(init, args.width) if init is not None else None
    torch.set_num_threads(args.threads)
    datasets = [load_dataset(path) for path in args.data]
    validation = [load_dataset(path) for path in (args.val or [])]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    network, losses = train_detector(datasets, args.steps, args.seed, batch_size=args.batch_size,
                                     width=args.width, lr=args.lr, checkpoint=out / "detector.pt",
                                     init=init_network, hard_fraction=hard_fraction,
                                     working_resolution=working_resolution)
    train_seconds = time.time() - start
    tuning = None
    if validation:
        tuning = tune_threshold(network, validation)
        network.threshold.fill_(tuning["threshold"])
    save_detector(network, out / "detector.pt")
    report = {"steps": args.steps, "seconds": train_seconds, "final_loss": losses[-1],
              "loss_mean_every_100": [float(np.mean(losses[i:i + 100]))
                                      for i in range(0, len(losses), 100)],
              "data": args.data, "validation": args.val, "init": init,
              "hard_fraction": hard_fraction, "working_resolution": working_resolution,
              "threshold": float(network.threshold),
              "threshold_tuning": tuning,
              "parameters": sum(p.numel() for p in network.parameters())}
    if validation:
        report["validation_accuracy"] = {}
        for path, d in zip(args.val, validation):
            per_k = count_accuracy(network, d)
            report["validation_accuracy"][path] = {"per_k": per_k, **_summary(per_k)}
    write_json_atomic(out / "train.json", report)
    write_run_record(out, config={k: v for k, v in vars(args).items() if k != "func"},
                     seed=args.seed)
    print(json.dumps({"out": str(out), "seconds": round(train_seconds, 1),
                      "final_loss": report["final_loss"], "threshold": report["threshold"]}))
    return 0


def eval_detector_cli(args) -> int:
    import torch

    from empirical.clevr.dataset import load_dataset
    from localcomp.errors import UserError
    from localcomp.provenance import check_writable_file, refuse_overwrite, write_json_atomic

    if not Path(args.detector).exists():
        raise UserError(f"--detector: {args.detector} does not exist")
    check_writable_file(args.json, "--json")
    refuse_overwrite([args.json], getattr(args, "force", False))
    torch.set_num_threads(1)
    network = load_detector(args.detector)
    report = {"detector": args.detector, "threshold": float(network.threshold),
              "per_resolution": {}}
    for path in args.data:
        data = load_dataset(path)
        per_k = count_accuracy(network, data)
        report["per_resolution"][str(data.images.shape[1])] = {
            "data": path, "per_k": per_k, **_summary(per_k)}
    write_json_atomic(args.json, report)
    print(json.dumps({r: v["min_exact_count_accuracy"]
                      for r, v in report["per_resolution"].items()}))
    return 0
