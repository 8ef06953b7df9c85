"""What a model must beat: identity (output = input) needs no code; per-image histogram
matching to the target domain's training colours is here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.images import BadImage, load_image


class HistogramMatcher:
    """Per-channel histogram matching of an image to a domain's pooled training histogram."""

    def __init__(self, files: list[Path], load_size: int | None, max_images: int = 100):
        hist = np.zeros((3, 256))
        for f in files[:max_images]:
            try:
                img = load_image(f, load_size).numpy()
            except BadImage:
                continue
            for ch in range(3):
                hist[ch] += np.bincount(img[ch].ravel(), minlength=256)
        self.cdf = np.cumsum(hist, 1) / np.maximum(hist.sum(1, keepdims=True), 1)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """uint8 (3, H, W) -> uint8 (3, H, W)."""
        arr = img.numpy()
        out = np.empty_like(arr)
        for ch in range(3):
            pdf = np.bincount(arr[ch].ravel(), minlength=256) / arr[ch].size
            quantile = np.cumsum(pdf) - pdf / 2  # each source level's mid-quantile
            mapping = np.searchsorted(self.cdf[ch], quantile, side="left").clip(0, 255)
            out[ch] = mapping[arr[ch]].astype(np.uint8)
        return torch.from_numpy(out)
