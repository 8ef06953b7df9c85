"""The per-domain critics, chosen by model.discriminator.

Every critic returns its judgement as weighted patch maps, [(weight, map), ...] with weights
summing to 1: the GAN loss of a judgement is the weighted sum of its maps' losses
(combogan.model.losses.gan_loss), whatever the critic.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..config import ModelConfig
from .layers import norm_layer, use_bias
from .losses import WeightedMaps
from .official.networks import TwoViewCritic


def patchgan_layers(cfg: ModelConfig, in_channels: int = 3) -> nn.Sequential:
    """C64-C128-C256-C512 (for ndf=64, n_layers_d=3), LeakyReLU 0.2, a 1-channel patch map."""
    Norm, bias, ndf = norm_layer(cfg.norm), use_bias(cfg.norm), cfg.ndf
    layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, cfg.n_layers_d + 1):
        prev, mult = mult, min(2**n, 8)
        stride = 2 if n < cfg.n_layers_d else 1
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias), Norm(ndf * mult), nn.LeakyReLU(0.2, True)]
    layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
    return nn.Sequential(*layers)


class PatchGAN(nn.Module):
    """CycleGAN's critic: with n_layers_d = 3, one map of 70x70 patches."""

    def __init__(self, cfg: ModelConfig, in_channels: int = 3):
        super().__init__()
        self.net = patchgan_layers(cfg, in_channels)

    def forward(self, x: torch.Tensor) -> WeightedMaps:
        return [(1.0, self.net(x))]


class PatchGANWithLocal(nn.Module):
    """CycleGAN's PatchGAN and a shallower one (model.n_layers_d_local layers) on the same
    images, weighted equally: each map's loss is already a mean over its patches, so the many
    small patches don't outvote the few large ones."""

    def __init__(self, cfg: ModelConfig, in_channels: int = 3):
        super().__init__()
        self.patch = PatchGAN(cfg, in_channels)
        self.local = PatchGAN(dataclasses.replace(cfg, n_layers_d=cfg.n_layers_d_local), in_channels)

    def forward(self, x: torch.Tensor) -> WeightedMaps:
        return [(0.5, self.patch.net(x)), (0.5, self.local.net(x))]


def patchgan(cfg: ModelConfig) -> nn.Module:
    return PatchGANWithLocal(cfg) if cfg.n_layers_d_local else PatchGAN(cfg)


CRITICS = {"patchgan": patchgan, "two_view": TwoViewCritic}


def build_critic(cfg: ModelConfig) -> nn.Module:
    return CRITICS[cfg.discriminator](cfg)
