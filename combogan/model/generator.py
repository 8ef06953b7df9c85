"""The two halves of a CycleGAN ResNet generator: one encoder and one decoder per domain.

Encoder = c7s1-ngf, d(2ngf), d(4ngf), floor(n_blocks/2) residual blocks.
Decoder = the remaining residual blocks, u(2ngf), u(ngf), c7s1-3, then its output
(combogan.model.outputs; the paper's: tanh).
(For model.n_downsampling = 2; with k the d/u stages run to 2^k ngf and back.)
With ngf=64, n_blocks=9 the pair has exactly the ResNet-9 generator's 11,378,179 parameters.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import ModelConfig
from .layers import activation, norm_layer, use_bias
from .official.networks import transpose4
from .outputs import OUTPUTS


def transpose3(channels_in: int, channels_out: int, bias: bool) -> nn.Module:
    """CycleGAN's: ConvTranspose2d k3 s2 with output_padding 1."""
    return nn.ConvTranspose2d(channels_in, channels_out, 3, stride=2, padding=1, output_padding=1, bias=bias)


def resize_conv(channels_in: int, channels_out: int, bias: bool) -> nn.Module:
    """Nearest-neighbour doubling, then a 3x3 conv: every output pixel sees the same number of
    kernel taps, so there is no checkerboard (Odena et al. 2016)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(channels_in, channels_out, 3, bias=bias))


# model.upsample -> a layer that maps H to exactly 2H.
UPSAMPLE = {"nearest": resize_conv, "transpose": transpose3, "transpose4": transpose4}


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str, dropout: float, act: str = "relu"):
        super().__init__()
        Norm, bias = norm_layer(norm), use_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), Norm(dim), activation(act)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), Norm(dim)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _blocks(cfg: ModelConfig, count: int) -> list[nn.Module]:
    return [ResnetBlock(cfg.ngf * cfg.size_multiple, cfg.norm, cfg.dropout, cfg.activation) for _ in range(count)]


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig, in_channels: int = 3):
        super().__init__()
        Norm, bias, ngf = norm_layer(cfg.norm), use_bias(cfg.norm), cfg.ngf
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), Norm(ngf), activation(cfg.activation)]
        for mult in (2**i for i in range(cfg.stages)):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias), Norm(ngf * mult * 2), activation(cfg.activation)]
        self.net = nn.Sequential(*layers, *_blocks(cfg, cfg.n_blocks // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """net draws what model.output's class (self.output) turns into the image: its forward
    takes the latent and the image the latent was encoded from (read by outputs that recolour it)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        Norm, bias, ngf = norm_layer(cfg.norm), use_bias(cfg.norm), cfg.ngf
        layers = _blocks(cfg, cfg.n_blocks - cfg.n_blocks // 2)
        for mult in (2**i for i in range(cfg.stages, 0, -1)):
            layers += [UPSAMPLE[cfg.upsample](ngf * mult, ngf * mult // 2, bias), Norm(ngf * mult // 2), activation(cfg.activation)]
        Output = OUTPUTS[cfg.output_kind]
        self.net = nn.Sequential(*layers, nn.ReflectionPad2d(3), nn.Conv2d(ngf, Output.channels, 7))
        self.output = Output(ngf * cfg.size_multiple)

    def forward(self, z: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.net(z), z, source)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # combogan 0.2 kept the recolour output's colour head on the decoder itself.
        for old in [k for k in state_dict if k.startswith(f"{prefix}colour.")]:
            state_dict[f"{prefix}output.{old[len(prefix):]}"] = state_dict.pop(old)
        super()._load_from_state_dict(state_dict, prefix, *args)
