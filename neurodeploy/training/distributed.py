"""Data-parallel training helpers: process group from torchrun's environment, batch sharding,
reductions, rank-0 duties and mixed precision on CUDA.

Launch (one process per GPU; torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT)::

    torchrun --standalone --nproc_per_node=4 -m neurodeploy train --config recipes/cifar10_dvs.toml ...

:func:`init_from_env` joins the group (NCCL on CUDA, gloo on CPU) when WORLD_SIZE > 1 and
returns a :class:`DistContext`; a plain run gets the single-process context (rank 0 of 1).

Sharding. The training loop draws the *global* batch order from (seed, epoch) exactly as a
single process does, and rank r takes elements r, r + W, r + 2W, ... of every global batch
(:func:`shard`). This is what ``DistributedSampler`` does per epoch, done per batch so that W
processes take the same optimiser steps on the same global batches as one process: the
model is the same up to float reduction order, a resumed run needs only (seed, epoch), and
the tests can compare a 2-process run with a single one. Each rank's mean loss is scaled by
n_r * W / n (n_r its share of the n samples) before DDP averages the gradients, so uneven
last batches weigh every sample equally; a final global batch with fewer samples than
processes is skipped on every rank and counted (``dropped`` in the metrics).

BatchNorm. Under DDP each process normalises with its own share of the batch unless the
layers are SyncBatchNorm. ``sync_bn`` (default on) converts them on CUDA; torch's
SyncBatchNorm has no CPU implementation, so on CPU (gloo) the statistics stay per process
and a W-process run differs from a single one by that, the only difference (the tests use a
model without BatchNorm to check equality). Running statistics are broadcast from rank 0
before every evaluation and checkpoint, so all ranks evaluate and save the same model.

Mixed precision (``amp``: "off", "bf16", "fp16") applies on CUDA only: ``torch.autocast``
around forward and loss, and for fp16 a ``GradScaler`` (saved in the checkpoint).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

AMP_MODES = ("off", "bf16", "fp16")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: ``rank`` of ``world_size`` (``local_rank`` on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this process created the group (and destroys it at the end)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, metrics and the progress bar."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    if v is None:
        return default
    try:
        return int(v)
    except ValueError:
        raise ValueError(
            f"environment variable {name}={v!r} is not an integer (set by torchrun)"
        ) from None


def init_from_env(device: str = "auto") -> DistContext:
    """Join the process group described by torchrun's environment variables, if any."""
    world = _env_int("WORLD_SIZE", 1)
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world <= 1:
        return DistContext()
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside 0..WORLD_SIZE-1={world - 1}")
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    owns = False
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
        owns = True
    return DistContext(dist.get_rank(), dist.get_world_size(), local, owns)


def shutdown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def device_for(ctx: DistContext, device: str) -> torch.device:
    """``auto``: CUDA (this rank's GPU under torchrun) when present, else CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"device: unknown device {device!r}; use auto, cpu, cuda[:N], mps"
        ) from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0 or (dev.index is not None and dev.index >= n):
            raise ValueError(
                f"device {device!r}: {n} CUDA GPU(s) visible to torch here; use device "
                "'cpu', or 'auto' (CUDA when present)"
            )
    if device == "cuda" and ctx.enabled:
        return torch.device("cuda", ctx.local_rank)
    return torch.device(device)


def shard(indices: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's share of one global batch: elements rank, rank + W, ... (module docstring)."""
    return indices if not ctx.enabled else indices[ctx.rank :: ctx.world_size]


def all_reduce_sum(values: list[float], ctx: DistContext, device: torch.device) -> list[float]:
    """Sums over ranks (float64); the values themselves when single-process."""
    if not ctx.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def sync_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank."""
    if ctx.enabled:
        for b in model.buffers():
            dist.broadcast(b.data, src=0)


def wrap_model(
    model: nn.Module, ctx: DistContext, device: torch.device, sync_bn: bool
) -> nn.Module:
    """``model`` itself single-process; else DistributedDataParallel (SyncBatchNorm on CUDA)."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    if sync_bn and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None when mixed precision is off or the device is not CUDA."""
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
    if amp == "off" or device.type != "cuda":
        return None
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    return (
        torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    )


def grad_scaler(dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """A GradScaler for fp16 (bf16 and fp32 need none)."""
    return torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
