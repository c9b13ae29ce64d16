"""torchrun support: process-group set-up from the environment, DDP wrapping, SyncBatchNorm, reductions."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device_kind: str) -> DistContext:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); NCCL on CUDA, gloo on the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    ctx = DistContext(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    log.debug("rank %d of %d joined", ctx.rank, ctx.world_size)
    return ctx


def wrap_model(model: torch.nn.Module, ctx: DistContext, device: torch.device, sync_bn: bool):
    """SyncBatchNorm (CUDA only: PyTorch implements it for GPU tensors) and DistributedDataParallel."""
    if not ctx.enabled:
        return model
    if sync_bn and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index if device.index is not None else ctx.local_rank] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_reduce_array(array: np.ndarray, ctx: DistContext) -> np.ndarray:
    """Sum a numpy array (a confusion matrix) over ranks."""
    if not ctx.enabled:
        return array
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().numpy()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    """Destroy the process group (under ``torchrun``); nothing to do in a single process."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
