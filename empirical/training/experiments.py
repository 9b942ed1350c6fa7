"""Named CLEVR experiments (SCIENCE.md §6) and size presets; see docs/clevr-experiments.md.

An *experiment* fixes what the model sees and how it is built:

==========  ============  ==============  ==============================================
name        conditioning  model           construction
==========  ============  ==============  ==============================================
exp1        all           unet/tokens     every object's location (succeeds in the paper)
exp2        one           unet/tokens     one random object's location (fails)
exp3        all           unet/global     all locations summed into one FiLM vector (fails)
exp2l       one           patch k=2       Exp.2 data, patch-local denoiser (recovers)
exp3l       all           patch k=2       Exp.3 data and global encoder, made patch-local
exp2l-k8    one           patch k=8       control: patch covers the image, failure returns
exp2l-clean one           patch k=2       Exp.2L, background patch free of every object
exp1-colour all (colour)  unet/tokens     every object's colour, one token each (issue 13)
exp3-colour all (colour)  unet/global     the colour count vector as one FiLM vector
==========  ============  ==============  ==============================================

The two ``-colour`` experiments condition on the multiset of object colours (one-hot per
object, ``empirical.clevr.colour``), not on locations; they train on a colour view of the same
renders (docs/colour-clevr.md).

Exp.3 is our choice of "second failing construction" (the paper leaves it open): it is trained on
the same ``all`` data as Exp.1, so the only difference from the succeeding Exp.1 is the conditioner
encoder, which mixes all conditioners into one global signal seen by every pixel. Exp.3L keeps both
the data and the global encoder but applies it inside the patch-local denoiser, where the "global"
vector only sums the conditioners inside the patch: the intervention restores conditional locality.

A *preset* fixes sizes: ``tiny`` (16 px, tests and smoke runs, seconds), ``mini`` (32 px, sized so
the six models of one row train in a session on a 2-core CPU) and ``paper`` (64 px, for a GPU).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from localcomp.errors import UserError

from empirical.models.patch_local import PatchConfig
from empirical.models.precision import LEGACY_PRECISION, PRECISIONS
from empirical.models.unet import SigmaDistribution, UNetConfig

CONDITIONING_MODES = ("all", "one")


@dataclass(frozen=True)
class Experiment:
    name: str
    conditioning: str          # "all": every object's location; "one": one random object's
    model_type: str            # "unet" or "patch"
    cond_mode: str             # "tokens" (cross-attention) or "global" (summed FiLM vector)
    k: int | None = None       # patch half-width in cells (patch models)
    description: str = ""
    background: str = "no_conditioner"  # patch models: what the second training patch avoids
    conditioner: str = "location"       # "location" (u, v) or "colour" (one-hot, unet only)


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment("exp1", "all", "unet", "tokens", None, "all locations, set-conditioned UNet"),
    Experiment("exp2", "one", "unet", "tokens", None, "one random location, set-conditioned UNet"),
    Experiment("exp3", "all", "unet", "global", None, "all locations summed into one FiLM vector"),
    Experiment("exp2l", "one", "patch", "tokens", 2, "Exp.2 data, patch-local denoiser k=2"),
    Experiment("exp3l", "all", "patch", "global", 2, "Exp.3 data and encoder, patch-local k=2"),
    Experiment("exp2l-k8", "one", "patch", "tokens", 8, "control: patch-local k=8 (whole image)"),
    Experiment("exp2l-clean", "one", "patch", "tokens", 2,
               "Exp.2L whose second training patch holds no object at all (listed or not)",
               background="no_object"),
    Experiment("exp1-colour", "all", "unet", "tokens", None,
               "every object's colour, one token each, set-conditioned UNet", conditioner="colour"),
    Experiment("exp3-colour", "all", "unet", "global", None,
               "colour count vector as one global FiLM vector", conditioner="colour"),
]}


@dataclass(frozen=True)
class TrainingSchedule:
    """How a model is trained and sampled, shared by a :class:`Preset` and a :class:`TrainConfig`."""
    batch_size: int
    steps: int
    lr: float
    warmup_steps: int
    ema_halflife_images: float
    ema_rampup: float | None
    sigma: SigmaDistribution
    checkpoint_every: int
    sampler_steps: int


@dataclass(frozen=True)
class Preset:
    name: str
    resolution: int
    unet: UNetConfig            # image UNet (Exp.1/2/3); cond_mode set by the experiment
    patch_net: UNetConfig       # network inside the patch model; resolution set from the patch
    schedule: TrainingSchedule


PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("tiny", 16,
           UNetConfig(img_resolution=16, channels=16, channel_mult=(1, 2), num_blocks=1,
                      attn_resolutions=(8,), head_channels=16),
           UNetConfig(img_resolution=8, channels=16, channel_mult=(1, 2), num_blocks=1, head_channels=16),
           TrainingSchedule(batch_size=8, steps=20, lr=2e-3, warmup_steps=5, ema_halflife_images=100,
                            ema_rampup=0.05, sigma=SigmaDistribution(), checkpoint_every=10, sampler_steps=8)),
    Preset("mini", 32,
           UNetConfig(img_resolution=32, channels=32, channel_mult=(1, 2, 2), num_blocks=1,
                      attn_resolutions=(16, 8), head_channels=32),
           UNetConfig(img_resolution=16, channels=32, channel_mult=(1, 2), num_blocks=1, head_channels=32),
           # 3000 steps: ~30 min per UNet on one free core here (~0.6 s/step); sized so the
           # whole 1-3 row trains in one 3-hour session on 2 shared cores (docs/clevr-experiments.md)
           TrainingSchedule(batch_size=32, steps=3000, lr=1e-3, warmup_steps=200, ema_halflife_images=20_000,
                            ema_rampup=0.05, sigma=SigmaDistribution(), checkpoint_every=100, sampler_steps=18)),
    Preset("paper", 64,
           UNetConfig(img_resolution=64, channels=64, channel_mult=(1, 2, 2, 2), num_blocks=2,
                      attn_resolutions=(16, 8), head_channels=64),
           UNetConfig(img_resolution=32, channels=64, channel_mult=(1, 2, 2), num_blocks=2, head_channels=64),
           TrainingSchedule(batch_size=128, steps=100_000, lr=2e-4, warmup_steps=1000,
                            ema_halflife_images=500_000, ema_rampup=0.05, sigma=SigmaDistribution(),
                            checkpoint_every=2000, sampler_steps=32)),
]}
# `mini` at 48 px, for the framed data of issue 11 item 2 (docs/clevr-data.md): the same widths,
# depth and schedule; attention at the same two levels (24 and 12 px); the patch models keep
# their 16 x 16 grid (3 px cells)
PRESETS["mini48"] = replace(PRESETS["mini"], name="mini48", resolution=48,
                            unet=replace(PRESETS["mini"].unet, img_resolution=48, attn_resolutions=(24, 12)))


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (recorded in ``run.json`` and every checkpoint)."""
    experiment: str
    preset: str
    seed: int
    conditioning: str
    model_type: str
    unet: UNetConfig | None
    patch: PatchConfig | None
    schedule: TrainingSchedule
    # the network's forward: "fp32" or "bf16" autocast (empirical.models.precision). The default
    # is what a checkpoint pickled before this field existed reads back: those runs trained in fp32.
    precision: str = LEGACY_PRECISION

    @property
    def resolution(self) -> int:
        return self.unet.img_resolution if self.unet is not None else self.patch.img_resolution


