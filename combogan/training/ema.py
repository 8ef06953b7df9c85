"""An exponential moving average of each domain's encoder and decoder weights (train.ema).

    shadow_t = decay * shadow_{t-1} + (1 - decay) * weights_t,   shadow_0 = 0
    ema_t    = shadow_t / (1 - decay^t)                           (bias-corrected, as Adam's moments)

t counts the domain's own generator updates (a domain is updated only when its pair is drawn),
so an early checkpoint is not dominated by the random initialisation. The averaged weights are
what translation, eval, export and serving use; training goes on with the live weights. Frozen
domains (add-domain) are never updated. Buffers (BatchNorm statistics) are taken live.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..model.combogan import ComboGAN


class WeightAverage:
    def __init__(self, model: ComboGAN, decay: float):
        self.model, self.decay = model, decay
        self.shadow: dict[str, list[torch.Tensor]] = {}
        self.count: dict[str, int] = {}

    def add(self, name: str) -> None:
        self.shadow[name] = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.model.generator_parameters(name)]
        self.count[name] = 0

    @torch.no_grad()
    def update(self, names: Iterable[str]) -> None:
        """After a generator update of `names` (those this average tracks)."""
        for name in names:
            if name in self.shadow:
                shadow, live = self.shadow[name], self.model.generator_parameters(name)
                torch._foreach_mul_(shadow, self.decay)
                torch._foreach_add_(shadow, [p.detach() for p in live], alpha=1 - self.decay)
                self.count[name] += 1

    @torch.no_grad()
    def weights(self, name: str) -> dict[str, torch.Tensor] | None:
        """The domain's averaged 'encoder.*' and 'decoder.*' tensors (CPU), or None before its
        first update."""
        if not self.count.get(name):
            return None
        scale = 1.0 / (1.0 - self.decay ** self.count[name])
        averaged = iter([s * scale for s in self.shadow[name]])
        out = {}
        for part in ("encoder", "decoder"):
            net = self.model.parts(name)[part]
            params = {id(p) for p in net.parameters()}
            for key, value in net.state_dict(keep_vars=True).items():
                out[f"{part}.{key}"] = (next(averaged) if id(value) in params else value).detach().cpu().clone()
        return out

    def state(self, name: str) -> dict:
        """What resume needs: the raw shadow and the update count."""
        return {"decay": self.decay, "count": self.count[name], "shadow": [s.detach().cpu() for s in self.shadow[name]]}

    def load_state(self, name: str, state: dict) -> None:
        device = next(self.model.parameters()).device
        self.count[name] = int(state["count"])
        self.shadow[name] = [s.to(device) for s in state["shadow"]]
