"""Object detector for Kmax: a small fully convolutional centre-heatmap network (CenterNet-like).

Input: uint8 images [B, H, W, 3] (any square size; trained on 32 and 64 px renders with 0-12
objects). The network sees the image scaled to [-1, 1] plus two coordinate channels (u, v),
and outputs one logit per pixel: "an object's projected centre lies in this pixel". Targets
are Gaussian blobs (sigma = 0.75 px) around each object's centre pixel, trained with a
positive-weighted binary cross-entropy. Decoding: pixels that are the maximum of their 3x3
neighbourhood with probability >= 0.5 are detections; the centre is refined to the
probability-weighted mean of that 3x3 neighbourhood and returned in the dataset convention
``u = 2*(col+0.5)/W - 1``, ``v = 2*(row+0.5)/H - 1``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

PEAK_THRESHOLD = 0.5
TARGET_SIGMA_PX = 0.75
POSITIVE_WEIGHT = 20.0


def build_network(width: int = 32):
    """Conv net with dilations 1, 2, 4, 8, 1 (receptive field 33 px); 5 input channels."""
    import torch.nn as nn

    layers, channels = [], 5
    for dilation in (1, 2, 4, 8, 1):
        layers += [nn.Conv2d(channels, width, 3, padding=dilation, dilation=dilation),
                   nn.GroupNorm(4, width), nn.SiLU()]
        channels = width
    layers.append(nn.Conv2d(width, 1, 1))
    return nn.Sequential(*layers)


def network_input(images: np.ndarray):
    """uint8 [B, H, W, 3] -> float32 tensor [B, 5, H, W]: RGB in [-1, 1] and (u, v) maps."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    b, _, h, w = x.shape
    u = (2 * (torch.arange(w) + 0.5) / w - 1).view(1, 1, 1, w).expand(b, 1, h, w)
    v = (2 * (torch.arange(h) + 0.5) / h - 1).view(1, 1, h, 1).expand(b, 1, h, w)
    return torch.cat([x, u, v], dim=1)


def heatmap_targets(locations: list[np.ndarray], size: int) -> np.ndarray:
    """float32 [B, 1, S, S]: max over objects of exp(-d^2 / (2 sigma^2)), d the pixel distance
    between a pixel centre and the object's centre (locations in [-1, 1])."""
    centres = (np.arange(size) + 0.5)
    out = np.zeros((len(locations), 1, size, size), dtype=np.float32)
    for b, locs in enumerate(locations):
        for u, v in np.asarray(locs).reshape(-1, 2):
            col, row = (u + 1) * size / 2, (v + 1) * size / 2
            d2 = (centres[None, :] - col) ** 2 + (centres[:, None] - row) ** 2
            out[b, 0] = np.maximum(out[b, 0], np.exp(-d2 / (2 * TARGET_SIGMA_PX ** 2)))
    return out


def decode_heatmap(prob: np.ndarray, threshold: float = PEAK_THRESHOLD) -> list[np.ndarray]:
    """prob [B, S, S] -> per image float [n, 2] centres (u, v) of the 3x3 local maxima >= threshold."""
    from scipy.ndimage import maximum_filter

    results = []
    size = prob.shape[-1]
    for p in prob:
        peaks = (p >= threshold) & (p == maximum_filter(p, size=3, mode="constant"))
        centres = []
        for row, col in zip(*np.nonzero(peaks)):
            r0, r1, c0, c1 = max(row - 1, 0), min(row + 2, size), max(col - 1, 0), min(col + 2, size)
            patch = p[r0:r1, c0:c1]
            rows, cols = np.mgrid[r0:r1, c0:c1]
            r = (patch * rows).sum() / patch.sum()
            c = (patch * cols).sum() / patch.sum()
            centres.append([2 * (c + 0.5) / size - 1, 2 * (r + 0.5) / size - 1])
        results.append(np.asarray(centres, dtype=np.float64).reshape(-1, 2))
    return results


def load_detector(path: str | Path):
    """A trained network from ``detector.pt`` (state dict + width)."""
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    network = build_network(int(checkpoint["width"]))
    network.load_state_dict(checkpoint["state_dict"])
    network.eval()
    return network


def detect_objects(detector, images: np.ndarray, batch_size: int = 256) -> list[np.ndarray]:
    """Object centres per image: list of float [n_i, 2] in the [-1, 1] convention.
    ``detector``: a network from :func:`build_network`/:func:`load_detector` or a path."""
    import torch

    if isinstance(detector, (str, Path)):
        detector = load_detector(detector)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [B, H, W, 3], got {images.dtype} {images.shape}")
    out: list[np.ndarray] = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = detector(network_input(images[start:start + batch_size]))
            out.extend(decode_heatmap(torch.sigmoid(logits[:, 0]).numpy()))
    return out


