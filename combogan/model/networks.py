"""The three per-domain networks: the two halves of a CycleGAN ResNet generator and a PatchGAN.

Encoder = c7s1-ngf, d(2ngf), d(4ngf), floor(n_blocks/2) residual blocks.
Decoder = the remaining residual blocks, u(2ngf), u(ngf), c7s1-3, tanh.
(For model.n_downsampling = 2; with k the d/u stages run to 2^k ngf and back.)
With ngf=64, n_blocks=9 the pair has exactly the ResNet-9 generator's 11,378,179 parameters.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
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
    """Double the resolution: CycleGAN's ConvTranspose2d k3 (output_padding 1), the official
    ComboGAN code's k4, or resize + 3x3 conv; all map H to exactly 2H."""
    if kind == "transpose4":
        return nn.ConvTranspose2d(channels_in, channels_out, 4, stride=2, padding=1, bias=bias)
    if kind in ("nearest", "bilinear"):
        # Every output pixel sees the same number of kernel taps: no checkerboard (Odena et al. 2016).
        return nn.Sequential(nn.Upsample(scale_factor=2, mode=kind), nn.ReflectionPad2d(1), nn.Conv2d(channels_in, channels_out, 3, bias=bias))
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
        for mult in (2**i for i in range(cfg.n_downsampling)):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias), Norm(ngf * mult * 2), activation(cfg.activation)]
        layers += [ResnetBlock(ngf * cfg.size_multiple, cfg.norm, cfg.dropout, cfg.activation) for _ in range(cfg.n_blocks // 2)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig, out_channels: int = 3):
        super().__init__()
        Norm, bias, ngf = norm_layer(cfg.norm), _use_bias(cfg.norm), cfg.ngf
        layers: list[nn.Module] = [ResnetBlock(ngf * cfg.size_multiple, cfg.norm, cfg.dropout, cfg.activation)
                                   for _ in range(cfg.n_blocks - cfg.n_blocks // 2)]
        for mult in (2**i for i in range(cfg.n_downsampling, 0, -1)):
            layers += [upsample(cfg.upsample, ngf * mult, ngf * mult // 2, bias), Norm(ngf * mult // 2), activation(cfg.activation)]
        self.output = cfg.output
        self.recolour = cfg.output in ("recolour", "recolour_mask")
        self.masked = cfg.output == "recolour_mask"
        # 'recolour_mask' draws one more channel: the mask's logit (CycleGAN's init: zero bias, so a
        # fresh mask is about one half everywhere).
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels + int(self.masked), 7)] + ([] if self.recolour else [nn.Tanh()])
        self.net = nn.Sequential(*layers)
        # model.output 'recolour': a 3x4 colour map per image from the latent's mean. Zero-initialised,
        # so a fresh decoder returns its source image plus what its last conv draws. nn.Identity
        # otherwise, so that 'image' decoders keep their parameters (and state_dict keys) unchanged.
        self.colour: nn.Module = nn.Identity()
        self.colour_gain = COLOUR_GAIN  # an attribute, not a global: TorchScript export reads it
        if self.recolour:
            self.colour = nn.Linear(ngf * cfg.size_multiple, out_channels * 4)
            nn.init.zeros_(self.colour.weight)
            nn.init.zeros_(self.colour.bias)

    def forward(self, z: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """The decoded image; `source` (the image z was encoded from, what a 'recolour' decoder
        recolours) is ignored by 'image' decoders."""
        drawn = self.net(z)
        if not self.recolour:
            return drawn
        if source is None:
            raise ValueError(f"a model.output='{self.output}' decoder needs the source image")
        colour = self.colour_gain * self.colour(z.mean((2, 3)))
        if not self.masked:
            return torch.tanh(colour_map(source, colour) + drawn)
        # Where the mask is on, the drawn image; elsewhere the recoloured source alone. A tree can
        # then be painted in its own colours, instead of as a correction to a colour map made
        # for the snow around it (which left pink tints where the two did not cancel).
        mask = torch.sigmoid(drawn[:, -1:])
        return mask * torch.tanh(drawn[:, :-1]) + (1 - mask) * torch.tanh(colour_map(source, colour))


# Adam moves each weight by at most ~lr per step. A colour map needs changes of order 1 (blue sky
# to grey), and the 12 numbers of the map would take thousands of steps to get there; the gain
# lets them move at the pace of the convolutions' many weights summed (measured on the demo).
COLOUR_GAIN = 20.0


def colour_map(source: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """A·atanh(source) + b, with [A - I | b] = colour.view(B, C, 4), before the tanh (model.output
    'recolour' adds what the decoder draws to it; 'recolour_mask' does not). atanh undoes
    the tanh range so the map acts on unbounded values; the clamp keeps it finite at ±1. (atanh
    written out: the ONNX exporter has no aten::atanh.)"""
    m = colour.view(colour.shape[0], -1, 4)
    eye = torch.eye(m.shape[1], 3, dtype=m.dtype, device=m.device)
    s = source.clamp(-0.995, 0.995)
    mapped = torch.einsum("bij,bjhw->bihw", m[:, :, :3] + eye, 0.5 * torch.log((1 + s) / (1 - s)))
    return mapped + m[:, :, 3, None, None]


def Discriminator(cfg: ModelConfig, in_channels: int = 3) -> nn.Module:
    """The critic model.discriminator names: CycleGAN's PatchGAN (with model.n_layers_d_local, a
    shallower one beside it) or the official ComboGAN code's."""
    if cfg.discriminator == "two_view":
        return TwoViewDiscriminator(cfg)
    return LocalPlusPatchGAN(cfg, in_channels) if cfg.n_layers_d_local else PatchGAN(cfg, in_channels)


class PatchGAN(nn.Module):
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


class LocalPlusPatchGAN(nn.Module):
    """CycleGAN's PatchGAN and a shallower one (model.n_layers_d_local layers) on the same image.
    forward() returns their maps by name; losses.gan_loss averages a dict's losses equally (each
    map's loss is already a mean over its patches, so the many small patches don't outvote the
    few large ones)."""

    def __init__(self, cfg: ModelConfig, in_channels: int = 3):
        super().__init__()
        self.patch = PatchGAN(cfg, in_channels)
        self.local = PatchGAN(dataclasses.replace(cfg, n_layers_d=cfg.n_layers_d_local), in_channels)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"patch": self.patch(x), "local": self.local(x)}


def blur_kernel(size: int = 5, sigma: float = 3.0) -> torch.Tensor:
    """The official ComboGAN code's blur (util.gkern_2d): scipy's gaussian_filter of a size x size
    impulse, whose 'reflect' border folds the Gaussian's tails back in; summed here directly."""
    half = int(4 * sigma + 0.5)  # scipy truncates the kernel at 4 sigma
    taps = torch.exp(-torch.arange(-half, half + 1, dtype=torch.float64) ** 2 / (2 * sigma**2))
    taps /= taps.sum()
    period, centre = 2 * size, size // 2
    line = torch.zeros(size, dtype=torch.float64)
    for i in range(size):  # the impulse and its mirror images in the half-sample symmetric extension
        for image in range(-half - size, half + size + 1):
            pos = image * period + centre, image * period - 1 - centre
            line[i] += sum(taps[i - p + half] for p in pos if abs(i - p) <= half)
    return torch.outer(line, line).float()


class TwoViewDiscriminator(nn.Module):
    """The official ComboGAN code's critic: one PatchGAN on the luminance and one on a blurred RGB
    copy (so colour is judged at low frequency, structure in grey), PReLU activations, and a
    prediction at every scale: each inner stage has one extra output channel that is read out as a
    patch map. forward() returns the per-scale maps (both views side by side); losses.gan_loss
    weights them as the official code does (1, 2, ..., with the last one's weight one more).
    State-dict keys (model_gray.*, model_rgb.*) are the official files' own."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.register_buffer("blur", blur_kernel().expand(3, 1, 5, 5).clone(), persistent=False)
        self.model_gray = self._view(1, cfg)
        self.model_rgb = self._view(3, cfg)

    @staticmethod
    def _view(in_channels: int, cfg: ModelConfig) -> nn.Sequential:
        Norm, bias, ndf = norm_layer(cfg.norm), _use_bias(cfg.norm), cfg.ndf
        stages = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, stride=2, padding=2), nn.PReLU())]
        mult = 1
        for n in range(1, cfg.n_layers_d):
            prev, mult = mult, min(2**n, 8)
            stages.append(nn.Sequential(nn.Conv2d(ndf * prev, ndf * mult + 1, 4, stride=2, padding=2, bias=bias), Norm(ndf * mult + 1), nn.PReLU()))
        prev, mult = mult, min(2**cfg.n_layers_d, 8)
        stages.append(nn.Sequential(nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=2, bias=bias), Norm(ndf * mult), nn.PReLU(),
                                    nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=2)))
        return nn.Sequential(*stages)

    @staticmethod
    def _predictions(view: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        x = view[0](x)
        for stage in view[1:]:
            y = stage(x)
            out.append(y[:, -1:])  # the extra channel is this scale's prediction...
            x = y[:, :-1]  # ...and the rest go on (the last stage's one channel is all prediction)
        return out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        rgb = F.conv2d(x, self.blur.to(x.dtype), padding=2, groups=3)
        return [torch.cat([g, c], 2) for g, c in zip(self._predictions(self.model_gray, gray), self._predictions(self.model_rgb, rgb))]


def spectral_norm_(critic: nn.Module) -> nn.Module:
    """Spectrally normalise every convolution of `critic` in place (after init_weights: the
    normalisation wraps whatever weights are there)."""
    for m in critic.modules():
        if isinstance(m, nn.Conv2d):
            nn.utils.parametrizations.spectral_norm(m)
    return critic


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
