"""Training loop: EDM loss, Adam, EMA, atomic checkpoints, exact resume, NaN guard, DDP.

``train(config, dataset, out_dir)`` works with any torch ``Dataset`` whose items are
``(image float32 [3, H, W] in [-1, 1], conditioners float32 [K, 2])`` (``empirical.clevr.dataset.ClevrDataset``,
or ``empirical.clevr.synthetic.BlobDataset`` in tests).

Determinism and exact resume: all randomness of step ``t`` (sigma, noise, patch choice, which
conditioner is kept in ``one`` mode, dropout) comes from generators seeded by ``(seed, t, rank)``,
and the data order is a permutation seeded by ``(seed, epoch)`` read at a saved cursor. A checkpoint
holds the model, EMA, optimizer, step, data-order state and (for completeness) the global
torch/numpy/python RNG states, so a run killed after a checkpoint and resumed produces parameters
bit-identical to an uninterrupted run (tested in ``tests/test_training.py``).

Precision: ``config.precision`` ``bf16`` runs the objective's forward (network and loss) under
bfloat16 autocast (``empirical.models.precision``); parameters, gradients, Adam's state, the EMA and
the loss (cast to float32 before the backward pass and the NaN guard) stay float32.

Distributed: under ``torchrun`` (``WORLD_SIZE > 1``) the process group uses the ``gloo`` backend and
the training objective is wrapped in ``DistributedDataParallel``; each rank takes its slice of the
global batch, gradients are averaged, rank 0 writes checkpoints.
"""

from __future__ import annotations

import copy
import io
import os
import random
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from localcomp.errors import UserError
from localcomp.provenance import write_bytes_atomic, write_json_atomic, write_run_record

from empirical.models import edm
from empirical.models.precision import LEGACY_PRECISION, autocast
from empirical.training.experiments import TrainConfig, build_model

