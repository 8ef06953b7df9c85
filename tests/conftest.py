"""Shared tiny fixtures: everything here runs in seconds on 2 CPU cores."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from combogan.accel import optim
from combogan.config import Config, LossConfig, ModelConfig, TrainConfig, load
from combogan.model.combogan import ComboGAN
from combogan.training.state import TrainState
from combogan.training.step import Executor, Step

TINY_SET = [
    "model.ngf=8", "model.ndf=8", "model.n_blocks=2", "data.load_size=36", "data.crop_size=32",
    "data.batch_size=2", "data.num_workers=0", "train.log_every=1", "train.sample_every=1000", "train.checkpoint_every=1000",
]


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


# Unit tests of the step, the plans and the networks run the paper (ComboGAN's Alps config:
# relu, transposed convolutions, no identity, no EMA, no critic augmentation), so a reference
# written from the paper applies; tests of the defaults opt in (tiny_config uses the defaults).
PAPER = load(Path(__file__).parents[1] / "configs" / "alps_seasons.yaml")


def tiny_config(*extra: str) -> Config:
    """The defaults (what `combogan train` without a config runs), tiny."""
    return load(None, TINY_SET + list(extra))


def tiny_model(**changes) -> ModelConfig:
    return dataclasses.replace(PAPER.model, ngf=8, ndf=8, n_blocks=2, **changes)


@pytest.fixture(scope="session")
def seasons(tmp_path_factory) -> Path:
    """Synthetic seasons: 4 domains, 10 train images each, 3 ground-truth test scenes, 40 px."""
    from combogan.domains.alps_seasons import synthesize

    root = tmp_path_factory.mktemp("seasons")
    synthesize(root, size=40, train=10, test=3, workers=1)
    return root


@pytest.fixture(scope="session")
def trained_run(seasons, tmp_path_factory) -> Path:
    """A tiny 4-season run trained for a few steps (shared read-only by several tests)."""
    from combogan.apps.train import train

    run = tmp_path_factory.mktemp("runs") / "seasons"
    train(seasons, tiny_config(), run=run, device="cpu", max_iters=6, quiet=True)
    return run


def split_and_straight(data: Path, cfg: Config, tmp_path: Path, stop: int, total: int) -> tuple[Path, Path]:
    """Train `total` iterations twice: interrupted at `stop` and resumed (tmp_path/split), and in
    one go (tmp_path/straight). The same process both times, so they must agree bit for bit."""
    from combogan.apps.train import train

    train(data, cfg, run=tmp_path / "split", device="cpu", max_iters=stop, quiet=True)
    train(data, cfg, run=tmp_path / "split", device="cpu", max_iters=total, resume=True, quiet=True)
    train(data, cfg, run=tmp_path / "straight", device="cpu", max_iters=total, quiet=True)
    return tmp_path / "split", tmp_path / "straight"


class Clock:
    """A clock that moves on by `seconds(reading)` at each reading; the loop reads it once per step."""

    def __init__(self, seconds=lambda reading: 1.0):
        self.now, self.readings, self.seconds = 0.0, 0, seconds

    def __call__(self) -> float:
        value = self.now
        self.now += self.seconds(self.readings)
        self.readings += 1
        return value


def logged_lr(run: Path) -> dict[int, float]:
    """The learning rate each logged step trained with, from the run's TensorBoard files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars("lr")}


class Trainee:
    """A model and its training state, as the tests build them: trainee.step(pair, a, b, loss, run)."""

    def __init__(self, names=("a", "b", "c"), model: ModelConfig | None = None, pool_size: int = 2, device: str = "cpu", seed: int = 0):
        torch.manual_seed(seed)
        self.model = ComboGAN(model or tiny_model(), names).to(device)
        self.state = TrainState(self.model, dataclasses.replace(PAPER.train, pool_size=pool_size))
        for n in names:
            self.state.add(n)
        self.fused = False  # PyTorch's default Adam, as a fresh TrainState has

    def use_fused_adam(self, fused: bool) -> None:
        self.fused = fused
        optim.use_fused_adam(self.state.all_optimizers(), fused)

    def step(self, pair, real_a, real_b, loss: LossConfig = PAPER.loss, run: Executor | None = None) -> dict[str, torch.Tensor]:
        return Step(self.model, self.state, loss, run)(pair, real_a, real_b)

    def load(self, other: Trainee) -> None:
        """`other`'s weights and training state, loaded as a resume loads a checkpoint."""
        for name in other.model.names:
            self.model.load_domain_state(name, other.model.domain_state(name))
            if name not in other.state.frozen:  # deep copy: state_dict() hands out the live moments
                self.state.load_domain_state(name, copy.deepcopy(other.state.domain_state(name)))

    def take_state(self, other: Trainee) -> None:
        """Become `other`'s training state exactly (weights, Adam moments, pools), keeping this
        trainee's own Adam implementation and memory format: one step of each can then be
        compared from identical state."""
        self.load(other)
        optim.use_fused_adam(self.state.all_optimizers(), self.fused)  # loading restored the other's Adam settings
        optim.match_layouts(self.state.all_optimizers())


@torch.no_grad()
def network_outputs(model: ComboGAN, size: int = 32) -> dict[str, torch.Tensor]:
    """Every domain's networks as functions: outputs on fixed inputs (enc_a -> dec_b for every
    ordered pair including a == b, and each critic), for comparing two models."""
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(12345)) * 2 - 1
    x = x.to(next(model.parameters()).device)
    out = {}
    for a in model.names:
        z = model.encoders[a](x)
        for b in model.names:
            out[f"{a}->{b}"] = model.decoders[b](z, x)
        for i, (_, m) in enumerate(model.discriminators[a](x)):  # each of the critic's patch maps
            out[f"D/{a}/{i}"] = m
    return out


def assert_same_functions(m1: ComboGAN, m2: ComboGAN, rtol: float, atol: float) -> None:
    o1, o2 = network_outputs(m1), network_outputs(m2)
    assert o1.keys() == o2.keys()
    for k in o1:
        torch.testing.assert_close(o1[k], o2[k], rtol=rtol, atol=atol, msg=lambda m, k=k: f"{k}: {m}")


__all__ = ["PAPER", "split_and_straight", "tiny_config", "tiny_model", "TrainConfig", "Trainee", "assert_same_functions", "network_outputs"]
