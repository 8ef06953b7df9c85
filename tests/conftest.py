"""Shared tiny fixtures: everything here runs in seconds on 2 CPU cores."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from combogan.config import Config, ModelConfig, TrainConfig, load

TINY_SET = [
    "model.ngf=8", "model.ndf=8", "model.n_blocks=2", "data.load_size=36", "data.crop_size=32",
    "data.batch_size=2", "data.num_workers=0", "train.log_every=1", "train.sample_every=1000", "train.checkpoint_every=1000",
]


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def tiny_config(*extra: str) -> Config:
    return load(None, TINY_SET + list(extra))


def tiny_model() -> ModelConfig:
    return ModelConfig(ngf=8, ndf=8, n_blocks=2)


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
    from combogan.trainer import train

    run = tmp_path_factory.mktemp("runs") / "seasons"
    train(seasons, tiny_config(), run=run, device="cpu", max_iters=6, quiet=True)
    return run


@torch.no_grad()
def network_outputs(registry, size: int = 32) -> dict[str, torch.Tensor]:
    """Every domain's networks as functions: outputs on fixed inputs (enc_a -> dec_b for every
    ordered pair including a == b, and each critic), for comparing two registries."""
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(12345)) * 2 - 1
    x = x.to(next(registry.parameters()).device)
    out = {}
    for a in registry.names:
        z = registry[a].encoder(x)
        for b in registry.names:
            out[f"{a}->{b}"] = registry[b].decoder(z)
        out[f"D/{a}"] = registry[a].discriminator(x)
    return out


def assert_same_functions(reg1, reg2, rtol: float, atol: float) -> None:
    o1, o2 = network_outputs(reg1), network_outputs(reg2)
    assert o1.keys() == o2.keys()
    for k in o1:
        torch.testing.assert_close(o1[k], o2[k], rtol=rtol, atol=atol, msg=lambda m, k=k: f"{k}: {m}")


__all__ = ["tiny_config", "tiny_model", "TrainConfig", "assert_same_functions", "network_outputs"]
