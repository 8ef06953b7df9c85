"""The training step as a perf plan runs it: the paper's Step with the plan's executor, or, with
perf.cuda_graphs, that Step captured per ordered pair and replayed (combogan.accel.graphs)."""

from __future__ import annotations

import torch

from ..config import LossConfig
from ..model.combogan import ComboGAN
from ..training.distributed import Dist
from ..training.state import TrainState
from ..training.step import Step
from .executor import PlannedExecutor
from .graphs import GraphedStep
from .plan import PerfPlan, prepare


class Stepper:
    """stepper(pair, real_a, real_b) -> losses by name. Building one prepares the networks and
    optimizers for the plan (memory format, compilation, Adam kernels); close() ends the
    overlap threads."""

    def __init__(self, p: PerfPlan, model: ComboGAN, state: TrainState, loss: LossConfig, dist: Dist | None = None):
        prepare(p, model, state)
        self.plan = p
        self.executor = PlannedExecutor.for_plan(p, dist)
        self.step = Step(model, state, loss, self.executor)
        self.graphed = GraphedStep(self.step) if p.cuda_graphs else None

    @property
    def memory_format(self) -> torch.memory_format:
        return self.plan.memory_format

    def describe(self) -> str:
        return self.plan.describe()

    def __call__(self, pair: tuple[str, str], real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        return (self.graphed or self.step)(pair, real_a, real_b)

    def close(self) -> None:
        self.executor.close()
