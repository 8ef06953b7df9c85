"""The official ComboGAN code's network variants: its two-view critic and its 4x4 transposed
upsampling (model.discriminator=two_view, model.upsample=transpose4), for imported models."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...config import ModelConfig
from ..layers import norm_layer, use_bias
from ..losses import WeightedMaps


def transpose4(channels_in: int, channels_out: int, bias: bool) -> nn.Module:
    """ConvTranspose2d k4 s2 p1: H to exactly 2H."""
    return nn.ConvTranspose2d(channels_in, channels_out, 4, stride=2, padding=1, bias=bias)


def blur_kernel(size: int = 5, sigma: float = 3.0) -> torch.Tensor:
    """The official code's blur (util.gkern_2d): scipy's gaussian_filter of a size x size
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


class TwoViewCritic(nn.Module):
    """One PatchGAN on the luminance and one on a blurred RGB copy (colour judged at low
    frequency, structure in grey), PReLU activations, and a prediction at every scale: each inner
    stage has one extra output channel read out as a patch map. The maps (both views side by
    side) are weighted as the official code does: 1, 2, ..., with the last one's weight one more.
    State-dict keys (model_gray.*, model_rgb.*) are the official files' own."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.register_buffer("blur", blur_kernel().expand(3, 1, 5, 5).clone(), persistent=False)
        self.model_gray = self._view(1, cfg)
        self.model_rgb = self._view(3, cfg)
        n = cfg.n_layers_d
        weights = [*range(1, n), n + 1] if n > 1 else [1]
        self.weights = [w / (n * sum(weights)) for w in weights]

    @staticmethod
    def _view(in_channels: int, cfg: ModelConfig) -> nn.Sequential:
        Norm, bias, ndf = norm_layer(cfg.norm), use_bias(cfg.norm), cfg.ndf
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

    def forward(self, x: torch.Tensor) -> WeightedMaps:
        gray = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
        rgb = F.conv2d(x, self.blur.to(x.dtype), padding=2, groups=3)
        maps = [torch.cat([g, c], 2) for g, c in zip(self._predictions(self.model_gray, gray), self._predictions(self.model_rgb, rgb))]
        return list(zip(self.weights, maps))
