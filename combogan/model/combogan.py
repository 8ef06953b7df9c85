"""The model: per domain name, an encoder, a decoder and a critic (the design's domain registry).

Translation, evaluation, checkpoints, add-domain (and export, serving, import) use only this
object. It holds networks and nothing of training: optimizers, image pools, frozen flags and
the schedule live in combogan.training.state.TrainState.

Networks sit in three nn.ModuleDicts keyed by domain name, so state_dict keys carry names and
never positions. A domain's weights are saved and loaded on their own (`domain_state`), with
the keys encoder.*, decoder.*, discriminator.*; with the architecture beside them
(combogan.model.weights), a file re-creates its networks exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..errors import UserError
from .critics import build_critic
from .generator import Decoder, Encoder
from .layers import count_parameters, init_weights

PARTS = ("encoder", "decoder", "discriminator")
# The smallest side the generator takes: its 7x7 reflection padding needs >= 4 pixels, and after
# the two stride-2 stages InstanceNorm needs more than one value per channel (8 -> 2x2).
MIN_SIDE = 8


def stable_seed(seed: int, name: str) -> int:
    """A per-domain seed from a digest of the name (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:7], "little")


def pad_for_generator(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (bottom/right) to a multiple of `multiple` (ModelConfig.size_multiple) and at least
    MIN_SIDE; return the original size."""
    h, w = x.shape[-2:]
    ph, pw = max(MIN_SIDE, h + (-h) % multiple) - h, max(MIN_SIDE, w + (-w) % multiple) - w
    if ph or pw:
        mode = "reflect" if h > ph and w > pw else "replicate"  # reflection needs pad < side
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


class ComboGAN(nn.Module):
    """ComboGAN(arch, ['summer', 'winter']).translate(x, 'summer', 'winter')."""

    def __init__(self, arch: ModelConfig, domains: Iterable[str] = (), seed: int = 0):
        super().__init__()
        self.arch = arch
        self.encoders = nn.ModuleDict()
        self.decoders = nn.ModuleDict()
        self.discriminators = nn.ModuleDict()
        for name in domains:
            self.add_domain(name, seed)

    # --- membership ---------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.encoders.keys())

    def __contains__(self, name: object) -> bool:
        return name in self.encoders

    def __len__(self) -> int:
        return len(self.encoders)

    def require(self, name: str) -> str:
        """`name`, or the one-line error a user sees for a domain this model does not have."""
        if name not in self.encoders:
            raise UserError(f"unknown domain '{name}'; this run has: {', '.join(self.names)}")
        return name

    def add_domain(self, name: str, seed: int = 0) -> None:
        """Fresh networks for `name`: N(0, 0.02) init drawn from a seed of (seed, name), so a
        domain's initial weights do not depend on which other domains exist or their order."""
        if name in self.encoders:
            raise UserError(f"domain '{name}' already exists in this run")
        if not name or "/" in name or name.startswith("."):
            raise UserError(f"invalid domain name '{name}'")
        device = next(self.parameters()).device if len(self) else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stable_seed(seed, name))
            nets = nn.ModuleDict({"encoder": Encoder(self.arch), "decoder": Decoder(self.arch), "discriminator": build_critic(self.arch)})
            init_weights(nets)
        if device is not None:
            nets.to(device)
        self.encoders[name], self.decoders[name], self.discriminators[name] = nets["encoder"], nets["decoder"], nets["discriminator"]

    def parts(self, name: str) -> dict[str, nn.Module]:
        return {"encoder": self.encoders[name], "decoder": self.decoders[name], "discriminator": self.discriminators[name]}

    def generator_parameters(self, name: str) -> list[nn.Parameter]:
        """The domain's generator half: its encoder's then its decoder's parameters."""
        return [*self.encoders[name].parameters(), *self.decoders[name].parameters()]

    # --- translation --------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        return self.encoders[self.require(domain)](x)

    def decode(self, z: torch.Tensor, domain: str, source: torch.Tensor | None = None) -> torch.Tensor:
        """source: the image z was encoded from (what model.output 'recolour_mask' recolours)."""
        return self.decoders[self.require(domain)](z, source)

    @torch.no_grad()
    def translate(self, x: torch.Tensor, source: str, targets: str | list[str],
                  flip_average: bool = False) -> torch.Tensor | dict[str, torch.Tensor]:
        """x: (B, 3, H, W) in [-1, 1], any H and W (padded to what the generator takes, cropped
        back). One target: its images; a list: {target: images}, encoding x once for all.
        flip_average: the mean of the translations of x and of its mirror image (mirrored back),
        for twice the compute. Generators trained with flip augmentation still learn left-right
        asymmetric artifacts (on the demo: a magenta fringe left of every tree, a green one right
        of it); the mirror's artifacts fall on the other side and the average cancels them."""
        if flip_average:  # two passes, not one of twice the batch: the peak memory stays that of x
            plain, mirrored = self.translate(x, source, targets), self.translate(x.flip(-1), source, targets)
            if isinstance(plain, dict):
                return {t: (plain[t] + mirrored[t].flip(-1)) / 2 for t in plain}
            return (plain + mirrored.flip(-1)) / 2
        padded, (h, w) = pad_for_generator(x, self.arch.size_multiple)
        z = self.encode(padded, source)
        many = not isinstance(targets, str)
        out = {t: self.decode(z, t, padded)[..., :h, :w] for t in (targets if many else [targets])}
        return out if many else out[targets]

    # --- weights, one domain at a time --------------------------------------------------------
    def domain_state(self, name: str) -> dict[str, torch.Tensor]:
        """'encoder.*', 'decoder.*', 'discriminator.*' tensors of one domain, on the CPU."""
        return {f"{part}.{k}": v.detach().cpu() for part, m in self.parts(self.require(name)).items() for k, v in m.state_dict().items()}

    def load_domain_state(self, name: str, state: dict[str, torch.Tensor]) -> None:
        module = nn.ModuleDict(self.parts(self.require(name)))
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserError(f"weights for domain '{name}' do not match the run's architecture: {first}") from None

    def parameter_counts(self) -> dict[str, dict[str, int]]:
        return {n: {part: count_parameters(m) for part, m in self.parts(n).items()} for n in self.names}

    def extra_repr(self) -> str:
        return f"domains={self.names}, arch={self.arch}"
