"""Forward FLOPs of the SDXL and SD 1.5 UNets, counted on the meta device (no weights, no compute),
and the cost of ``localcomp t2i locality`` per prompt set that follows (README, docs/t2i-locality.md).

    python benchmarks/t2i_flops.py [--out results/bench/t2i_flops.json]

The UNet configurations are the published ones of ``stabilityai/stable-diffusion-xl-base-1.0``
and ``runwayml/stable-diffusion-v1-5`` (written out below: nothing is downloaded).
``torch.utils.flop_counter.FlopCounterMode`` counts matmuls, convolutions and attention (2 FLOPs
per multiply-add); normalisations and activations are not counted (a few per cent).
"""

from __future__ import annotations

import argparse
import json

import torch

SDXL_UNET = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20),
                 cross_attention_dim=2048, use_linear_projection=True, addition_embed_type="text_time",
                 addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)
SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8)


def forward_flops(config: dict, latent: int, tokens: int = 77, sdxl: bool = True) -> tuple[int, int]:
    """(forward FLOPs at a ``latent x latent`` input, parameter count), batch 1, on meta tensors."""
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
        x = torch.zeros(1, 4, latent, latent)
        context = torch.zeros(1, tokens, config["cross_attention_dim"])
        added = {"text_embeds": torch.zeros(1, 1280), "time_ids": torch.zeros(1, 6)} if sdxl else None
        counter = FlopCounterMode(display=False)
        with counter:
            unet(x, torch.zeros(1), encoder_hidden_states=context, added_cond_kwargs=added)
    return counter.get_total_flops(), sum(p.numel() for p in unet.parameters())


def locality_cost(forward: float, parts: int, sigmas: int, seeds: int, noise_samples: int, positions: int,
                  channels: int = 4, sample_steps: int = 20, vjp_forwards: float = 3.0) -> dict:
    """UNet forward-equivalents of one prompt set (run.py): sampling ``2 sample_steps`` per seed;
    per sigma and noise draw ``2 parts + 2`` forwards (full, base, without i, only i); per sigma
    and seed one forward plus ``positions * channels`` VJPs at ``vjp_forwards`` forwards each."""
    sampling = seeds * 2 * sample_steps
    ablations = sigmas * seeds * noise_samples * (2 * parts + 2)
    jacobian = sigmas * seeds * (1 + positions * channels * vjp_forwards)
    total = sampling + ablations + jacobian
    return {"forward_equivalents": {"sampling": sampling, "ablations": ablations, "jacobian": jacobian,
                                    "total": total},
            "flops": total * forward}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args()
    sdxl, sdxl_params = forward_flops(SDXL_UNET, 128)
    sd15, sd15_params = forward_flops(SD15_UNET, 64, sdxl=False)
    # the default spec of docs/t2i-locality.md: 2 parts, 5 sigmas, 1 seed, 2 noise draws, 3 positions
    default = dict(parts=2, sigmas=5, seeds=1, noise_samples=2, positions=3)
    report = {"sdxl": {"params": sdxl_params, "forward_flops_128": sdxl,
                       "per_prompt_set": locality_cost(sdxl, **default)},
              "sd15": {"params": sd15_params, "forward_flops_64": sd15,
                       "per_prompt_set": locality_cost(sd15, **default)},
              "default_spec": default}
    print(json.dumps(report, indent=2))
    if args.out:
        from localcomp.provenance import write_json_atomic
        write_json_atomic(args.out, report)


if __name__ == "__main__":
    main()
