"""A diffusers text-to-image pipeline on disk as an EDM-form latent denoiser ``D(x; sigma, prompt)``.

Loading is local only (``local_files_only=True``): the folder must be what
``pipeline.save_pretrained(DIR)`` writes (``model_index.json`` and one sub-folder per
component). :func:`check_model_folder` says which part is missing before anything is loaded.

**The sigma <-> timestep mapping** (docs/t2i-locality.md). Stable Diffusion's UNets are trained
in discrete-time VP form ``z_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``, ``t = 0..T-1``. Dividing
by ``sqrt(abar_t)`` gives the VE/EDM form ``x = x0 + sigma eps`` with
``sigma(t) = sqrt((1 - abar_t) / abar_t)``, the table diffusers' Euler schedulers use. For a
``sigma`` on our grid the UNet is called at the fractional timestep ``t(sigma)`` obtained by
linear interpolation of ``log sigma(t)`` over ``t`` (k-diffusion's ``sigma_to_t``; the UNet's
sinusoidal timestep embedding takes real ``t``), on the input ``c_in x`` with
``c_in = 1 / sqrt(sigma^2 + 1)`` (``= sqrt(abar_t)``: back to the VP scale, as
``EulerDiscreteScheduler.scale_model_input`` does). Its output ``F`` becomes the denoiser
``D(x) = x - sigma F`` (``epsilon`` prediction), ``D(x) = x / (sigma^2 + 1) - sigma F / sqrt(sigma^2 + 1)``
(``v_prediction``) or ``D(x) = F`` (``sample``). Then ``D(x) = x + sigma^2 s(x)`` (Tweedie)
with ``s`` the score of the latents' noised distribution, as everywhere in this project.

**Prompts.** A prompt is encoded by the pipeline's own ``encode_prompt`` (no classifier-free
guidance): SD gives the last hidden states of its CLIP text encoder; SDXL the concatenated
penultimate hidden states of both encoders plus the pooled projection of the second, with the
micro-conditioning ``time_ids = (H, W, 0, 0, H, W)`` (original size = target size = the image
size of the latent grid, no crop).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from localcomp.errors import UserError

# pipeline class -> the component folders it needs (the VAE is not needed: we work in latents)
PIPELINES = {
    "StableDiffusionPipeline": ("unet", "scheduler", "text_encoder", "tokenizer"),
    "StableDiffusionXLPipeline": ("unet", "scheduler", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"),
}
_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
            "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.safetensors.index.json",
            "diffusion_pytorch_model.fp16.safetensors.index.json")


def check_model_folder(folder: str | Path) -> str:
    """The pipeline class named in ``folder/model_index.json``; a UserError naming the folder
    and the missing part when the folder, its index, a needed component or the UNet weights
    are missing, or the class is not supported."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--model: no such folder: {folder}")
    index = folder / "model_index.json"
    if not index.is_file():
        raise UserError(f"--model: {folder} has no model_index.json (not a diffusers pipeline folder; "
                        f"write one with pipeline.save_pretrained(DIR))")
    try:
        class_name = json.loads(index.read_text()).get("_class_name")
    except (json.JSONDecodeError, AttributeError) as error:
        raise UserError(f"--model: {index} is not a valid model index: {error}") from None
    if class_name not in PIPELINES:
        raise UserError(f"--model: {index} names pipeline {class_name!r}; supported: {', '.join(PIPELINES)}")
    for part in PIPELINES[class_name]:
        if not (folder / part).is_dir():
            raise UserError(f"--model: {folder} is incomplete: no {part}/ (a {class_name} needs "
                            f"{', '.join(p + '/' for p in PIPELINES[class_name])})")
    unet = folder / "unet"
    if not (unet / "config.json").is_file():
        raise UserError(f"--model: {folder} is incomplete: no unet/config.json")
    if not any((unet / name).is_file() for name in _WEIGHTS):
        raise UserError(f"--model: {folder} is incomplete: no UNet weights in unet/ (expected one of "
                        f"{', '.join(_WEIGHTS[:2])})")
    return class_name


def weights_variant(folder: str | Path) -> str | None:
    """``"fp16"`` when ``unet/`` holds only the fp16 variant of its weights (hub snapshots may),
    else None: the ``variant`` to pass to ``from_pretrained``."""
    unet = Path(folder) / "unet"
    plain = any((unet / name).is_file() for name in _WEIGHTS if ".fp16." not in name)
    return None if plain or not any((unet / name).is_file() for name in _WEIGHTS) else "fp16"


