"""Loss terms as pure functions of tensors; combogan.step names them and sums them."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _full(t: torch.Tensor) -> torch.Tensor:
    """Half-precision activations (autocast) are upcast so losses are reduced in fp32."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


Prediction = torch.Tensor | list[torch.Tensor] | dict[str, torch.Tensor]


def gan_loss(prediction: Prediction, target_is_real: bool, mode: str) -> torch.Tensor:
    """LSGAN: mean (D(x) - t)^2; vanilla: BCE-with-logits. Targets are 1 (real) and 0 (fake).
    A list (the two-view critic's per-scale maps) is weighted as the official ComboGAN code does:
    sum_i w_i * loss_i / (n * sum_i w_i) with w = 1, 2, ..., n - 1, n + 1. A dict (separate
    critics' maps by name: model.n_layers_d_local) is the plain mean of its maps' losses."""
    if isinstance(prediction, dict):
        return sum(gan_loss(p, target_is_real, mode) for p in prediction.values()) / len(prediction)
    if isinstance(prediction, (list, tuple)):
        n = len(prediction)
        weights = [*range(1, n), n + 1] if n > 1 else [1]
        return sum(w * gan_loss(p, target_is_real, mode) for w, p in zip(weights, prediction)) / (n * sum(weights))
    # Computed in fp32 even under autocast: squared errors of bf16 logits lose too much.
    prediction = _full(prediction)
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    if mode == "lsgan":
        return F.mse_loss(prediction, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(prediction, target)
    raise ValueError(f"unknown gan mode '{mode}'")


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(_full(a), _full(b))


def downsampled_smooth_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The official ComboGAN code's criterionIdt: smooth L1 between 3x3/2 average-pooled images.
    Used by its autoencode and forward terms, which should match colours and layout, not detail."""
    return F.smooth_l1_loss(F.avg_pool2d(_full(a), 3, stride=2), F.avg_pool2d(_full(b), 3, stride=2))


def discriminator_loss(pred_real: Prediction, pred_fake: Prediction, mode: str) -> torch.Tensor:
    """0.5 * (loss on real + loss on pooled fake), halving D's rate relative to G as in the paper."""
    return 0.5 * (gan_loss(pred_real, True, mode) + gan_loss(pred_fake, False, mode))
