"""The learning-rate schedule: a pure function of the iteration, so resume needs only the step.

100 x N epochs (train.epochs_per_domain), constant lr, then the last train.decay_fraction of
them decaying linearly to 0 (the paper: the second half; the config holds the default).
One epoch = ceil(largest domain's image count / batch size) iterations. train.iters, when set
(`train --time` sets it), gives the length in iterations instead.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    iters_per_epoch: int
    total_epochs: int
    decay_fraction: float
    iters: int = 0  # > 0: the length in iterations, whatever total_epochs says

    @classmethod
    def for_domains(cls, image_counts: list[int], batch_size: int, epochs_per_domain: int, epochs: int, decay_fraction: float,
                    iters: int = 0) -> Schedule:
        """iters > 0 fixes the length; else epochs > 0 fixes it in epochs; else it is
        epochs_per_domain x number of domains epochs."""
        per_epoch = max(1, math.ceil(max(image_counts) / batch_size))
        total = epochs if epochs > 0 else epochs_per_domain * len(image_counts)
        return cls(per_epoch, total, decay_fraction, iters)

    def with_total(self, iters: int) -> Schedule:
        """The same schedule, `iters` long (its decay the same fraction of it)."""
        return dataclasses.replace(self, iters=iters)

    @property
    def total_iters(self) -> int:
        return self.iters if self.iters > 0 else self.iters_per_epoch * self.total_epochs

    @property
    def decay_iters(self) -> int:
        return round(self.total_iters * self.decay_fraction)

    @property
    def constant_iters(self) -> int:
        return self.total_iters - self.decay_iters

    def lr_factor(self, step: int) -> float:
        """Multiplier for the base lr used at iteration `step` (0-based)."""
        if step < self.constant_iters:
            return 1.0
        if step >= self.total_iters:
            return 0.0
        return (self.total_iters - step) / self.decay_iters

    def epoch(self, step: int) -> float:
        return step / self.iters_per_epoch
