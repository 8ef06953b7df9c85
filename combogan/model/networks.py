"""The three per-domain networks: the two halves of a CycleGAN ResNet generator and a PatchGAN.

Encoder = c7s1-ngf, d(2ngf), d(4ngf), floor(n_blocks/2) residual blocks.
Decoder = the remaining residual blocks, u(2ngf), u(ngf), c7s1-3, tanh.
With ngf=64, n_blocks=9 the pair has exactly the ResNet-9 generator's 11,378,179 parameters.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from ..config import ModelConfig


def norm_layer(kind: str) -> Callable[[int], nn.Module]:
    if kind == "instance":
        # CycleGAN: no affine, no running stats, and the convs before it keep their bias.
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    raise ValueError(f"unknown norm '{kind}'")


def _use_bias(kind: str) -> bool:
    # BatchNorm's affine shift makes a conv bias redundant; InstanceNorm without affine does not.
    return kind == "instance"


def activation(kind: str) -> nn.Module:
    # PReLU: one learned slope per layer, initialised at 0.25, as in the official ComboGAN code.
    return nn.PReLU() if kind == "prelu" else nn.ReLU(True)


def upsample(kind: str, channels_in: int, channels_out: int, bias: bool) -> nn.Module:
    """Double the resolution: CycleGAN's ConvTranspose2d k3 (output_padding 1) or the official
    ComboGAN code's k4; both map H to exactly 2H."""
    if kind == "transpose4":
        return nn.ConvTranspose2d(channels_in, channels_out, 4, stride=2, padding=1, bias=bias)
    return nn.ConvTranspose2d(channels_in, channels_out, 3, stride=2, padding=1, output_padding=1, bias=bias)


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str, dropout: float, act: str = "relu"):
        super().__init__()
        Norm, bias = norm_layer(norm), _use_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), Norm(dim), activation(act)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), Norm(dim)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig, in_channels: int = 3):
        super().__init__()
        Norm, bias, ngf = norm_layer(cfg.norm), _use_bias(cfg.norm), cfg.ngf
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            Norm(ngf),
            activation(cfg.activation),
        ]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias), Norm(ngf * mult * 2), activation(cfg.activation)]
        layers += [ResnetBlock(ngf * 4, cfg.norm, cfg.dropout, cfg.activation) for _ in range(cfg.n_blocks // 2)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig, out_channels: int = 3):
        super().__init__()
        Norm, bias, ngf = norm_layer(cfg.norm), _use_bias(cfg.norm), cfg.ngf
        layers: list[nn.Module] = [ResnetBlock(ngf * 4, cfg.norm, cfg.dropout, cfg.activation) for _ in range(cfg.n_blocks - cfg.n_blocks // 2)]
        for mult in (4, 2):
            layers += [upsample(cfg.upsample, ngf * mult, ngf * mult // 2, bias), Norm(ngf * mult // 2), activation(cfg.activation)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """PatchGAN: C64-C128-C256-C512 (for ndf=64, n_layers=3), LeakyReLU 0.2, 1-channel map."""

    def __init__(self, cfg: ModelConfig, in_channels: int = 3):
        super().__init__()
        Norm, bias, ndf = norm_layer(cfg.norm), _use_bias(cfg.norm), cfg.ndf
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, cfg.n_layers_d + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < cfg.n_layers_d else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias), Norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


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
