"""Loss terms as pure functions of tensors; combogan.training.step names them and sums them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# A critic's judgement: patch maps with weights summing to 1 (combogan.model.critics).
WeightedMaps = list[tuple[float, torch.Tensor]]


def _full(t: torch.Tensor) -> torch.Tensor:
    """Half-precision activations (autocast) are upcast so losses are reduced in fp32."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def map_loss(prediction: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    """LSGAN: mean (D(x) - t)^2; vanilla: BCE-with-logits. Targets are 1 (real) and 0 (fake).
    Computed in fp32 even under autocast: squared errors of bf16 logits lose too much."""
    prediction = _full(prediction)
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    if mode == "lsgan":
        return F.mse_loss(prediction, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(prediction, target)
    raise ValueError(f"unknown gan mode '{mode}'")


def gan_loss(judgement: WeightedMaps, target_is_real: bool, mode: str) -> torch.Tensor:
    """The weighted sum of each patch map's loss."""
    return sum(weight * map_loss(m, target_is_real, mode) for weight, m in judgement)


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(_full(a), _full(b))


def discriminator_loss(real: WeightedMaps, fake: WeightedMaps, mode: str) -> torch.Tensor:
    """0.5 * (loss on real + loss on pooled fake), halving D's rate relative to G as in the paper."""
    return 0.5 * (gan_loss(real, True, mode) + gan_loss(fake, False, mode))
