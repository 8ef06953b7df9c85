"""The domain registry: domain name -> encoder, decoder, discriminator, optimizers, image pool.

Training, translation, checkpoints and add-domain all go through it. Networks sit in an
nn.ModuleDict keyed by name, so a state_dict is keyed by name too and never by position.
Each domain has its own Adam for its generator half and one for its discriminator: Adam is
per-parameter, so this equals one big Adam, but it lets a step touch only the two sampled
domains, lets add-domain leave frozen domains' state untouched, and saves per domain.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from .config import ModelConfig, TrainConfig
from .errors import UserError
from .networks import DomainNets, count_parameters
from .pool import ImagePool


@dataclass
class Domain:
    """A view of one registry entry."""

    name: str
    nets: DomainNets
    gen_opt: torch.optim.Optimizer | None
    dis_opt: torch.optim.Optimizer | None
    pool: ImagePool
    frozen: bool

    @property
    def encoder(self) -> nn.Module:
        return self.nets.encoder

    @property
    def decoder(self) -> nn.Module:
        return self.nets.decoder

    @property
    def discriminator(self) -> nn.Module:
        return self.nets.discriminator


def _stable_seed(seed: int, name: str) -> int:
    # Python's hash() is salted per process; derive per-domain seeds from a digest of the name.
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:7], "little")


def _portable(opt_state: dict) -> dict:
    """A CUDA-graphed run keeps lr as a device tensor and capturable=True; save plain settings so
    the checkpoint loads anywhere (the graphed step re-applies its own on the next run)."""
    for group in opt_state["param_groups"]:  # state_dict() made fresh group dicts: safe to edit
        if isinstance(group.get("lr"), torch.Tensor):
            group["lr"] = float(group["lr"])
        group["capturable"] = False
    return opt_state


class DomainRegistry(nn.Module):
    def __init__(self, arch: ModelConfig, train: TrainConfig | None = None, device: torch.device | str = "cpu", rank: int = 0):
        super().__init__()
        self.rank = rank  # under torchrun each rank keeps (and checkpoints) its own image pools
        self.arch = arch
        self.train_cfg = train or TrainConfig()
        self.device = torch.device(device)
        self.nets = nn.ModuleDict()
        self._gen_opt: dict[str, torch.optim.Optimizer] = {}
        self._dis_opt: dict[str, torch.optim.Optimizer] = {}
        self._pools: dict[str, ImagePool] = {}
        self._frozen: set[str] = set()
        self._fused_adam = True

    # --- membership -----------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.nets.keys())

    def __contains__(self, name: object) -> bool:
        return name in self.nets

    def __len__(self) -> int:
        return len(self.nets)

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return iter(self.nets.keys())

    def __getitem__(self, name: str) -> Domain:
        if name not in self.nets:
            raise UserError(f"unknown domain '{name}'; this run has: {', '.join(self.names)}")
        return Domain(name, self.nets[name], self._gen_opt.get(name), self._dis_opt.get(name), self._pools[name], name in self._frozen)

    def add(self, name: str, seed: int | None = None, with_optimizers: bool = True) -> Domain:
        """Create a fresh domain (N(0, 0.02) init from a per-domain seed) with its own Adams."""
        if name in self.nets:
            raise UserError(f"domain '{name}' already exists in this run")
        if not name or "/" in name or name.startswith("."):
            raise UserError(f"invalid domain name '{name}'")
        seed = self.train_cfg.seed if seed is None else seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_stable_seed(seed, name))
            nets = DomainNets(self.arch)
        self.nets[name] = nets.to(self.device)
        # Per-rank pool seeds (rank 0 keeps the single-process seed): ranks hold different fakes.
        self._pools[name] = ImagePool(self.train_cfg.pool_size, seed=_stable_seed(seed + 1, name if not self.rank else f"{name}@rank{self.rank}"))
        if with_optimizers:
            self._make_optimizers(name)
        return self[name]

    def _make_optimizers(self, name: str) -> None:
        t, nets = self.train_cfg, self.nets[name]
        kw = {"lr": t.lr, "betas": (t.beta1, t.beta2)}
        self._gen_opt[name] = torch.optim.Adam(list(nets.generator_parameters()), **kw)
        self._dis_opt[name] = torch.optim.Adam(list(nets.discriminator.parameters()), **kw)
        self._set_adam_impl(self._gen_opt[name], self._dis_opt[name])

    def use_fused_adam(self, fused: bool) -> None:
        """Fused Adam (one kernel per group; on CPU ~6x faster than foreach) or PyTorch's default.
        Re-applied after loading optimizer state, which would otherwise restore the saved choice."""
        self._fused_adam = fused
        self._set_adam_impl(*self._gen_opt.values(), *self._dis_opt.values())

    def _set_adam_impl(self, *opts: torch.optim.Optimizer) -> None:
        for opt in opts:
            for group in opt.param_groups:
                group["fused"], group["foreach"] = (True, False) if self._fused_adam else (None, None)

    def freeze(self, name: str) -> None:
        """No gradients, no optimizer steps: gradients still flow *through* its nets."""
        self._frozen.add(name)
        for p in self.nets[name].parameters():
            p.requires_grad_(False)
        self._gen_opt.pop(name, None)
        self._dis_opt.pop(name, None)

    def train(self, mode: bool = True) -> "DomainRegistry":
        """Frozen domains stay in eval mode: a fixed function (BatchNorm stats, no dropout)."""
        super().train(mode)
        for name in self._frozen:
            self.nets[name].eval()
        return self

    @property
    def trainable(self) -> list[str]:
        return [n for n in self.names if n not in self._frozen]

    # --- training helpers -----------------------------------------------------------------
    def set_lr(self, lr: float, names: tuple[str, ...] | list[str] | None = None) -> None:
        for name in names or self.names:
            for opt in (self._gen_opt.get(name), self._dis_opt.get(name)):
                if opt is not None:
                    for group in opt.param_groups:
                        if isinstance(group["lr"], torch.Tensor):
                            group["lr"].fill_(lr)  # in place: a captured CUDA graph reads this tensor
                        else:
                            group["lr"] = lr

    def parameter_counts(self) -> dict[str, dict[str, int]]:
        return {
            n: {
                "encoder": count_parameters(self.nets[n].encoder),
                "decoder": count_parameters(self.nets[n].decoder),
                "discriminator": count_parameters(self.nets[n].discriminator),
            }
            for n in self.names
        }

    # --- per-domain state (what a checkpoint stores for each domain) ----------------------
    def nets_state(self, name: str) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.nets[name].state_dict().items()}

    def load_nets_state(self, name: str, state: dict[str, torch.Tensor]) -> None:
        try:
            self.nets[name].load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserError(f"weights for domain '{name}' do not match the run's architecture: {first}") from None

    def train_state(self, name: str, rank_pools: list[dict] | None = None) -> dict:
        """Optimizer states and image pool(s): everything a domain needs to resume exactly.
        Under torchrun, `rank_pools` holds every rank's pool state (rank 0's is also 'pool')."""
        d = self[name]
        state = {
            "gen_opt": _portable(d.gen_opt.state_dict()) if d.gen_opt else None,
            "dis_opt": _portable(d.dis_opt.state_dict()) if d.dis_opt else None,
            "pool": rank_pools[0] if rank_pools else d.pool.state_dict(),
        }
        if rank_pools and len(rank_pools) > 1:
            state["rank_pools"] = rank_pools
        return state

    def load_train_state(self, name: str, state: dict) -> bool:
        """Load a domain's training state; returns False when this rank's pool was not saved
        (a run resumed on more ranks than it was saved from: that rank's pool starts empty)."""
        d = self[name]
        if d.gen_opt is not None and state.get("gen_opt") is not None:
            d.gen_opt.load_state_dict(state["gen_opt"])
        if d.dis_opt is not None and state.get("dis_opt") is not None:
            d.dis_opt.load_state_dict(state["dis_opt"])
        self._set_adam_impl(*(o for o in (d.gen_opt, d.dis_opt) if o is not None))
        pools = state.get("rank_pools") or [state["pool"]]
        if self.rank < len(pools):
            d.pool.load_state_dict(pools[self.rank], self.device)
            return True
        return False

    def pool_states(self) -> dict[str, dict]:
        """This process's pool state per trainable domain (gathered from every rank for a checkpoint)."""
        return {n: self[n].pool.state_dict() for n in self.trainable}
