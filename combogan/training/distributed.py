"""Multi-process training under torchrun: one process per device, NCCL on CUDA, gloo on CPU.

Why not DistributedDataParallel around each module: a ComboGAN step touches a different pair of
domains every iteration, runs each discriminator in two phases (frozen for G, trained for D)
and, in add-domain, passes gradients through frozen modules. DDP's one-forward-one-backward
reducer and unused-parameter detection fit none of that. Instead, after each backward we
average exactly the gradients of the parameters that step updates (the two sampled domains'
trainable halves) in one flattened all-reduce. Every rank draws the same pair (a pure function
of seed and step), so all ranks reduce the same tensors in the same order and stay identical.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from ..errors import UserError


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def average_grads(self, params: list[torch.nn.Parameter]) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= self.world_size
        for g, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
            g.copy_(synced)

    def all_true(self, flag: bool, device: torch.device) -> bool:
        """True on every rank iff `flag` is True on every rank (so all ranks take the same branch)."""
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item() > 0)

    def any_true(self, flag: bool, device: torch.device) -> bool:
        return not self.all_true(not flag, device)

    def min_int(self, value: int, device: torch.device) -> int:
        """The smallest of every rank's `value`, on every rank."""
        t = torch.tensor([value], dtype=torch.int64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return int(t.item())

    def gather_to_main(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj` (picklable, on the CPU) as a list on rank 0; None on the others."""
        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def barrier(self) -> None:
        dist.barrier()


def from_env(device_name: str = "auto") -> Dist | None:
    """Join the torchrun process group if this process was started by torchrun, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        timeout = timedelta(seconds=float(os.environ.get("COMBOGAN_DIST_TIMEOUT", "600")))
        try:
            dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timeout)
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"could not join the torchrun process group: {str(exc).splitlines()[0]}") from None
    return Dist(rank, world, local)


def join(device_name: str = "auto") -> tuple[Dist | None, torch.device, int]:
    """(process group or None, this process's device, world size). Under torchrun each
    process takes its own GPU (cuda:LOCAL_RANK)."""
    from ..device import resolve_device

    d = from_env(device_name)
    if d is not None and device_name in ("auto", "cuda") and torch.cuda.is_available():
        device_name = f"cuda:{d.local_rank}"
    return d, resolve_device(device_name), d.world_size if d else 1
