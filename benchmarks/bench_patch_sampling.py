"""Inference speed of the patch-local denoiser: one denoiser call on a batch of images, by chunk size
and precision, side by side in one process; and the attention kernel on strided vs contiguous inputs.

Sampling a patch model is the cost that decides how much of Table 1 fits on a CPU (results/clevr/
PLAN.md): at 48 px, k = 2, one image is 256 patches of 16 x 16 through the patch UNet (about 34 GFLOP
per image, 28x the image UNet), and one Kmax is ~14,500 image-evaluations. Every configuration is
timed in interleaved rounds (so a change of machine load hits all of them); the median per round
is reported, as seconds per call on ``--batch`` images and as GFLOP/s (FLOPs counted once by
``torch.utils.flop_counter``). ``speedup_vs_reference`` divides the reference configuration's time
(``--reference``, the old default: chunks of 4096, fp32) by each one's.

The attention part times ``scaled_dot_product_attention`` at the patch UNet's self-attention shape
(``[patches, heads, 64 tokens, 32]``) on the strided view the block used to pass and on a
contiguous copy (what ``AttentionBlock`` passes now).

Usage::

    python benchmarks/bench_patch_sampling.py --preset mini48 --batch 8 --chunks 64,256,1024,4096 \
        --rounds 3 --threads 1 --out benchmarks/results/patch_sampling.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from empirical.models.precision import autocast, bf16_supported
from empirical.training.experiments import build_model, make_train_config
from localcomp.provenance import write_json_atomic, write_run_record


def denoiser_inputs(batch: int, resolution: int, conditioners: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 3, resolution, resolution, generator=g), torch.full((batch,), 1.0),
            torch.rand(batch, conditioners, 2, generator=g) * 2 - 1,
            torch.ones(batch, conditioners, dtype=torch.bool))


def time_call(fn, precision: str) -> float:
    with torch.no_grad(), autocast("cpu", precision):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="mini48")
    parser.add_argument("--experiment", default="exp2l")
    parser.add_argument("--batch", type=int, default=8, help="images per denoiser call")
    parser.add_argument("--chunks", default="64,256,1024,4096")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--reference", default="4096:fp32", help="CHUNK:PRECISION the speedups divide")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/patch_sampling.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    precisions = [p for p in args.precisions.split(",") if p == "fp32" or bf16_supported("cpu")]
    chunks = [int(c) for c in args.chunks.split(",")]

    model = build_model(make_train_config(args.experiment, args.preset)).eval()
    inputs = denoiser_inputs(args.batch, model.config.img_resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*(t[:1] for t in inputs))
    flops_per_image = counter.get_total_flops()

    configs = [(c, p) for c in chunks for p in precisions]
    times: dict[tuple, list[float]] = {cfg: [] for cfg in configs}
    for chunk, precision in configs:  # warm-up: oneDNN builds its kernels per shape and dtype
        model.config = replace(model.config, chunk_size=chunk)
        time_call(lambda: model(*(t[:2] for t in inputs)), precision)
    for _ in range(args.rounds):
        for chunk, precision in configs:
            model.config = replace(model.config, chunk_size=chunk)
            times[(chunk, precision)].append(time_call(lambda: model(*inputs), precision))
            print(f"chunk {chunk:5d} {precision}: {times[(chunk, precision)][-1]:.2f} s", flush=True)
    ref_chunk, ref_precision = args.reference.split(":")
    reference = statistics.median(times[(int(ref_chunk), ref_precision)]) if (
        int(ref_chunk), ref_precision) in times else None
    rows = []
    for (chunk, precision), seconds in times.items():
        median = statistics.median(seconds)
        rows.append({"chunk_size": chunk, "precision": precision, "seconds_per_call": median,
                     "seconds": seconds, "images_per_call": args.batch,
                     "gflops_per_second": flops_per_image * args.batch / median / 1e9,
                     "speedup_vs_reference": None if reference is None else reference / median})

    # attention kernel: strided view (as the block passed it before) vs contiguous copy
    patches, heads, tokens, head_dim = 256, 2, 64, 32
    qkv = torch.randn(patches, 3 * heads * head_dim, tokens).transpose(1, 2)  # [N, T, 3C], strided

    def split(t):
        return t.reshape(patches, tokens, heads, head_dim).transpose(1, 2)

    def attention(contiguous: bool):
        source = qkv.contiguous() if contiguous else qkv
        q, k, v = source.chunk(3, dim=2)
        return F.scaled_dot_product_attention(split(q), split(k), split(v))

    attention_times = {"strided": [], "contiguous": []}
    for name in attention_times:
        time_call(lambda: attention(name == "contiguous"), "fp32")
    for _ in range(args.rounds):
        for name in attention_times:
            attention_times[name].append(time_call(lambda: [attention(name == "contiguous") for _ in range(10)],
                                                   "fp32") / 10)
    attention_record = {name: statistics.median(t) for name, t in attention_times.items()}
    attention_record["speedup_contiguous"] = attention_record["strided"] / attention_record["contiguous"]
    attention_record["shape"] = [patches, heads, tokens, head_dim]

    report = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "threads": args.threads, "bf16_supported": bf16_supported("cpu")},
              "preset": args.preset, "experiment": args.experiment,
              "patch": {"img_resolution": model.config.img_resolution, "k": model.config.k,
                        "patch": model.config.patch, "net_resolution": model.config.net_resolution},
              "gflop_per_image": flops_per_image / 1e9, "reference": args.reference,
              "denoiser_calls": rows, "attention_fp32": attention_record}
    write_json_atomic(args.out, report)
    write_run_record(str(args.out).rsplit("/", 1)[0] if "/" in str(args.out) else ".", vars(args), None,
                     name="patch_sampling.run.json")
    for row in sorted(rows, key=lambda r: r["seconds_per_call"]):
        print(f"chunk {row['chunk_size']:5d} {row['precision']}: {row['seconds_per_call']:.2f} s per "
              f"{args.batch} images, {row['gflops_per_second']:.0f} GFLOP/s, "
              f"x{row['speedup_vs_reference']:.2f} vs {args.reference}")
    print(f"attention (fp32): strided {attention_record['strided'] * 1e3:.1f} ms, contiguous "
          f"{attention_record['contiguous'] * 1e3:.1f} ms, x{attention_record['speedup_contiguous']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
