"""train.diffaugment: the critics judge shifted and occluded images (real and fake alike), the
transforms are differentiable, a pure function of (seed, rank, step, domain, role), so threads
and resumes do not change them."""

import pytest
import torch
from conftest import Trainee, split_and_straight, tiny_config

from combogan.accel import plan as perf
from combogan.config import ModelConfig, PerfConfig, TrainConfig
from combogan.errors import UserError
from combogan.runs import checkpoint
from combogan.training.augment import CriticAugment, cutout, translate
from combogan.training.state import TrainState


def test_translation_shifts_with_zero_fill_and_passes_gradients():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16).requires_grad_(True)
    y = translate(x, torch.Generator().manual_seed(4))
    assert y.shape == x.shape
    for i in range(2):  # each image is x shifted by some (dy, dx) with |d| <= 2, zeros elsewhere
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(y[i], torch.roll(x[i], (dy, dx), (1, 2)) * _inside(16, dy, dx))]
        assert len(found) == 1
    y.sum().backward()
    assert x.grad is not None and set(x.grad.unique().tolist()) <= {0.0, 1.0}


def _inside(n: int, dy: int, dx: int) -> torch.Tensor:
    rows = (torch.arange(n) - dy >= 0) & (torch.arange(n) - dy < n)
    cols = (torch.arange(n) - dx >= 0) & (torch.arange(n) - dx < n)
    return (rows[:, None] & cols[None, :]).float()


def test_cutout_zeroes_one_half_size_square():
    x = torch.ones(64, 3, 16, 16)
    y = cutout(x, torch.Generator().manual_seed(0))
    zeros = (y[:, 0] == 0).sum(dim=(1, 2))
    assert (zeros <= 64).all() and (zeros > 0).all() and (zeros == 64).any()  # 8x8, clipped at the borders
    for img in y[:, 0]:
        rows, cols = (img == 0).any(1).nonzero().flatten(), (img == 0).any(0).nonzero().flatten()
        assert (img[rows.min():rows.max() + 1, cols.min():cols.max() + 1] == 0).all()  # one rectangle


def test_transforms_are_a_function_of_step_domain_and_role():
    aug = CriticAugment(("translation", "cutout"), seed=0)
    x = torch.rand(2, 3, 16, 16)
    first = aug(x, "winter", "real")
    assert torch.equal(first, aug(x, "winter", "real"))  # no hidden state: the same call, the same draw
    assert not torch.equal(first, aug(x, "summer", "real")) and not torch.equal(first, aug(x, "winter", "pooled"))
    aug.step = 1
    assert not torch.equal(first, aug(x, "winter", "real"))
    other_rank = CriticAugment(("translation", "cutout"), seed=0, rank=1)
    other_rank.step = 1
    assert not torch.equal(aug(x, "winter", "real"), other_rank(x, "winter", "real"))  # ranks draw their own


def test_the_step_feeds_the_critics_augmented_images(monkeypatch):
    t = Trainee(("a", "b"), pool_size=0)
    t.state = TrainState(t.model, TrainConfig(pool_size=0, diffaugment="translation,cutout"))
    for n in t.model.names:
        t.state.add(n)
    seen = []
    for name, d in t.model.discriminators.items():
        d.register_forward_pre_hook(lambda m, args, name=name: seen.append((name, args[0].detach().clone())))
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    out = t.step(("a", "b"), x, y)
    assert {"D/a", "D/b"} <= set(out)
    assert len(seen) == 6  # G: D_b(fake_b), D_a(fake_a); D: real and pooled fake for each
    reals = [img for name, img in seen[2:] if any(torch.equal(img, r) for r in (x, y))]
    assert reals == []  # not one image reached a critic untransformed
    assert all((img == 0).any() for _, img in seen)  # cutout (and the shift's fill) left zeros


def test_training_with_diffaugment_resumes_exactly_and_refuses_cuda_graphs(seasons, tmp_path):
    cfg = tiny_config("train.diffaugment=translation,cutout", "train.checkpoint_every=2")
    split, straight = split_and_straight(seasons, cfg, tmp_path, 3, 5)
    a, b = checkpoint.latest(split), checkpoint.latest(straight)
    for name in a.domains:
        wa, wb = checkpoint.load_weights(a.file(split, name, "nets")), checkpoint.load_weights(b.file(straight, name, "nets"))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name  # the same process twice: bit for bit
    with pytest.raises(UserError, match="train.diffaugment draws new transforms every step"):
        perf.plan(PerfConfig(cuda_graphs="on"), ModelConfig(), torch.device("cuda"), augmented=True)
