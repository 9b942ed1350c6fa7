"""Training throughput (images/s) of the CLEVR denoisers against a diffusers ``UNet2DModel``.

Same batch, same process, same loss (EDM, one optimizer step per iteration) for every model:

* the set-conditioned UNet (Exp.1/2, ``tokens``) and its global-vector variant (Exp.3),
* the patch-local denoiser at k = 2 (Exp.2L) and k = 8 (control), trained on two patches per image,
* ``diffusers.UNet2DModel`` (unconditional, similar parameter count), if diffusers is installed.

Usage::

    python benchmarks/bench_training.py --preset mini --iters 5 --out results/bench/training-mini.json

Writes JSON (per model: parameters, seconds per step, images/s) and ``run.json``. Timings on a
shared CPU are noisy: the median of ``--iters`` timed steps after one warm-up step is reported.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from empirical.training.experiments import PRESETS, build_model, make_train_config
from empirical.clevr.synthetic import BlobDataset
from empirical.training.train import collate_sets
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


def time_training(model, batch, iters: int) -> list[float]:
    """Seconds of each of ``iters`` Adam steps (after one warm-up step)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    images, cond, mask = batch
    sigma_dist = SigmaDistribution()
    times = []
    for i in range(iters + 1):
        start = time.perf_counter()
        loss = model.training_loss(images, cond, mask, torch.Generator().manual_seed(i), sigma_dist)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i:
            times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mini", choices=list(PRESETS))
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--models", default="exp1,exp3,exp2l,exp2l-k8,diffusers")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--out", default="results/bench/training.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = PRESETS[args.preset]
    batch_size = args.batch_size or preset.schedule.batch_size
    data = BlobDataset(size=batch_size, resolution=preset.resolution, min_objects=1, max_objects=3)
    batch = collate_sets([data[i] for i in range(batch_size)])
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
        times = time_training(model, batch, args.iters)
        seconds = statistics.median(times)
        results[name] = {"parameters": sum(p.numel() for p in model.parameters()),
                         "seconds_per_step": seconds, "images_per_second": batch_size / seconds,
                         "step_times": times}
        print(f"{name:10s} {results[name]['parameters']:>10,d} params  {seconds:7.3f} s/step  "
              f"{batch_size / seconds:8.1f} images/s")
    out = Path(args.out)
    write_json_atomic(out, {"preset": args.preset, "batch_size": batch_size, "threads": torch.get_num_threads(),
                            "results": results})
    write_run_record(out.parent, vars(args), None, name=f"{out.stem}.run.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
