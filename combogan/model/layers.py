"""Building blocks shared by the generator halves and the critics: normalisation, activation,
CycleGAN's weight initialisation."""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import nn


def norm_layer(kind: str) -> Callable[[int], nn.Module]:
    if kind == "instance":
        # CycleGAN: no affine, no running stats, and the convs before it keep their bias.
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    raise ValueError(f"unknown norm '{kind}'")


def use_bias(kind: str) -> bool:
    # BatchNorm's affine shift makes a conv bias redundant; InstanceNorm without affine does not.
    return kind == "instance"


def activation(kind: str) -> nn.Module:
    # PReLU: one learned slope per layer, initialised at 0.25, as in the official ComboGAN code.
    return nn.PReLU() if kind == "prelu" else nn.ReLU(True)


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """N(0, 0.02) for convs, N(1, 0.02) for norm scales, zero biases (CycleGAN's 'normal' init)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
