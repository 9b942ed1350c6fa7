"""``--dry-run``'s time estimates, from a short measured probe on this machine.

Per distinct model: one timed training step at the preset's batch size (after one warm-up step)
and one timed sampling forward pass; per rendered dataset: two rendered images. A stage's
estimate is the probe time times the work the slice does (steps; sampler evaluations of Kmax;
Jacobian rows of locality, each counted as three forward passes). These are estimates: the
probe runs once, on whatever else the machine is doing, and ignores data loading.
"""

from __future__ import annotations

import math
import tempfile
import time

from empirical.validation.plan import ValidationConfig


def _timed(fn, repeats: int = 1) -> float:
    fn()  # warm-up (allocations, first-call overheads)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def probe_model(experiment: str, model_preset: str, sample_batch: int, steps: int | None) -> dict:
    """Seconds of one training step and of one sampling forward pass of this experiment's model."""
    import torch

    from empirical.training.experiments import build_model, make_train_config

    config = make_train_config(experiment, model_preset, steps=steps)
    model = build_model(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    r, b = config.resolution, config.schedule.batch_size
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(b, 3, r, r) * 2 - 1
    cond = torch.rand(b, 3, 2) * 1.6 - 0.8
    mask = torch.ones(b, 3, dtype=torch.bool)

    def train_step():
        optimizer.zero_grad()
        model.training_loss(images, cond, mask, generator, config.schedule.sigma).backward()
        optimizer.step()

    x = torch.randn(sample_batch, 3, r, r)
    sigma = torch.full((sample_batch,), 1.0)
    sample_cond = torch.rand(sample_batch, 6, 2) * 1.6 - 0.8
    sample_mask = torch.ones(sample_batch, 6, dtype=torch.bool)

    def forward():
        with torch.no_grad():
            model(x, sigma, sample_cond, sample_mask)

    def forward_one():
        with torch.no_grad():
            model(x[:1], sigma[:1], sample_cond[:1], sample_mask[:1])

    return {"train_step": _timed(train_step), "forward": _timed(forward), "forward_one": _timed(forward_one),
            "steps": config.schedule.steps, "sampler_steps": config.schedule.sampler_steps}


def probe_render(resolution: int, spp: int) -> float:
    """Seconds per rendered image (two images of the evaluation preset)."""
    from empirical.clevr.dataset import BuildConfig, build_dataset
    from empirical.clevr.presets import get_preset

    config = BuildConfig.from_preset(get_preset("clevr0-12"), num_images=2, resolution=resolution, spp=spp,
                                     seed=0, shard_size=2)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        build_dataset(config, tmp, workers=1, progress=False)
        return (time.perf_counter() - start) / 2


def estimate(config: ValidationConfig, plan) -> dict:
    """``{stage: {slice name: seconds}}`` for every slice of ``plan``, and the probe's own numbers."""
    from empirical.diagnostics.locality import DEFAULT_SIGMAS

    p = config.preset
    sample_batch = min(16, p.num_sets * p.samples_per_set)  # sample_for_sets' batch
    models = {e: probe_model(e, p.model_preset, sample_batch, p.train_steps) for e in config.experiments}
    seconds: dict[str, dict[str, float]] = {stage: {} for stage in plan}
    if plan["render"]:
        per_image = probe_render(p.resolution, p.spp)
        for piece in plan["render"]:
            images = int(piece.fields["num_images"])
            seconds["render"][piece.name] = per_image * images / config.workers
    for piece in plan["train"]:
        m = models[piece.fields["experiment"]]
        seconds["train"][piece.name] = m["train_step"] * m["steps"]
    sigmas = len(p.locality_sigmas or DEFAULT_SIGMAS)
    experiment_of = {t.name: t.fields["experiment"] for t in plan["train"]}
    for piece_k, piece_l in zip(plan["kmax"], plan["locality"]):
        m = models[experiment_of[piece_k.name]]
        sampler_steps = p.sampler_steps or m["sampler_steps"]
        batches = math.ceil(p.num_sets * p.samples_per_set / sample_batch)
        seconds["kmax"][piece_k.name] = m["forward"] * (p.max_k + 1) * batches * (2 * sampler_steps - 1)
        jacobian_images = p.locality_jacobian_images or p.locality_images
        pixels = p.locality_pixels_per_image or 3
        rows = sigmas * (jacobian_images * pixels * 3 + p.locality_images * 4)  # 3 passes a row; ~3 removals
        seconds["locality"][piece_l.name] = m["forward_one"] * rows
    seconds["report"] = {"report": 5.0}
    return {"seconds": seconds, "probe": {"models": models,
                                          "render_per_image": per_image if plan["render"] else None}}