def _choice(value: str, options, field: str) -> None:
    if value not in options:
        raise UserError(f"{field}: unknown value {value!r}; choose one of {', '.join(options)}")


def make_train_config(experiment: str, preset: str = "mini", seed: int = 0, steps: int | None = None,
                      batch_size: int | None = None, checkpoint_every: int | None = None,
                      lr: float | None = None, precision: str = LEGACY_PRECISION,
                      k: int | None = None) -> TrainConfig:
    """Resolve an experiment name and a preset (plus overrides) into a :class:`TrainConfig`.

    ``k`` overrides a patch experiment's patch half-width (the dose-response over k); refused for
    a UNet experiment, which has no patch."""
    _choice(experiment, EXPERIMENTS, "--experiment")
    _choice(preset, PRESETS, "--preset")
    _choice(precision, PRECISIONS, "--precision")
    for name, value in (("--steps", steps), ("--batch-size", batch_size),
                        ("--checkpoint-every", checkpoint_every)):
        if value is not None and value < 1:
            raise UserError(f"{name}: must be >= 1, got {value}")
    if lr is not None and not lr > 0:
        raise UserError(f"--lr: must be > 0, got {lr}")
    exp, pre = EXPERIMENTS[experiment], PRESETS[preset]
    if k is not None:
        if exp.model_type != "patch":
            raise UserError(f"--k: {experiment} is a UNet experiment (no patch); --k applies to the patch "
                            f"experiments ({', '.join(n for n, e in EXPERIMENTS.items() if e.model_type == 'patch')})")
        if k < 0:
            raise UserError(f"--k: must be >= 0, got {k}")
    unet = patch = None
    if exp.model_type == "unet":
        unet = replace(pre.unet, cond_mode=exp.cond_mode, cond_input=exp.conditioner)
    else:
        patch = PatchConfig(img_resolution=pre.resolution, k=exp.k if k is None else k, background=exp.background,
                            net=replace(pre.patch_net, cond_mode=exp.cond_mode))
    schedule = replace(pre.schedule, batch_size=batch_size or pre.schedule.batch_size,
                       steps=steps or pre.schedule.steps, lr=lr or pre.schedule.lr,
                       checkpoint_every=checkpoint_every or pre.schedule.checkpoint_every)
    return TrainConfig(experiment=experiment, preset=preset, seed=seed, conditioning=exp.conditioning,
                       model_type=exp.model_type, unet=unet, patch=patch, schedule=schedule,
                       precision=precision)


def build_model(config: TrainConfig):
    """The denoiser ``D(x, sigma, cond, mask)`` with a ``training_loss`` method."""
    from empirical.models.patch_local import PatchLocalDenoiser
    from empirical.models.unet import EDMDenoiser
    if config.model_type == "unet":
        return EDMDenoiser(config.unet, config.schedule.sigma.sigma_data)
    return PatchLocalDenoiser(config.patch, config.schedule.sigma.sigma_data)