def train_detector(datasets: list, steps: int, seed: int, batch_size: int = 32,
                   width: int = 32, lr: float = 3e-3, progress: bool = True):
    """Train on ``datasets`` (list of :class:`empirical.dataset.ClevrData`, any resolutions);
    each step draws a batch from one dataset in turn. Returns (network, loss history)."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = build_network(width)
    optimiser = torch.optim.Adam(network.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps)
    targets = [heatmap_targets([np.array([o["location"] for o in m["objects"]]).reshape(-1, 2)
                                for m in d.metadata], d.images.shape[1]) for d in datasets]
    losses = []
    for step in tqdm(range(steps), desc="train detector", disable=not progress):
        which = step % len(datasets)
        idx = rng.integers(0, len(datasets[which].images), size=batch_size)
        images = datasets[which].images[idx]
        if rng.random() < 0.5:  # the camera is fixed: no flips; brightness jitter only
            images = np.clip(images.astype(np.int16) + rng.integers(-8, 9), 0, 255).astype(np.uint8)
        logits = network(network_input(images))
        target = torch.from_numpy(targets[which][idx])
        weight = 1 + (POSITIVE_WEIGHT - 1) * target
        loss = F.binary_cross_entropy_with_logits(logits, target, weight=weight)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss))
    network.eval()
    return network, losses


def count_accuracy(detector, data, tolerance: float | None = None) -> dict:
    """Per K (true object count): exact-count accuracy and, with ``tolerance``, the rate at
    which the detections match the true centres one-to-one (see :mod:`empirical.kmax`)."""
    from empirical.kmax import DEFAULT_TOLERANCE, sample_succeeds

    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    detections = detect_objects(detector, data.images)
    per_k: dict[int, dict] = {}
    for found, meta in zip(detections, data.metadata):
        truth = np.array([o["location"] for o in meta["objects"]]).reshape(-1, 2)
        entry = per_k.setdefault(len(truth), {"n": 0, "exact": 0, "matched": 0})
        entry["n"] += 1
        entry["exact"] += int(len(found) == len(truth))
        entry["matched"] += int(sample_succeeds(found, truth, tolerance))
    return {k: {"n": e["n"], "exact_count_accuracy": e["exact"] / e["n"],
                "location_match_rate": e["matched"] / e["n"]} for k, e in sorted(per_k.items())}


def train_detector_cli(args) -> int:
    import torch

    from empirical.dataset import load_dataset
    from localcomp.errors import UserError
    from localcomp.provenance import write_json_atomic, write_run_record

    for name in ("steps", "width", "batch_size"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    if args.width % 4:
        raise UserError(f"--width: must be a multiple of 4 (GroupNorm with 4 groups), got {args.width}")
    datasets = [load_dataset(path) for path in args.data]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    network, losses = train_detector(datasets, args.steps, args.seed,
                                     batch_size=args.batch_size, width=args.width)
    torch.save({"width": network[0].out_channels, "state_dict": network.state_dict()},
               out / "detector.pt")
    report = {"steps": args.steps, "seconds": time.time() - start, "final_loss": losses[-1],
              "loss_every_100": losses[::100], "data": args.data,
              "train_accuracy": {str(d.images.shape[1]): count_accuracy(network, d)
                                 for d in datasets}}
    write_json_atomic(out / "train.json", report)
    write_run_record(out, config={k: v for k, v in vars(args).items() if k != "func"},
                     seed=args.seed)
    print(json.dumps({"out": str(out), "seconds": round(report["seconds"], 1),
                      "final_loss": report["final_loss"]}))
    return 0


def eval_detector_cli(args) -> int:
    from empirical.dataset import load_dataset
    from localcomp.provenance import write_json_atomic

    network = load_detector(args.detector)
    report = {"detector": args.detector, "per_resolution": {}}
    for path in args.data:
        data = load_dataset(path)
        per_k = count_accuracy(network, data)
        report["per_resolution"][str(data.images.shape[1])] = {
            "data": path, "per_k": per_k,
            "min_exact_count_accuracy": min(e["exact_count_accuracy"] for e in per_k.values())}
    write_json_atomic(args.json, report)
    print(json.dumps({r: v["min_exact_count_accuracy"]
                      for r, v in report["per_resolution"].items()}))
    return 0
