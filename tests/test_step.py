"""N = 2 ComboGAN is CycleGAN: the same losses and parameter updates as an independently
written CycleGAN step (the official code's structure: G_A: A->B, D_A judges domain B)."""

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from combogan.config import LossConfig, TrainConfig
from combogan.registry import DomainRegistry
from combogan.step import train_step
from conftest import tiny_model


def reference_cyclegan_step(G_A, G_B, D_A, D_B, opt_G, opt_D, pool_A, pool_B, real_A, real_B, lam):
    mse = lambda p, t: F.mse_loss(p, torch.full_like(p, float(t)))  # noqa: E731
    fake_B, fake_A = G_A(real_A), G_B(real_B)
    rec_A, rec_B = G_B(fake_B), G_A(fake_A)
    for p in itertools.chain(D_A.parameters(), D_B.parameters()):
        p.requires_grad_(False)
    opt_G.zero_grad()
    loss_G_A, loss_G_B = mse(D_A(fake_B), 1), mse(D_B(fake_A), 1)
    loss_cycle_A, loss_cycle_B = (rec_A - real_A).abs().mean() * lam, (rec_B - real_B).abs().mean() * lam
    (loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B).backward()
    opt_G.step()
    for p in itertools.chain(D_A.parameters(), D_B.parameters()):
        p.requires_grad_(True)
    opt_D.zero_grad()
    loss_D_A = 0.5 * (mse(D_A(real_B), 1) + mse(D_A(pool_B.query(fake_B.detach())), 0))
    loss_D_A.backward()
    loss_D_B = 0.5 * (mse(D_B(real_A), 1) + mse(D_B(pool_A.query(fake_A.detach())), 0))
    loss_D_B.backward()
    opt_D.step()
    return {"G_A": loss_G_A, "G_B": loss_G_B, "cycle_A": loss_cycle_A, "cycle_B": loss_cycle_B, "D_A": loss_D_A, "D_B": loss_D_B}


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def test_n2_combogan_equals_reference_cyclegan(float64):
    torch.manual_seed(0)
    reg = DomainRegistry(tiny_model(), TrainConfig(pool_size=3))
    reg.add("horse"), reg.add("zebra")
    a, b = reg["horse"], reg["zebra"]
    G_A = nn.Sequential(copy.deepcopy(a.encoder), copy.deepcopy(b.decoder))
    G_B = nn.Sequential(copy.deepcopy(b.encoder), copy.deepcopy(a.decoder))
    D_A, D_B = copy.deepcopy(b.discriminator), copy.deepcopy(a.discriminator)
    # Plain Adam on both sides: fused Adam differs in the last bits, which Adam magnifies on the
    # conv biases before InstanceNorm (their true gradient is 0, so only rounding noise is left).
    reg.use_fused_adam(False)
    opt_G = torch.optim.Adam(itertools.chain(G_A.parameters(), G_B.parameters()), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(itertools.chain(D_A.parameters(), D_B.parameters()), lr=2e-4, betas=(0.5, 0.999))
    pool_A, pool_B = copy.deepcopy(a.pool), copy.deepcopy(b.pool)

    g = torch.Generator().manual_seed(1)
    for step in range(5):  # pool fills at step 2, so pooled fakes are exercised too
        real_A = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
        real_B = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
        ref = reference_cyclegan_step(G_A, G_B, D_A, D_B, opt_G, opt_D, pool_A, pool_B, real_A, real_B, 10.0)
        # ComboGAN draws either order; the step must not care which side is first.
        if step % 2 == 0:
            got = train_step(reg, ("horse", "zebra"), real_A, real_B, LossConfig())
        else:
            got = train_step(reg, ("zebra", "horse"), real_B, real_A, LossConfig())
        pairs = {"G_gan/zebra": "G_A", "G_gan/horse": "G_B", "cycle/horse": "cycle_A", "cycle/zebra": "cycle_B", "D/zebra": "D_A", "D/horse": "D_B"}
        for mine, theirs in pairs.items():
            assert got[mine].item() == pytest.approx(ref[theirs].item(), rel=1e-9, abs=1e-12), (step, mine)
    for mine, theirs in [(a.encoder, G_A[0]), (b.decoder, G_A[1]), (b.encoder, G_B[0]), (a.decoder, G_B[1]), (b.discriminator, D_A), (a.discriminator, D_B)]:
        for p, q in zip(mine.parameters(), theirs.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12)


def test_identity_and_latent_terms_and_nan_guard():
    reg = DomainRegistry(tiny_model(), TrainConfig(pool_size=0))
    reg.add("a"), reg.add("b")
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    out = train_step(reg, ("a", "b"), x, y, LossConfig(lambda_identity=0.5, lambda_latent=1.0))
    assert {"idt/a", "idt/b", "latent/a", "latent/b"} <= set(out)
    before = copy.deepcopy(reg.nets_state("a"))
    bad = train_step(reg, ("a", "b"), x * float("nan"), y, LossConfig())
    assert "skipped" in bad
    assert all(torch.equal(before[k], v) for k, v in reg.nets_state("a").items())  # NaN step changed nothing


def test_vanilla_gan_mode_runs():
    reg = DomainRegistry(tiny_model(), TrainConfig(pool_size=0))
    reg.add("a"), reg.add("b")
    out = train_step(reg, ("a", "b"), torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32), LossConfig(gan_mode="vanilla"))
    assert torch.isfinite(out["G_total"])
