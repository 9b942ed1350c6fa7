"""Numeric precision of a network's forward pass: ``fp32`` or ``bf16`` autocast (docs/clevr-experiments.md).

``bf16`` runs the network under ``torch.autocast(device_type, dtype=torch.bfloat16)``: matrix
products and convolutions compute in bfloat16; parameters, gradients, the optimizer state, the
EMA, the loss and every elementwise operation on float32 inputs (EDM preconditioning, the
sampler's state and arithmetic) stay float32. ``fp32`` runs everything in float32.

The default of the ``--precision`` flags (``None``) resolves to ``bf16`` where the hardware has
bfloat16 arithmetic (:func:`bf16_supported`: CUDA ``torch.cuda.is_bf16_supported()``; CPU with
AVX512-BF16 or AMX) and ``fp32`` elsewhere: on a CPU without them autocast emulates bf16 and is
slower than fp32 (2.5-15x slower on the AVX2 development machines, benchmarks/results/training.json).

Jacobians: ``torch.func.vjp`` of a network under autocast must also call its VJP function under the
same :func:`autocast` (the backward of ``scaled_dot_product_attention`` otherwise fails with a
dtype mismatch in torch 2.13), so ``clevr locality`` runs the whole measurement inside it; the
diagnostics' own arithmetic is elementwise and stays in its dtype.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from localcomp.errors import UserError

PRECISIONS = ("fp32", "bf16")
LEGACY_PRECISION = "fp32"  # runs, checkpoints and samples recorded before precision was a setting


def bf16_supported(device) -> bool:
    """Whether ``device`` has bfloat16 arithmetic (not emulation)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = torch.cpu
        return any(getattr(cpu, name, lambda: False)()
                   for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return False


def resolve_precision(requested: str | None, device, flag: str = "--precision") -> str:
    """``requested`` (``fp32``/``bf16``) checked, or for ``None`` the default of ``device``."""
    if requested is None:
        return "bf16" if bf16_supported(device) else "fp32"
    if requested not in PRECISIONS:
        raise UserError(f"{flag}: unknown value {requested!r}; choose one of {', '.join(PRECISIONS)}")
    return requested


def autocast(device, precision: str):
    """The context a network's forward runs in: ``torch.autocast`` to bfloat16 for ``bf16``, a
    no-op for ``fp32``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"unknown precision {precision!r}")
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


class PrecisionDenoiser(nn.Module):
    """``D(x, sigma, cond, mask)`` of ``model`` with its forward under :func:`autocast`; the output
    is returned in ``x``'s dtype, so the sampler and the diagnostics compute in their own dtype.
    Holds ``model`` as a submodule (``parameters()`` and the device they are on are ``model``'s)."""

    def __init__(self, model: nn.Module, precision: str):
        super().__init__()
        self.model = model
        self.precision = precision

    def forward(self, x, sigma, cond, mask):
        with autocast(x.device, self.precision):
            out = self.model(x, sigma, cond, mask)
        return out.to(x.dtype)


def with_precision(model, requested: str | None, flag: str = "--precision"):
    """``(denoiser, precision)`` for evaluating a loaded run: a network (``nn.Module``) wrapped in
    :class:`PrecisionDenoiser` at the resolved precision (unwrapped for ``fp32``); any other
    denoiser (the training-free local conditional machine, float64 inside) unchanged at ``fp32``,
    and ``bf16`` asked of it is a UserError."""
    if not isinstance(model, nn.Module):
        if requested == "bf16":
            raise UserError(f"{flag} bf16: this run has no network to autocast (a local conditional machine)")
        return model, "fp32"
    parameters = list(model.parameters())
    precision = resolve_precision(requested, parameters[0].device if parameters else "cpu", flag)
    return (model if precision == "fp32" else PrecisionDenoiser(model, precision)), precision
