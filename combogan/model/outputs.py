"""What a decoder's last convolution draws becomes the image: model.output chooses how.

Each output is a small module: `channels` (what the last convolution draws), `reads_source`
(whether it needs the image the latent was encoded from) and forward(drawn, z, source).
"""

from __future__ import annotations

import torch
from torch import nn


class ImageOutput(nn.Module):
    """The paper's: the decoder draws the translated image through tanh."""

    channels = 3
    reads_source = False

    def __init__(self, latent_channels: int):
        super().__init__()

    def forward(self, drawn: torch.Tensor, z: torch.Tensor, source: torch.Tensor | None) -> torch.Tensor:
        return torch.tanh(drawn)


# Adam moves each weight by at most ~lr per step. A colour map needs changes of order 1 (blue sky
# to grey), and the 12 numbers of the map would take thousands of steps to get there; the gain
# lets them move at the pace of the convolutions' many weights summed (measured on the demo).
COLOUR_GAIN = 20.0


class RecolourMaskOutput(nn.Module):
    """m·tanh(d) + (1 − m)·tanh(A·atanh(source) + b): where the drawn mask m is on, the decoder's
    own drawing d; elsewhere the source, recoloured by a 3x4 colour map [A − I | b] predicted per
    image from the latent's mean. The source's edges reach the output directly (crisp ridges and
    outlines), and what changes shape (trees) is drawn in its own colours."""

    channels = 4  # the image and the mask's logit
    reads_source = True

    def __init__(self, latent_channels: int):
        super().__init__()
        # Zero-initialised: a fresh map is the identity, and (CycleGAN's zero bias init of the last
        # conv) a fresh mask is one half everywhere.
        self.colour = nn.Linear(latent_channels, 12)
        nn.init.zeros_(self.colour.weight)
        nn.init.zeros_(self.colour.bias)
        self.colour_gain = COLOUR_GAIN  # an attribute, not a global: TorchScript export reads it

    def forward(self, drawn: torch.Tensor, z: torch.Tensor, source: torch.Tensor | None) -> torch.Tensor:
        if source is None:
            raise ValueError("a model.output='recolour_mask' decoder needs the source image")
        colour = self.colour_gain * self.colour(z.mean((2, 3)))
        mask = torch.sigmoid(drawn[:, -1:])
        return mask * torch.tanh(drawn[:, :-1]) + (1 - mask) * torch.tanh(colour_map(source, colour))


def colour_map(source: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """A·atanh(source) + b, with [A - I | b] = colour.view(B, 3, 4). atanh undoes the tanh range
    so the map acts on unbounded values; the clamp keeps it finite at ±1. (atanh written out: the
    ONNX exporter has no aten::atanh.)"""
    m = colour.view(colour.shape[0], -1, 4)
    eye = torch.eye(m.shape[1], 3, dtype=m.dtype, device=m.device)
    s = source.clamp(-0.995, 0.995)
    mapped = torch.einsum("bij,bjhw->bihw", m[:, :, :3] + eye, 0.5 * torch.log((1 + s) / (1 - s)))
    return mapped + m[:, :, 3, None, None]


OUTPUTS: dict[str, type[nn.Module]] = {"image": ImageOutput, "recolour_mask": RecolourMaskOutput}
