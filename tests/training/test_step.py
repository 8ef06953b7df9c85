"""N = 2 ComboGAN is CycleGAN: the same losses and parameter updates as a CycleGAN step written
here independently, in the official code's structure (G_A: A->B, D_A judges domain B), with its
own plain nn.Sequential ResNet generator and PatchGAN (weights copied in order), in float64."""

import copy
import itertools
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import Trainee, tiny_model
from torch import nn

from combogan.config import LossConfig


# ---- the reference: CycleGAN's ResnetGenerator and NLayerDiscriminator, written out --------------
class RefResBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


def ref_generator(ngf, n_blocks):
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
    for mult in (1, 2):
        layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
    layers += [RefResBlock(ngf * 4) for _ in range(n_blocks)]
    for mult in (4, 2):
        layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1),
                   nn.InstanceNorm2d(ngf * mult // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def ref_patchgan(ndf, n_layers=3):
    layers = [nn.Conv2d(3, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2**n, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2 if n < n_layers else 1, padding=1),
                   nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
    layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
    return nn.Sequential(*layers)


class RefPool:
    """CycleGAN's ImagePool, written out: store until full, then for each image with probability
    1/2 return a random stored one and keep the new one in its place. Its random numbers come
    from a generator seeded like the domain's pool, drawn in the same order (uniforms, then slots)."""

    def __init__(self, size, generator_state):
        self.size, self.images = size, []
        self.g = torch.Generator()
        self.g.set_state(generator_state)

    def query(self, images):
        u = torch.rand(images.shape[0], generator=self.g).tolist()
        slot = torch.randint(0, self.size, (images.shape[0],), generator=self.g).tolist()
        out = []
        for i, image in enumerate(images):
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif u[i] > 0.5:
                out.append(self.images[slot[i]].clone())
                self.images[slot[i]] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)


def copy_in_order(dst: nn.Module, *sources: nn.Module) -> None:
    """Copy parameters by position (the layer order is the architecture's); shapes must agree."""
    theirs = [p for s in sources for p in s.parameters()]
    mine = list(dst.parameters())
    assert [p.shape for p in mine] == [p.shape for p in theirs]
    with torch.no_grad():
        for p, q in zip(mine, theirs):
            p.copy_(q)


def biases_before_instancenorm(net: nn.Module) -> set:
    """The bias of every conv whose next layer is an InstanceNorm (affine=False)."""
    layers = [m for m in net.modules() if not isinstance(m, (nn.Sequential, RefResBlock))]
    return {id(conv.bias) for conv, nxt in zip(layers, layers[1:])
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(nxt, nn.InstanceNorm2d)}


def reference_cyclegan_step(G_A, G_B, D_A, D_B, opt_G, opt_D, pool_A, pool_B, real_A, real_B, lam, lam_idt):
    mse = lambda p, t: F.mse_loss(p, torch.full_like(p, float(t)))  # noqa: E731
    fake_B, fake_A = G_A(real_A), G_B(real_B)
    rec_A, rec_B = G_B(fake_B), G_A(fake_A)
    for p in itertools.chain(D_A.parameters(), D_B.parameters()):
        p.requires_grad_(False)
    opt_G.zero_grad()
    out = {}
    if lam_idt > 0:
        out["idt_A"] = (G_A(real_B) - real_B).abs().mean() * lam * lam_idt
        out["idt_B"] = (G_B(real_A) - real_A).abs().mean() * lam * lam_idt
    out["G_A"], out["G_B"] = mse(D_A(fake_B), 1), mse(D_B(fake_A), 1)
    out["cycle_A"], out["cycle_B"] = (rec_A - real_A).abs().mean() * lam, (rec_B - real_B).abs().mean() * lam
    sum(out.values()).backward()
    opt_G.step()
    for p in itertools.chain(D_A.parameters(), D_B.parameters()):
        p.requires_grad_(True)
    opt_D.zero_grad()
    out["D_A"] = 0.5 * (mse(D_A(real_B), 1) + mse(D_A(pool_B.query(fake_B.detach())), 0))
    out["D_A"].backward()
    out["D_B"] = 0.5 * (mse(D_B(real_A), 1) + mse(D_B(pool_A.query(fake_A.detach())), 0))
    out["D_B"].backward()
    opt_D.step()
    return out


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("lambda_identity", [0.0, 0.5])
def test_n2_combogan_equals_reference_cyclegan(lambda_identity):
    model = tiny_model()
    t = Trainee(("horse", "zebra"), pool_size=3)
    a, b = (SimpleNamespace(**t.model.parts(n)) for n in ("horse", "zebra"))
    G_A, G_B = ref_generator(model.ngf, model.n_blocks), ref_generator(model.ngf, model.n_blocks)
    D_A, D_B = ref_patchgan(model.ndf, model.n_layers_d), ref_patchgan(model.ndf, model.n_layers_d)
    copy_in_order(G_A, a.encoder, b.decoder)  # G_A: horse -> zebra
    copy_in_order(G_B, b.encoder, a.decoder)
    copy_in_order(D_A, b.discriminator)  # D_A judges zebras
    copy_in_order(D_B, a.discriminator)
    # Plain Adam on both sides (fused Adam rounds differently in the last bits).
    t.state.use_fused_adam(False)
    opt_G = torch.optim.Adam(itertools.chain(G_A.parameters(), G_B.parameters()), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(itertools.chain(D_A.parameters(), D_B.parameters()), lr=2e-4, betas=(0.5, 0.999))
    pool_A, pool_B = (RefPool(3, t.state.pools[n].generator.get_state()) for n in ("horse", "zebra"))
    loss = LossConfig(lambda_identity=lambda_identity)

    g = torch.Generator().manual_seed(1)
    names = {"G_gan/zebra": "G_A", "G_gan/horse": "G_B", "cycle/horse": "cycle_A", "cycle/zebra": "cycle_B", "D/zebra": "D_A", "D/horse": "D_B"}
    if lambda_identity:
        names |= {"idt/zebra": "idt_A", "idt/horse": "idt_B"}  # G_A(zebra) ~ zebra
    for step in range(5):  # the pools fill at step 2, so pooled fakes are exercised too
        real_A = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
        real_B = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
        ref = reference_cyclegan_step(G_A, G_B, D_A, D_B, opt_G, opt_D, pool_A, pool_B, real_A, real_B, 10.0, lambda_identity)
        # ComboGAN draws either order; the step must not care which side is first.
        if step % 2 == 0:
            got = t.step(("horse", "zebra"), real_A, real_B, loss)
        else:
            got = t.step(("zebra", "horse"), real_B, real_A, loss)
        assert set(got) == set(names) | {"G_total"}
        for mine, theirs in names.items():
            assert got[mine].item() == pytest.approx(ref[theirs].item(), rel=1e-9, abs=1e-12), (step, mine)
    # Every parameter after Adam, except the conv biases right before an InstanceNorm: no output
    # depends on them, their true gradient is 0, and Adam scales the rounding noise autograd
    # leaves there (1e-15 here, and not even repeatable run to run) into visible steps. Those are
    # checked as what they are: the networks' outputs on fixed inputs.
    mine = [(G_A, (a.encoder, b.decoder)), (G_B, (b.encoder, a.decoder)), (D_A, (b.discriminator,)), (D_B, (a.discriminator,))]
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    for ref_net, ours in mine:
        inert = biases_before_instancenorm(ref_net)
        for p, q in zip(ref_net.parameters(), [p for m in ours for p in m.parameters()], strict=True):
            if id(p) not in inert:
                torch.testing.assert_close(q, p, rtol=1e-9, atol=1e-12)
        with torch.no_grad():
            out = x
            for m in ours:  # encoder then decoder, or the critic
                out = m(out)
            torch.testing.assert_close(out, ref_net(x), rtol=1e-9, atol=1e-12)


def test_combogan_autoencode_and_forward_terms_are_the_official_ones():
    """Official ComboGAN: criterionIdt = SmoothL1(avgpool3/2(y), avgpool3/2(t)), weighted directly."""
    t = Trainee(("a", "b"), pool_size=0)
    m = t.model
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    S = lambda u, v: F.smooth_l1_loss(F.avg_pool2d(u, 3, 2), F.avg_pool2d(v, 3, 2))  # noqa: E731
    with torch.no_grad():
        want = {"autoencode/a": 0.7 * S(m.decode(m.encode(x, "a"), "a"), x), "autoencode/b": 0.7 * S(m.decode(m.encode(y, "b"), "b"), y),
                "forward/a": 0.2 * S(m.decode(m.encode(x, "a"), "b"), x), "forward/b": 0.2 * S(m.decode(m.encode(y, "b"), "a"), y)}
    got = t.step(("a", "b"), x, y, LossConfig(lambda_autoencode=0.7, lambda_forward=0.2))
    for k, v in want.items():
        assert got[k].item() == pytest.approx(v.item(), rel=1e-5), k
    assert "idt/a" not in got  # CycleGAN's identity is its own switch


def test_latent_term_and_nan_guard():
    t = Trainee(("a", "b"), pool_size=0)
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    out = t.step(("a", "b"), x, y, LossConfig(lambda_identity=0.5, lambda_latent=1.0))
    assert {"idt/a", "idt/b", "latent/a", "latent/b"} <= set(out)
    before = copy.deepcopy(t.model.domain_state("a"))
    bad = t.step(("a", "b"), x * float("nan"), y, LossConfig())
    assert "skipped" in bad
    assert all(torch.equal(before[k], v) for k, v in t.model.domain_state("a").items())  # NaN step changed nothing


def test_vanilla_gan_mode_runs():
    t = Trainee(("a", "b"), pool_size=0)
    out = t.step(("a", "b"), torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32), LossConfig(gan_mode="vanilla"))
    assert torch.isfinite(out["G_total"])
