"""Training throughput (images/s) of the CLEVR denoisers in fp32 and bf16, against a diffusers ``UNet2DModel``.

Same batch, same process, same loss (EDM, one optimizer step per iteration) for every model:

* the set-conditioned UNet (Exp.1/2, ``tokens``) and its global-vector variant (Exp.3),
* the patch-local denoiser at k = 2 (Exp.2L) and k = 8 (control), trained on two patches per image,
* ``diffusers.UNet2DModel`` (unconditional, similar parameter count), if diffusers is installed.

Precision (``--precisions fp32,bf16``, ``empirical.models.precision``): every model is timed in
each precision side by side in one process, interleaved (one warm-up step per precision, then
``--rounds`` rounds, each ``--iters`` steps per precision), so a change of machine load hits both;
``bf16_speedup`` is ``seconds_per_step[fp32] / seconds_per_step[bf16]`` (> 1: bf16 faster).
``--curve-steps N`` (0: off) also trains each of ``--curve-models`` for N steps of the ``--curve-preset``
with the real training loop in every precision (same seed, same data) and records both loss
curves (``train.json`` history) and their largest relative difference per checkpoint interval.

Usage::

    python benchmarks/bench_training.py --preset mini --batch-size 8 --iters 1 --rounds 2 --threads 2 \
        --curve-steps 30 --curve-models exp1,exp2l --out benchmarks/results/training.json

Writes JSON (machine; per model and precision: parameters, seconds per step, images/s, step
times; the bf16 speedup; the loss curves) and ``training.run.json``. Timings on a shared CPU are
noisy: the median of the timed steps is reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from empirical.training.experiments import PRESETS, build_model, make_train_config
from empirical.clevr.synthetic import BlobDataset
from empirical.models.precision import PRECISIONS, autocast, bf16_supported
from empirical.training.train import collate_sets, train, training_device
from empirical.models.unet import SigmaDistribution
from localcomp.provenance import write_json_atomic, write_run_record


class DiffusersBaseline(torch.nn.Module):
    """``UNet2DModel`` with EDM preconditioning and loss, ignoring the conditioners."""

    def __init__(self, resolution: int, channels: int, mult: tuple[int, ...]):
        super().__init__()
        from diffusers import UNet2DModel
        widths = tuple(channels * m for m in mult)
        self.net = UNet2DModel(sample_size=resolution, in_channels=3, out_channels=3, layers_per_block=1,
                               block_out_channels=widths,
                               down_block_types=("DownBlock2D",) + ("AttnDownBlock2D",) * (len(mult) - 1),
                               up_block_types=("AttnUpBlock2D",) * (len(mult) - 1) + ("UpBlock2D",),
                               norm_num_groups=min(8, channels))

    def training_loss(self, images, cond, mask, generator, sigma_dist):
        from empirical.models import edm
        sigma = edm.sample_sigma(images.shape[0], sigma_dist.p_mean, sigma_dist.p_std, generator)
        c_skip, c_out, c_in, c_noise = (c[:, None, None, None] for c in edm.preconditioning(sigma))
        noisy = images + sigma[:, None, None, None] * torch.randn(images.shape, generator=generator)
        f = self.net(c_in * noisy, c_noise.flatten()).sample
        weight = edm.loss_weight(sigma)[:, None, None, None]
        return (weight * (c_skip * noisy + c_out * f - images) ** 2).mean()


def time_training(model, batch, iters: int, precision: str = "fp32", optimizer=None,
                  warmup: int = 1) -> list[float]:
    """Seconds of each of ``iters`` Adam steps (after ``warmup`` untimed steps), the forward and
    loss under ``precision``'s autocast, as in the training loop."""
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=1e-4)
    images, cond, mask = batch
    sigma_dist = SigmaDistribution()
    device = next(model.parameters()).device
    times = []
    for i in range(iters + warmup):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with autocast(device, precision):
            loss = model.training_loss(images, cond, mask, torch.Generator().manual_seed(i), sigma_dist)
        optimizer.zero_grad()
        loss.float().backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def time_precisions(model, batch, precisions, iters: int, rounds: int) -> dict[str, list[float]]:
    """Step times per precision, interleaved: one warm-up step in each, then ``rounds`` rounds of
    ``iters`` timed steps in each precision in turn (one optimizer for all)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = {p: [] for p in precisions}
    for p in precisions:
        time_training(model, batch, 0, p, optimizer)
    for _ in range(rounds):
        for p in precisions:
            times[p] += time_training(model, batch, iters, p, optimizer, warmup=0)
    return times


def loss_curves(models, preset: str, steps: int, precisions, batch_size: int | None = None) -> dict:
    """Per model: the ``train.json`` loss history of ``steps`` steps of ``preset`` in each precision
    (same seed, same blob data) and ``max_relative_difference``: the largest
    ``|mean_loss[p] / mean_loss[precisions[0]] - 1|`` over checkpoint intervals and precisions."""
    resolution = PRESETS[preset].resolution
    data = BlobDataset(size=256, resolution=resolution, min_objects=1, max_objects=3, seed=0)
    out = {}
    for name in models:
        curves, seconds = {}, {}
        for precision in precisions:
            config = make_train_config(name, preset, seed=0, steps=steps, batch_size=batch_size,
                                       checkpoint_every=max(1, steps // 6), precision=precision)
            with tempfile.TemporaryDirectory() as run:
                start = time.perf_counter()
                curves[precision] = train(config, data, run, progress=False)["history"]
                seconds[precision] = time.perf_counter() - start
        base = [h["mean_loss"] for h in curves[precisions[0]]]
        diffs = [abs(h["mean_loss"] / b - 1) for p in precisions[1:] for h, b in zip(curves[p], base)]
        out[name] = {"preset": preset, "steps": steps, "history": curves, "seconds": seconds,
                     "max_relative_difference": max(diffs, default=0.0)}
        shown = {p: " ".join(f"{h['mean_loss']:.4f}" for h in curves[p]) for p in precisions}
        print(f"loss curve {name:10s} " + "  ".join(f"{p}: {c}" for p, c in shown.items())
              + f"  max rel. diff {out[name]['max_relative_difference']:.4f}")
    return out


def machine_info(device: torch.device) -> dict:
    """What the timings depend on: CPU model and vector ISA, bf16 support, threads, load."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    info = {"device": str(device), "cpu": cpu, "cpu_count": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "bf16_supported": bf16_supported(device), "threads": torch.get_num_threads(),
            "load_average_at_start": list(os.getloadavg())}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mini", choices=list(PRESETS))
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--iters", type=int, default=2, help="timed steps per precision and round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the precisions")
    parser.add_argument("--precisions", default="fp32,bf16", help=f"comma-separated, of {', '.join(PRECISIONS)}")
    parser.add_argument("--models", default="exp1,exp3,exp2l,exp3l,exp2l-k8,diffusers",
                        help="exp2 and exp2l-clean are exp1's and exp2l's networks")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--curve-steps", type=int, default=0, help="loss-curve comparison steps (0: off)")
    parser.add_argument("--curve-preset", default="tiny", choices=list(PRESETS))
    parser.add_argument("--curve-models", default="exp1,exp3,exp2l,exp3l")
    parser.add_argument("--out", default="benchmarks/results/training.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = args.precisions.split(",")
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        parser.error(f"--precisions: unknown {', '.join(unknown)}")
    device = training_device()
    machine = machine_info(device)
    preset = PRESETS[args.preset]
    batch_size = args.batch_size or preset.schedule.batch_size
    data = BlobDataset(size=batch_size, resolution=preset.resolution, min_objects=1, max_objects=3)
    batch = tuple(t.to(device) for t in collate_sets([data[i] for i in range(batch_size)]))
    results = {}
    for name in args.models.split(","):
        torch.manual_seed(0)
        if name == "diffusers":
            try:
                model = DiffusersBaseline(preset.resolution, preset.unet.channels, preset.unet.channel_mult)
            except ImportError:
                print("diffusers not installed: skipped")
                continue
        else:
            model = build_model(make_train_config(name, args.preset, batch_size=batch_size))
        model = model.to(device)
        times = time_precisions(model, batch, precisions, args.iters, args.rounds)
        seconds = {p: statistics.median(t) for p, t in times.items()}
        results[name] = {"parameters": sum(p.numel() for p in model.parameters()),
                         "seconds_per_step": seconds,
                         "images_per_second": {p: batch_size / s for p, s in seconds.items()},
                         "step_times": times}
        if "fp32" in seconds and "bf16" in seconds:
            results[name]["bf16_speedup"] = seconds["fp32"] / seconds["bf16"]
        print(f"{name:10s} {results[name]['parameters']:>10,d} params  " + "  ".join(
            f"{p} {s:7.3f} s/step ({batch_size / s:7.1f} images/s)" for p, s in seconds.items())
            + (f"  bf16 speedup {results[name]['bf16_speedup']:.2f}x" if "bf16_speedup" in results[name] else ""),
            flush=True)
    curves = (loss_curves(args.curve_models.split(","), args.curve_preset, args.curve_steps, precisions)
              if args.curve_steps else {})
    machine["load_average_at_end"] = list(os.getloadavg())
    out = Path(args.out)
    write_json_atomic(out, {"preset": args.preset, "batch_size": batch_size, "threads": torch.get_num_threads(),
                            "precisions": precisions, "machine": machine, "results": results,
                            "loss_curves": curves})
    write_run_record(out.parent, vars(args), None, name=f"{out.stem}.run.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
