"""Image metrics against ground truth (L1, PSNR, SSIM) and, through torchmetrics, FID/KID."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import UserError


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    mse = F.mse_loss(x, y).item()
    return 100.0 if mse == 0 else 10 * math.log10(1.0 / mse)


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004, Gaussian window) of (B, C, H, W) images in [0, 1]."""
    c = x.shape[1]
    window = min(window, *x.shape[-2:])
    window -= 1 - window % 2  # odd, and no larger than the image
    g = torch.exp(-((torch.arange(window) - window // 2) ** 2) / (2 * sigma**2))
    g = (g / g.sum()).to(x)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window)
    blur = lambda t: F.conv2d(t, kernel, groups=c)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean().item()


def edge_energy(x: torch.Tensor) -> float:
    """Mean absolute difference between horizontally and vertically neighbouring pixels."""
    return 0.5 * ((x[..., :, 1:] - x[..., :, :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean()).item()


def paired_scores(out: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """out/truth: (1, 3, H, W) in [0, 1]. 'edges': out's edge energy over truth's (1: as sharp;
    below 1: blurred, or detail missing)."""
    edges = edge_energy(out) / max(edge_energy(truth), 1e-12)
    return {"l1": (out - truth).abs().mean().item(), "psnr": psnr(out, truth), "ssim": ssim(out, truth), "edges": edges}


def fid_kid(feature: Any, n: int) -> tuple[Any, Any]:
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance
    except ImportError:
        raise UserError("FID/KID need torchmetrics: pip install 'combogan[metrics]'") from None
    kw: dict[str, Any] = {"normalize": True}
    if isinstance(feature, (str, Path)):
        kw["feature_extractor_weights_path"] = str(feature)
        feature = 2048
    try:
        fid = FrechetInceptionDistance(feature=feature, **kw)
        kid = KernelInceptionDistance(feature=feature, subset_size=max(2, min(50, n)), **kw)
    except (ModuleNotFoundError, ImportError) as exc:
        raise UserError(f"FID/KID with Inception need torch-fidelity ({exc}); pip install 'combogan[metrics]'") from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise UserError(f"could not load the Inception weights ({str(exc).splitlines()[0][:80]}); offline? pass --feature-weights PATH") from None
    return fid, kid
