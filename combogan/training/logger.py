"""Consumes the dicts a training step returns: running means for the progress bar and
TensorBoard scalars, plus image grids (made by combogan.data.grid). Loss tensors stay on the device until a log point,
so logging costs one sync per interval rather than one per loss per step."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import torch


class MetricLogger:
    def __init__(self, tb_dir: Path | None):
        self.writer = None
        if tb_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(tb_dir))
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = defaultdict(int)
        self.last: dict[str, float] = {}

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        for k, v in metrics.items():
            self._sums[k] = self._sums[k] + v if k in self._sums else v.clone()
            self._counts[k] += 1

    def flush(self, step: int, extra: dict[str, float] | None = None) -> dict[str, float]:
        """Average what was added since the last flush and write it at `step`."""
        means = {k: float(v) / self._counts[k] for k, v in self._sums.items()}
        means.update(extra or {})
        self._sums.clear()
        self._counts.clear()
        if self.writer is not None:
            for k, v in means.items():
                if math.isfinite(v):
                    self.writer.add_scalar(k, v, step)
        self.last = means
        return means

    def summary(self) -> dict[str, float]:
        """Mean per loss kind over domains (G_gan, cycle, D...), for the progress bar."""
        kinds: dict[str, list[float]] = defaultdict(list)
        for k, v in self.last.items():
            if "/" in k and not k.startswith(("lr", "perf", "train")):
                kinds[k.split("/")[0]].append(v)
        return {k: sum(v) / len(v) for k, v in kinds.items()}

    def image(self, tag: str, grid: torch.Tensor, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, grid, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
