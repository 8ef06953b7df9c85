"""Training state beside the model: per domain, an Adam for its generator half (encoder +
decoder), an Adam for its critic, a history pool of generated images, and whether it is frozen.

One Adam per domain and role is the same as one big Adam (Adam is per parameter), but it lets a
step touch only the two sampled domains, lets add-domain leave frozen domains' state alone, and
saves per domain. A frozen domain (add-domain) has no optimizers and no gradients; gradients
still flow *through* its networks to the trainable side.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..config import TrainConfig, policy
from ..model.combogan import ComboGAN, stable_seed
from .augment import CriticAugment
from .ema import WeightAverage
from .pool import ImagePool


class TrainState:
    def __init__(self, model: ComboGAN, cfg: TrainConfig, rank: int = 0):
        self.model, self.cfg = model, cfg
        self.rank = rank  # under torchrun each rank keeps (and checkpoints) its own image pools
        self.generator_opt: dict[str, torch.optim.Optimizer] = {}
        self.critic_opt: dict[str, torch.optim.Optimizer] = {}
        self.pools: dict[str, ImagePool] = {}
        self.frozen: set[str] = set()
        self.ema = WeightAverage(model, cfg.ema) if cfg.ema > 0 else None
        transforms = policy(cfg.diffaugment)
        self.augment = CriticAugment(transforms, cfg.seed, rank) if transforms else None

    def add(self, name: str, seed: int | None = None) -> None:
        """Optimizers and a pool for the model's domain `name`."""
        seed = self.cfg.seed if seed is None else seed
        # Per-rank pool seeds (rank 0 keeps the single-process seed): ranks hold different fakes.
        self.pools[name] = ImagePool(self.cfg.pool_size, seed=stable_seed(seed + 1, name if not self.rank else f"{name}@rank{self.rank}"))
        kw = {"lr": self.cfg.lr, "betas": (self.cfg.beta1, self.cfg.beta2)}
        self.generator_opt[name] = torch.optim.Adam(self.model.generator_parameters(name), **kw)
        self.critic_opt[name] = torch.optim.Adam([{"params": p, "lr": self.cfg.lr * factor} for p, factor in self._critic_parts(name)], **kw)
        if self.ema is not None:
            self.ema.add(name)

    def freeze(self, name: str) -> None:
        """No gradients, no optimizer steps, eval mode (a fixed function: BatchNorm statistics)."""
        self.frozen.add(name)
        for part in self.model.parts(name).values():
            part.requires_grad_(False)
            part.eval()
        self.generator_opt.pop(name, None)
        self.critic_opt.pop(name, None)

    @property
    def trainable(self) -> list[str]:
        return [n for n in self.model.names if n not in self.frozen]

    def train_mode(self) -> None:
        """model.train(), frozen domains left in eval mode."""
        self.model.train()
        for name in self.frozen:
            for part in self.model.parts(name).values():
                part.eval()

    def optimizers(self, names: Iterable[str], role: str) -> list[torch.optim.Optimizer]:
        """The trainable ones among `names`, role 'generator' or 'critic'."""
        table = self.generator_opt if role == "generator" else self.critic_opt
        return [table[n] for n in names if n in table]

    def all_optimizers(self) -> list[torch.optim.Optimizer]:
        return [*self.generator_opt.values(), *self.critic_opt.values()]

    def _critic_parts(self, name: str) -> list[tuple[list[torch.nn.Parameter], float]]:
        """The critic's parameter groups, each with its learning rate relative to the generators':
        the PatchGAN at train.critic_lr_factor and, with model.n_layers_d_local, the local critic
        at train.local_critic_lr_factor. One group when the rates are the same (so runs saved
        before the local critic had its own rate resume with their optimizer state)."""
        critic, cfg = self.model.discriminators[name], self.cfg
        local = getattr(critic, "local", None)
        if local is None or cfg.local_critic_lr_factor == cfg.critic_lr_factor:
            return [(list(critic.parameters()), cfg.critic_lr_factor)]
        return [(list(critic.patch.parameters()), cfg.critic_lr_factor), (list(local.parameters()), cfg.local_critic_lr_factor)]

    def set_lr(self, lr: float, names: Iterable[str] | None = None) -> None:
        """The generators' learning rate; each critic group gets it x its factor (_critic_parts)."""
        names = self.model.names if names is None else names
        # The factors are derived, not stored in the groups: loading optimizer state replaces the group dicts.
        jobs = [(opt, (1.0,)) for opt in self.optimizers(names, "generator")]
        jobs += [(self.critic_opt[n], [f for _, f in self._critic_parts(n)]) for n in names if n in self.critic_opt]
        for opt, factors in jobs:
            for group, factor in zip(opt.param_groups, factors, strict=True):
                group["lr"] = lr * factor

    # --- per-domain state (what a checkpoint stores for each domain beside its weights) --------
    def domain_state(self, name: str, rank_pools: list[dict] | None = None) -> dict:
        """Optimizer states and image pool(s): everything a domain needs to resume exactly.
        Under torchrun, `rank_pools` holds every rank's pool state (rank 0's is also 'pool')."""
        gen, crit = self.generator_opt.get(name), self.critic_opt.get(name)
        state = {
            "gen_opt": gen.state_dict() if gen else None,
            "dis_opt": crit.state_dict() if crit else None,
            "pool": rank_pools[0] if rank_pools else self.pools[name].state_dict(),
        }
        if rank_pools and len(rank_pools) > 1:
            state["rank_pools"] = rank_pools
        if self.ema is not None and name in self.ema.shadow:
            state["ema"] = self.ema.state(name)
        return state

    def load_domain_state(self, name: str, state: dict) -> bool:
        """Load a domain's training state; returns False when this rank's pool was not saved
        (a run resumed on more ranks than it was saved from: that rank's pool starts empty)."""
        gen, crit = self.generator_opt.get(name), self.critic_opt.get(name)
        if gen is not None and state.get("gen_opt") is not None:
            gen.load_state_dict(state["gen_opt"])
        if crit is not None and state.get("dis_opt") is not None:
            crit.load_state_dict(state["dis_opt"])
        if self.ema is not None and name in self.ema.shadow and state.get("ema") is not None:
            self.ema.load_state(name, state["ema"])  # else (train.ema switched on at a resume): it starts now
        pools = state.get("rank_pools") or [state["pool"]]
        if self.rank < len(pools):
            self.pools[name].load_state_dict(pools[self.rank], next(self.model.parameters()).device)
            return True
        return False

    def pool_states(self) -> dict[str, dict]:
        """This process's pool state per trainable domain (gathered from every rank for a checkpoint)."""
        return {n: self.pools[n].state_dict() for n in self.trainable}