CHECKPOINT = "checkpoint.pt"


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss or gradient; the message names the step."""


# -- data ------------------------------------------------------------------------------------------

def collate_sets(batch):
    """``[(image [3,H,W], cond [K_i,2])]`` -> ``(images [B,3,H,W], cond [B,Kmax,2], mask [B,Kmax])``.

    Uses ``empirical.clevr.dataset.collate_sets`` when the CLEVR data layer is installed.
    """
    try:
        from empirical.clevr.dataset import collate_sets as clevr_collate
    except ImportError:
        clevr_collate = None
    if clevr_collate is not None:
        return clevr_collate(batch)
    images = torch.stack([item[0] for item in batch])
    kmax = max((item[1].shape[0] for item in batch), default=0)
    cond = torch.zeros(len(batch), kmax, 2)
    mask = torch.zeros(len(batch), kmax, dtype=torch.bool)
    for i, (_, c) in enumerate(batch):
        cond[i, :c.shape[0]] = c
        mask[i, :c.shape[0]] = True
    return images, cond, mask


def select_conditioners(cond, mask, mode: str, generator):
    """``all``: unchanged. ``one``: keep one uniformly chosen real entry per image (none if empty).

    ``cond [B,K,2]``, ``mask [B,K]`` -> ``(cond [B,K',2], mask [B,K'])`` with ``K' = min(K, 1)`` for ``one``.
    """
    if mode == "all":
        return cond, mask
    if mode != "one":
        raise ValueError(f"unknown conditioning mode {mode!r}")
    b, k = mask.shape
    if k == 0:
        return cond, mask
    weights = torch.where(mask.any(1, keepdim=True), mask.float(), torch.ones_like(mask, dtype=torch.float))
    pick = torch.multinomial(weights.cpu(), 1, generator=generator)[:, 0].to(mask.device)
    rows = torch.arange(b, device=mask.device)
    return cond[rows, pick][:, None], mask[rows, pick][:, None]


def batch_indices(n: int, global_batch: int, seed: int, epoch: int, cursor: int):
    """Indices of the next global batch and the new ``(epoch, cursor)``.

    Epoch ``e`` reads ``permutation_{seed, e}(n)`` in order; an incomplete tail is dropped.
    """
    if cursor + global_batch > n:
        epoch, cursor = epoch + 1, 0
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return order[cursor:cursor + global_batch].tolist(), epoch, cursor + global_batch


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of all randomness of one training step on one rank."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


# -- distributed -----------------------------------------------------------------------------------

def training_device() -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def init_distributed() -> tuple[int, int]:
    """``(rank, world_size)``; under torchrun (WORLD_SIZE > 1) initialises a process group: gloo on
    CPU, nccl on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class _Objective(nn.Module):
    """Wraps ``model.training_loss`` as ``forward`` so DistributedDataParallel can hook it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images, cond, mask, generator, sigma_dist, objects=None):
        return self.model.training_loss(images, cond, mask, generator, sigma_dist, objects)


# -- checkpoints -----------------------------------------------------------------------------------

def save_checkpoint(path: Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(path, buffer.getvalue())


# Checkpoints pickle the run's config dataclasses by module path; runs trained before the
# layer was split into subpackages name the old flat modules.
LEGACY_MODULES = {"empirical.experiments": "empirical.training.experiments",
                  "empirical.unet": "empirical.models.unet",
                  "empirical.patch_local": "empirical.models.patch_local"}


class _LegacyPickle:
    """A ``pickle_module`` for ``torch.load`` that maps the pre-split module paths to the new ones."""
    import pickle as _pickle

    class Unpickler(_pickle.Unpickler):
        def find_class(self, module, name):
            return super().find_class(LEGACY_MODULES.get(module, module), name)

    load = _pickle.load
    __name__ = "pickle"


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_LegacyPickle)


def _rng_states() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _restore_rng(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])


def validate(config: TrainConfig, dataset, world: int = 1) -> None:
    """Raise :class:`UserError` for a config/dataset that cannot train (before writing anything)."""
    if config.schedule.batch_size % world:
        raise UserError(f"--batch-size: {config.schedule.batch_size} is not divisible by the {world} processes")
    if len(dataset) < config.schedule.batch_size:
        raise UserError(f"--data: {len(dataset)} images, fewer than one batch ({config.schedule.batch_size})")
    image, _ = dataset[0]
    if tuple(image.shape[-2:]) != (config.resolution, config.resolution):
        raise UserError(f"--data: images are {tuple(image.shape[-2:])}, preset {config.preset!r} "
                        f"expects {config.resolution}x{config.resolution}")


# -- the loop --------------------------------------------------------------------------------------

def train(config: TrainConfig, dataset, out_dir, progress: bool = True, stop_after: int | None = None,
          data_path: str | None = None, keep_steps: tuple[int, ...] = ()) -> dict:
    """Train (or resume) into ``out_dir``; returns a summary dict (also written as ``train.json``).

    Resumes from ``out_dir/checkpoint.pt`` when present (its config must equal ``config`` up to
    ``steps``; a difference is a UserError naming the differing fields). ``stop_after``: return
    after that many total steps as if killed (tests, time slices). ``train.json`` is rewritten at
    every checkpoint interval (``finished`` false until the last step), so a killed run keeps
    its loss curve up to its last checkpoint. ``train.json``'s ``wall_seconds`` is the training wall
    time of the steps ``wall_seconds_from_step`` .. ``step``, summed over sittings (the time between
    a run's last checkpoint and its kill is lost with those steps; a checkpoint from before the field
    counts from its step). ``keep_steps``: at each of these steps a checkpoint
    is also written to ``out_dir/steps/STEP/`` with a copy of ``run.json``, a run directory of the
    model at that part of the budget (``load_trained`` and ``clevr kmax --run`` read it).
    """
    from tqdm import tqdm

    rank, world = init_distributed()
    validate(config, dataset, world)
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT
    torch.manual_seed(config.seed)
    device = training_device()
    model = build_model(config).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.schedule.lr, betas=(0.9, 0.99), eps=1e-8)
    step, epoch, cursor, history = 0, 0, 0, []
    wall_seconds, wall_from = 0.0, 0
    last_saved = "none"
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        saved = state["config"]
        if replace(saved, schedule=replace(saved.schedule, steps=config.schedule.steps)) != config:
            fields = ", ".join(f"{key} ({old!r} in the checkpoint, {new!r} now)"
                               for key, old, new in config_differences(saved, config))
            raise UserError(f"--out: {ckpt_path} was written with a different config: {fields}; "
                            f"use a new --out or the checkpoint's settings")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        step, epoch, cursor = state["step"], state["data_order"]["epoch"], state["data_order"]["cursor"]
        history = state["history"]
        wall_seconds, wall_from = state.get("wall_seconds", 0.0), state.get("wall_seconds_from_step", step)
        _restore_rng(state["rng"])
        last_saved = f"step {step} in {ckpt_path}"
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        record_config = {"train": asdict(config), "data": data_path, "world_size": world, "resumed_from_step": step}
        write_run_record(out_dir, record_config, config.seed)
    objective = _Objective(model)
    if world > 1:
        objective = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None)
    local_batch = config.schedule.batch_size // world
    end = config.schedule.steps if stop_after is None else min(config.schedule.steps, stop_after)
    bar = tqdm(total=config.schedule.steps, initial=step, disable=not progress or rank != 0,
               desc=f"train {config.experiment}", unit="step")
    interval_losses = []
    parameters = sum(p.numel() for p in model.parameters())

    def summary() -> dict:
        return {"experiment": config.experiment, "preset": config.preset, "step": step,
                "steps": config.schedule.steps, "finished": step >= config.schedule.steps,
                "history": history, "parameters": parameters, "world_size": world, "rank": rank,
                "precision": config.precision, "wall_seconds": round(wall_seconds, 1),
                "wall_seconds_from_step": wall_from}

    sitting_start, sitting_base = time.perf_counter(), wall_seconds
    model.train()
    while step < end:
        seed = step_seed(config.seed, step, rank)
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        indices, epoch, cursor = batch_indices(len(dataset), config.schedule.batch_size, config.seed, epoch, cursor)
        local = indices[rank * local_batch:(rank + 1) * local_batch]
        images, cond, mask = (t.to(device) for t in collate_sets([dataset[i] for i in local]))
        objects = (cond, mask)  # every object, before `one` drops all but one conditioner
        cond, mask = select_conditioners(cond, mask, config.conditioning, generator)
        with autocast(device, config.precision):
            loss = objective(images, cond, mask, generator, config.schedule.sigma, objects)
        loss = loss.float()  # a no-op in fp32; the loss and its accumulation stay float32 under bf16
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
        check = torch.stack([loss.detach(), grad_norm.detach()])
        if world > 1:
            torch.distributed.all_reduce(check)
            check /= world
        if not torch.isfinite(check).all():
            what = "loss" if not torch.isfinite(check[0]) else "gradient norm"
            raise NonFiniteLossError(
                f"non-finite training {what} ({check.tolist()}) at step {step + 1} of "
                f"{config.experiment}; parameters were not updated. Last checkpoint: {last_saved}. "
                f"Lower the learning rate or check the data for NaN/inf values.")
        lr = config.schedule.lr * min(1.0, (step + 1) / max(config.schedule.warmup_steps, 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        step += 1
        decay = edm.ema_decay(step, config.schedule.batch_size, config.schedule.ema_halflife_images, config.schedule.ema_rampup)
        edm.ema_update(ema.parameters(), model.parameters(), decay)
        interval_losses.append(float(check[0]))
        bar.update(1)
        bar.set_postfix(loss=f"{interval_losses[-1]:.4f}")
        if step % config.schedule.checkpoint_every == 0 or step == config.schedule.steps or step in keep_steps:
            history.append({"step": step, "mean_loss": float(np.mean(interval_losses))})
            interval_losses = []
            wall_seconds = sitting_base + time.perf_counter() - sitting_start
            if rank == 0:
                save_checkpoint(ckpt_path, {
                    "config": config, "step": step, "model": model.state_dict(), "ema": ema.state_dict(),
                    "optimizer": optimizer.state_dict(), "rng": _rng_states(),
                    "data_order": {"epoch": epoch, "cursor": cursor}, "history": history,
                    "wall_seconds": wall_seconds, "wall_seconds_from_step": wall_from})
                write_json_atomic(out_dir / "train.json", summary())  # the loss curve so far
                if step in keep_steps:
                    keep_copy(out_dir, step)
            last_saved = f"step {step} in {ckpt_path}"
            if world > 1:
                torch.distributed.barrier()
    bar.close()
    result = summary()
    if rank == 0:
        write_json_atomic(out_dir / "train.json", result)
    return result


def config_differences(saved, config, prefix: str = "") -> list[tuple[str, object, object]]:
    """``[(dotted field, saved value, new value)]`` where two (nested) config dataclasses differ,
    ``schedule.steps`` excepted (a resumed run may train longer)."""
    old = asdict(saved) if hasattr(saved, "__dataclass_fields__") else saved
    new = asdict(config) if hasattr(config, "__dataclass_fields__") else config
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, name + ".")
        elif a != b and name != "schedule.steps":
            out.append((name, a, b))
    return out


def keep_copy(out_dir: Path, step: int) -> Path:
    """Copy ``out_dir``'s checkpoint, ``run.json`` and ``train.json`` into ``out_dir/steps/STEP/``
    (each file written atomically): a run directory of the model at ``step``."""
    kept = out_dir / "steps" / str(step)
    kept.mkdir(parents=True, exist_ok=True)
    for name in (CHECKPOINT, "run.json", "train.json"):
        write_bytes_atomic(kept / name, (out_dir / name).read_bytes())
    return kept


def checkpoint_precision(out_dir) -> str | None:
    """The precision of the run whose checkpoint is in ``out_dir`` (``fp32`` for a checkpoint written
    before precision was recorded); None without a checkpoint. ``clevr train`` resumes in it by default."""
    path = Path(out_dir) / CHECKPOINT
    if not path.exists():
        return None
    return getattr(load_checkpoint(path)["config"], "precision", LEGACY_PRECISION)


def has_model(run_dir) -> bool:
    """A trained checkpoint or a local conditional machine (``clevr machine``) is in ``run_dir``."""
    from empirical.models.machine import MACHINE_FILE
    return (Path(run_dir) / CHECKPOINT).exists() or (Path(run_dir) / MACHINE_FILE).exists()


def load_trained(run_dir, use_ema: bool = True):
    """``(model in eval mode, TrainConfig, step)`` from ``run_dir/checkpoint.pt``; for a machine
    run (``machine.json``, no training) ``(machine, MachineConfig, 0)``."""
    from empirical.models.machine import MACHINE_FILE, load_machine_run
    if (Path(run_dir) / MACHINE_FILE).exists() and not (Path(run_dir) / CHECKPOINT).exists():
        machine, config = load_machine_run(run_dir)
        return machine, config, 0
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise UserError(f"--run: no {CHECKPOINT} in {run_dir}")
    state = load_checkpoint(path)
    model = build_model(state["config"])
    model.load_state_dict(state["ema" if use_ema else "model"])
    return model.to(training_device()).eval().requires_grad_(False), state["config"], state["step"]
