"""Data parallelism over processes started by ``torchrun``, without wrapping the model.

DDP's wrapper synchronises gradients through hooks on its own ``forward``; LEBM's losses
come from chains run on the plain modules, so instead every rank back-propagates its own
batch and the gradients are then averaged with one all-reduce per optimiser. The update
equals DDP's (the gradient of the loss averaged over all ranks' batches). Each rank has
its own chain random stream and its own slice of every global batch; scalars are
averaged across ranks; rank 0 alone writes the run folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist


class Distributed:
    """Rank / world size and the few collectives the Trainer needs (no-ops for one process)."""

    def __init__(self, rank: int = 0, world: int = 1) -> None:
        self.rank, self.world = rank, world

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise mean over ranks (NaN on any rank makes it NaN on all)."""
        if self.active:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
            values /= self.world
        return values

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if ``flag`` is true on any rank."""
        if not self.active:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Replace each ``p.grad`` by its mean over ranks (one flat all-reduce)."""
        if not self.active:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank."""
        if self.active:
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of the same-shaped tensor ``t``, in rank order."""
        if not self.active:
            return [t]
        out = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(out, t)
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def init_distributed(device: torch.device) -> tuple[Distributed, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(), device
    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank, world), device


def shutdown_distributed(synchronize: bool = False) -> None:
    """Leave the process group, if one was joined. A gloo process that exits without this
    can abort at interpreter shutdown (SIGABRT, "terminate called without an active
    exception"), since gloo's worker threads still hold work objects then. With
    ``synchronize`` (every rank is known to get here, e.g. after a successful command) the
    ranks first meet at a barrier, so none tears down while a peer still has work in flight
    (rank 0 writes its last plots after the final collective, while rank 1 is already
    leaving)."""
    if dist.is_available() and dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()
