"""A trained run, ready for inference: Translator('runs/alps').translate(img, 'summer', 'winter').

It loads the run's newest complete checkpoint into a ComboGAN model and converts between what
users hold (PIL images, uint8 tensors, [-1, 1] float tensors) and what the model takes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from ..data.images import to_model_range, to_uint8
from ..device import resolve_device
from ..runs import checkpoint, rundir


class Translator:
    def __init__(self, run: str | Path | None = None, device: str = "auto", announce: bool = False, flip_average: bool = False,
                 weights: str = "auto"):
        """weights: "average" (each domain's weight average, train.ema), "live" (the trained
        weights as they are) or "auto" (the average once it has settled; checkpoint.WEIGHTS)."""
        self.flip_average = flip_average  # see ComboGAN.translate
        self.run = rundir.resolve(run, announce=announce)
        self.manifest = rundir.read_manifest(self.run)
        self.device = resolve_device(device)
        self.model, self._index = checkpoint.load_model(self.run, self.device, weights)
        self.choice = weights
        # name -> "average" | "live": what each domain translates with
        self.weights = {n: "average" if self._index.uses_average(self.run, n, weights) else "live" for n in self._index.domains}
        self.step = self._index.step
        self.config = rundir.read_config(self.run)

    def note_weights(self) -> None:
        """On stderr, after a command's work: which domains auto left on their trained weights
        because their weight average is still young."""
        if self.choice != "auto":
            return
        passed_over = [n for n, w in self.weights.items() if w == "live" and self._index.averaged(n)]
        note = young_average_note({n: self._index.average_updates(self.run, n) for n in passed_over})
        if note:
            print(note, file=sys.stderr)

    @property
    def domains(self) -> list[str]:
        return self.model.names

    def targets(self, source: str, to: Iterable[str]) -> list[str]:
        """Validated target names; 'all' means every domain but the source."""
        self.model.require(source)
        names: list[str] = []
        for t in to:
            names += [n for n in self.domains if n != source] if t == "all" else [self.model.require(t)]
        return list(dict.fromkeys(names))

    def batch(self, x: torch.Tensor, source: str, targets: str | list[str]) -> torch.Tensor | dict[str, torch.Tensor]:
        """The model's translation of a (B, 3, H, W) batch in [-1, 1], with this Translator's options."""
        return self.model.translate(x, source, targets, flip_average=self.flip_average)

    def translate(self, image: torch.Tensor | Image.Image, source: str, target: str) -> torch.Tensor | Image.Image:
        """Translate one image: a PIL image, a uint8 (3, H, W) tensor, or a float tensor in [-1, 1]
        ((3, H, W) or (B, 3, H, W)). Returns the same kind it was given."""
        if isinstance(image, Image.Image):
            x = to_model_range(TF.pil_to_tensor(image.convert("RGB")))[None]
            return TF.to_pil_image(to_uint8(self.batch(x.to(self.device), source, target)[0]).cpu())
        if image.dtype == torch.uint8:
            return to_uint8(self.batch(to_model_range(image)[None].to(self.device), source, target)[0]).cpu()
        batched = image if image.dim() == 4 else image[None]
        y = self.batch(batched.to(self.device), source, target)
        return y if image.dim() == 4 else y[0]


def young_average_note(young: dict[str, tuple[float, int] | None]) -> str | None:
    """The note for domains whose weight averages, given as (decay, updates), have not settled
    (checkpoint.settling_updates), so that auto translates with their trained weights."""
    young = {name: du for name, du in young.items() if du}
    if not young:
        return None
    decay = max(d for d, _ in young.values())
    counts = sorted(u for _, u in young.values())
    span = f"{counts[0]:,}" if counts[0] == counts[-1] else f"{counts[0]:,}-{counts[-1]:,}"
    return (f"note: {', '.join(young)} translate with the trained weights: the weight average (train.ema={decay:g}) has "
            f"{span} updates, fewer than the {checkpoint.settling_updates(decay):,} it needs to settle (--weights average uses it anyway)")
