"""Differentiable augmentation of everything a critic sees (DiffAugment, Zhao et al. 2020).

A critic trained on a few hundred images memorises them within a few epochs: its loss goes to
~0, and the generators it teaches learn to paint whatever that memory rejects least (hatching,
streaks). DiffAugment applies random, differentiable transforms to every image the critic judges,
real and fake, in the critic's update and in the generators': the critic must judge content
under shifts and occlusions, and the generators' gradients pass through the same transforms.

Policies (train.diffaugment, comma-separated): 'translation' (shift by up to 1/8 of each side,
zero fill) and 'cutout' (zero a random square of half each side). DiffAugment's third, 'color',
is left out on purpose: brightness, saturation and contrast are what tell domains apart here.

Randomness is a pure function of (seed, rank, global step, domain, role), not of a generator's
history: the two halves of a step may run on two threads, a resume needs no saved state, and a
frozen domain's critic (add-domain) is augmented alike before and after a restart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model.combogan import stable_seed


class CriticAugment:
    """augment(x, domain, role) for the critic of `domain`; role: 'fake' (in the generators'
    update), 'real' or 'pooled' (in the critic's)."""

    def __init__(self, policy: tuple[str, ...], seed: int, rank: int = 0):
        self.policy, self.seed, self.rank = policy, seed, rank
        self.step = 0  # the global step; the training loop sets it before each step

    def generator(self, domain: str, role: str) -> torch.Generator:
        return torch.Generator().manual_seed(stable_seed(self.seed, f"diffaugment:{self.rank}:{self.step}:{domain}:{role}"))

    def __call__(self, x: torch.Tensor, domain: str, role: str) -> torch.Tensor:
        g = self.generator(domain, role)
        if "translation" in self.policy:
            x = translate(x, g)
        if "cutout" in self.policy:
            x = cutout(x, g)
        return x


def translate(x: torch.Tensor, g: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio x its size in each direction, filling with zeros."""
    b, _, h, w = x.shape
    sy, sx = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    dy = torch.randint(-sy, sy + 1, (b,), generator=g).tolist()
    dx = torch.randint(-sx, sx + 1, (b,), generator=g).tolist()
    padded = F.pad(x, (sx, sx, sy, sy))
    return torch.stack([padded[i, :, sy - dy[i]:sy - dy[i] + h, sx - dx[i]:sx - dx[i] + w] for i in range(b)])


def cutout(x: torch.Tensor, g: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ratio x each side per image, centred anywhere (it may stick out)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b,), generator=g)
    cx = torch.randint(0, w + (1 - cw % 2), (b,), generator=g)
    ys, xs = torch.arange(h), torch.arange(w)
    inside_y = (ys[None] >= (cy - ch // 2)[:, None]) & (ys[None] < (cy - ch // 2 + ch)[:, None])
    inside_x = (xs[None] >= (cx - cw // 2)[:, None]) & (xs[None] < (cx - cw // 2 + cw)[:, None])
    keep = ~(inside_y[:, :, None] & inside_x[:, None, :])
    return x * keep[:, None].to(device=x.device, dtype=x.dtype)
