"""The executor a perf plan asks for: how the training step's pieces run, never what they compute.

It overrides the plain combogan.training.step.Executor where the plan says so: the two directions
(and the two critics) on two CPU threads (combogan.accel.overlap), bf16 autocast, and under
torchrun the gradient average across ranks before each update and agreement on skipping.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TypeVar

import torch

from ..training.distributed import Dist
from ..training.step import Executor
from .overlap import Overlap
from .plan import PerfPlan

T = TypeVar("T")
U = TypeVar("U")


class PlannedExecutor(Executor):
    def __init__(self, autocast_dtype: torch.dtype | None = None, overlap: Overlap | None = None, dist: Dist | None = None):
        self.autocast_dtype, self.overlap, self.dist = autocast_dtype, overlap, dist

    @classmethod
    def for_plan(cls, p: PerfPlan, dist: Dist | None = None) -> PlannedExecutor:
        return cls(torch.bfloat16 if p.precision == "bf16" else None, Overlap() if p.overlap else None, dist)

    def both(self, first: Callable[[], T], second: Callable[[], U]) -> tuple[T, U]:
        return self.overlap(first, second) if self.overlap is not None else super().both(first, second)

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        # Autocast's cast cache must be off while a CUDA graph is being captured (torch.cuda.graphs),
        # and while the two halves run at once: with it, which uses of a weight share one bf16 cast,
        # and so sum their gradients in bf16, depended on the threads' timing (runs did not repeat).
        capturing = device.type == "cuda" and torch.cuda.is_current_stream_capturing()
        return torch.autocast(device.type, dtype=self.autocast_dtype, cache_enabled=not capturing and self.overlap is None)

    def update(self, opts: list[torch.optim.Optimizer]) -> None:
        """Average over ranks (torchrun), then step: only the given optimizers' parameters move."""
        if self.dist is not None:
            self.dist.average_grads([p for opt in opts for group in opt.param_groups for p in group["params"]])
        super().update(opts)

    def finite(self, loss: torch.Tensor) -> bool:
        ok = super().finite(loss)
        # Every rank must take the same branch, or the next all-reduce would wait forever.
        return self.dist.all_true(ok, loss.device) if self.dist is not None else ok

    def close(self) -> None:
        if self.overlap is not None:
            self.overlap.close()
