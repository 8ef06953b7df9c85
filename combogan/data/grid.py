"""Image grids: rows of images in [-1, 1] as one PNG (samples, translate --grid, eval examples)."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image


def save_grid(rows: list[list[torch.Tensor]], path: Path | None = None) -> torch.Tensor:
    """rows of equally sized (3, H, W) images in [-1, 1] -> one grid in [0, 1] (saved as PNG if path)."""
    flat = [img.float().cpu() for row in rows for img in row]
    grid = make_grid(torch.stack(flat), nrow=len(rows[0]), padding=2, normalize=True, value_range=(-1, 1), pad_value=1.0)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path)
    return grid