def sigma_table(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """``sigma(t) = sqrt((1 - abar_t) / abar_t)`` for ``t = 0..T-1`` (float64, increasing)."""
    abar = alphas_cumprod.double()
    return ((1 - abar) / abar).sqrt()


def sigma_to_timestep(sigma: float, table: torch.Tensor) -> float:
    """Fractional ``t`` with ``log sigma(t) = log sigma`` by linear interpolation of ``log sigma(t)``
    between neighbouring integers; a ValueError outside ``[table[0], table[-1]]``."""
    low, high = float(table[0]), float(table[-1])
    if not low <= sigma <= high:
        raise ValueError(f"sigma {sigma:g} outside the scheduler's range [{low:.4g}, {high:.4g}]")
    log_table = table.log()
    i = int(torch.searchsorted(log_table, torch.tensor(math.log(sigma), dtype=torch.float64)).clamp(1, len(table) - 1))
    lo, hi = log_table[i - 1], log_table[i]
    frac = float((math.log(sigma) - lo) / (hi - lo)) if hi > lo else 0.0
    return (i - 1) + min(max(frac, 0.0), 1.0)


def denoiser_from_prediction(x: torch.Tensor, sigma: float, prediction: torch.Tensor, kind: str) -> torch.Tensor:
    """``D(x)`` from the UNet output ``prediction`` of type ``kind`` (module docstring)."""
    if kind == "epsilon":
        return x - sigma * prediction
    if kind == "v_prediction":
        return x / (sigma ** 2 + 1) - sigma / math.sqrt(sigma ** 2 + 1) * prediction
    if kind == "sample":
        return prediction
    raise ValueError(f"unsupported prediction_type {kind!r}")


@dataclass
class TextCondition:
    """One encoded prompt: ``embeddings [1, T, D]`` and, for SDXL, ``added`` (``text_embeds``,
    ``time_ids``) for the UNet's ``added_cond_kwargs``."""
    embeddings: torch.Tensor
    added: dict | None = None


class DiffusersDenoiser:
    """``D(x [1,4,H,W], sigma: float, TextCondition) -> [1,4,H,W]`` (float32) over a loaded
    pipeline's UNet; ``encode(prompt) -> TextCondition``; ``module`` (the UNet, for hooks);
    ``latent_shape`` (C, H, W); ``sigma_range``; ``timestep(sigma)``; ``describe()`` (what was loaded, for the report)."""

    def __init__(self, pipeline, class_name: str, latent_size: tuple[int, int], device, dtype):
        self.pipeline = pipeline
        self.class_name = class_name
        self.module = pipeline.unet
        self.latent_size = latent_size
        self.device = torch.device(device)
        self.dtype = dtype
        self.prediction_type = pipeline.scheduler.config.get("prediction_type", "epsilon")
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise UserError(f"--model: scheduler prediction_type {self.prediction_type!r} is not supported "
                            f"(epsilon, v_prediction, sample)")
        self.table = sigma_table(pipeline.scheduler.alphas_cumprod)
        self.sigma_range = (float(self.table[0]), float(self.table[-1]))
        self.vae_scale = 2 ** (len(pipeline.vae.config.block_out_channels) - 1) if getattr(pipeline, "vae", None) else 8
        self.latent_shape = (pipeline.unet.config.in_channels, *latent_size)

    def encode(self, prompt: str) -> TextCondition:
        with torch.no_grad():
            if self.class_name == "StableDiffusionXLPipeline":
                embeds, _, pooled, _ = self.pipeline.encode_prompt(
                    prompt, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=False)
                h, w = (s * self.vae_scale for s in self.latent_size)
                time_ids = torch.tensor([[h, w, 0, 0, h, w]], dtype=self.dtype, device=self.device)
                return TextCondition(embeds.to(self.dtype), {"text_embeds": pooled.to(self.dtype), "time_ids": time_ids})
            embeds, _ = self.pipeline.encode_prompt(prompt, self.device, 1, False)
            return TextCondition(embeds.to(self.dtype))

    def timestep(self, sigma: float) -> float:
        return sigma_to_timestep(sigma, self.table)

    def __call__(self, x: torch.Tensor, sigma: float, cond: TextCondition) -> torch.Tensor:
        t = torch.tensor([self.timestep(sigma)], dtype=torch.float32, device=self.device)
        scaled = (x / math.sqrt(sigma ** 2 + 1)).to(self.dtype)
        out = self.module(scaled, t, encoder_hidden_states=cond.embeddings,
                          added_cond_kwargs=cond.added, return_dict=False)[0]
        return denoiser_from_prediction(x, sigma, out.float(), self.prediction_type)

    def describe(self) -> dict:
        config = self.module.config
        return {"pipeline": self.class_name, "prediction_type": self.prediction_type,
                "latent_size": list(self.latent_size), "latent_channels": config.in_channels,
                "sigma_range": list(self.sigma_range), "train_timesteps": len(self.table),
                "dtype": str(self.dtype).removeprefix("torch."), "device": str(self.device),
                "unet_parameters": sum(p.numel() for p in self.module.parameters())}


def load_denoiser(folder: str | Path, latent_size: tuple[int, int] | None, device: str = "cpu",
                  dtype: str = "float32") -> DiffusersDenoiser:
    """Check and load ``folder`` (local files only) as a :class:`DiffusersDenoiser`. ``latent_size``
    default: the UNet's ``sample_size``. A UserError when diffusers is not installed."""
    class_name = check_model_folder(folder)
    try:
        import diffusers
    except ImportError:
        raise UserError("t2i locality needs diffusers and transformers: pip install -e '.[t2i]'") from None
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    pipeline_class = getattr(diffusers, class_name)
    try:
        with warnings.catch_warnings():  # newer diffusers rename torch_dtype to dtype; 0.30 knows only torch_dtype
            warnings.filterwarnings("ignore", message=".*torch_dtype.*deprecated", category=FutureWarning)
            pipeline = pipeline_class.from_pretrained(str(folder), local_files_only=True, torch_dtype=torch_dtype,
                                                      variant=weights_variant(folder),
                                                      **({"safety_checker": None, "feature_extractor": None,
                                                          "requires_safety_checker": False}
                                                         if class_name == "StableDiffusionPipeline" else {}))
    except (OSError, ValueError, EnvironmentError) as error:
        raise UserError(f"--model: could not load {folder} as a {class_name}: {error}") from None
    pipeline = pipeline.to(device)
    pipeline.unet.eval().requires_grad_(False)
    size = latent_size or (pipeline.unet.config.sample_size,) * 2
    if isinstance(size, int):
        size = (size, size)
    return DiffusersDenoiser(pipeline, class_name, tuple(size), device, torch_dtype)
