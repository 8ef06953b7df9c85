"""The history pool of generated images each discriminator sees (Shrivastava et al.; CycleGAN).

Until the pool is full every fake is stored and returned. After that each fake is, with
probability 1/2, swapped for a random stored one (which is returned) or else returned as is.
The pool owns its own seeded generator so that resume replays exactly the same choices.
"""

from __future__ import annotations

from typing import Any

import torch


class ImagePool:
    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        draws = torch.rand(images.shape[0], generator=self.generator).tolist()
        slots = torch.randint(0, self.size, (images.shape[0],), generator=self.generator).tolist()
        for image, draw, slot in zip(images.detach(), draws, slots):
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif draw > 0.5:
                out.append(self.images[slot].clone())
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, Any]:
        stored = torch.cat(self.images).cpu() if self.images else torch.empty(0)
        return {"size": self.size, "images": stored, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.size = int(state["size"])
        images = state["images"]
        self.images = [img.unsqueeze(0).to(device) for img in images] if images.numel() else []
        self.generator.set_state(state["generator"])
