"""Everything one training loop needs, decided before it starts, and the one path that builds it
for `train` (every domain of a dataset) and `add-domain` (new domains beside frozen ones).

Nothing here writes a file: a session can be refused (bad flags, a damaged checkpoint, a
setting that cannot work here) before the run directory is touched.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import Config, ModelConfig
from ..data.sampler import PairSampler
from ..errors import UserError
from ..model.combogan import ComboGAN
from ..runs import checkpoint
from . import distributed
from .distributed import Dist
from .schedule import Schedule
from .state import TrainState


@dataclass
class TrainResult:
    run: Path
    step: int
    total_iters: int
    interrupted: bool = False
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Session:
    run: Path
    cfg: Config
    model: ComboGAN
    state: TrainState
    files: dict[str, list[Path]]  # domain -> train files (every domain the sampler can draw)
    samples: dict[str, list[Path]]  # domain -> files to show in progress grids
    pairs: PairSampler
    schedule: Schedule
    start: int
    stop: int
    manifest: dict[str, Any]
    previous: checkpoint.CheckpointIndex | None
    quiet: bool = False
    offset: int = 0  # global step of local step 0 (add-domain continues the run's count)
    dist: Dist | None = None  # set under torchrun; only rank 0 writes files

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def is_main(self) -> bool:
        return self.dist is None or self.dist.is_main


@dataclass
class Domain:
    """One domain of a session: its images, the seed its fresh networks are drawn from, and
    whether it is frozen (add-domain's existing domains)."""

    name: str
    files: list[Path]
    samples: list[Path]
    seed: int
    frozen: bool = False


def restore_rng(trainer: dict[str, Any]) -> None:
    if "rng_cpu" in trainer:
        torch.set_rng_state(trainer["rng_cpu"])
    if "rng_cuda" in trainer and torch.cuda.is_available():
        states = trainer["rng_cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def trainer_state(bad_steps: int, elapsed: float) -> dict[str, Any]:
    state = {"bad_steps": bad_steps, "elapsed": elapsed, "rng_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    return state


def _trainees(arch: ModelConfig, cfg: Config, domains: list[Domain], dist: Dist | None, device: torch.device) -> tuple[ComboGAN, TrainState]:
    model = ComboGAN(arch)
    for d in domains:
        model.add_domain(d.name, d.seed)
    model.to(device)
    state = TrainState(model, cfg.train, rank=dist.rank if dist else 0)
    for d in domains:
        if d.frozen:
            state.freeze(d.name)
        else:
            state.add(d.name, d.seed)
    return model, state


def open_session(run: Path, cfg: Config, arch: ModelConfig, domains: list[Domain], pairs: PairSampler, manifest: dict[str, Any], *,
                 previous: checkpoint.CheckpointIndex | None = None, resume: bool = False, offset: int = 0,
                 device: str = "auto", max_iters: int | None = None, quiet: bool = False) -> Session:
    """Networks and training state for `domains`; from `previous`, every domain and its training
    state with the RNG (resume), or only the frozen domains' weights (a new add-domain). The
    schedule counts the trainable domains' images; an epoch is a pass over the whole dataset by
    all ranks together (global batch = world x batch)."""
    if max_iters is not None and max_iters < 0:
        raise UserError("--max-iters must be >= 0")
    dist, dev, world = distributed.join(device)
    quiet = quiet or (dist is not None and not dist.is_main)
    model, state = _trainees(arch, cfg, domains, dist, dev)
    start = 0
    if previous is not None:
        old = [d.name for d in domains if d.frozen]
        trainer = checkpoint.load_into(run, previous, model, state if resume else None, names=None if resume else old)
        if resume:
            restore_rng(trainer)
            start = previous.step - offset
    trainable, frozen = [d for d in domains if not d.frozen], [d for d in domains if d.frozen]
    schedule = Schedule.for_domains([len(d.files) for d in trainable], cfg.data.batch_size * world, cfg.train.epochs_per_domain,
                                    cfg.train.epochs, cfg.train.decay_fraction, cfg.train.iters)
    stop = schedule.total_iters if max_iters is None else min(max_iters, schedule.total_iters)
    if start > stop and not quiet:
        print(f"note: the run is already at step {offset + start}, past --max-iters {stop}", file=sys.stderr)
    # The data streams are numbered trainable domains first (what the sampler's draws index).
    files, samples = {d.name: d.files for d in trainable + frozen}, {d.name: d.samples for d in trainable + frozen}
    return Session(run, cfg, model, state, files, samples, pairs, schedule, start, max(start, stop), manifest, previous, quiet,
                   offset=offset, dist=dist)
