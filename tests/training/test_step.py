"""N = 2 ComboGAN is CycleGAN: the same losses and parameter updates as a CycleGAN step written
here independently, in the official code's structure (G_A: A->B, D_A judges domain B), with its
own plain nn.Sequential ResNet generator and PatchGAN (weights copied in order), in float64."""

import copy
import dataclasses
import itertools
from types import SimpleNamespace

import pytest
import torch
from conftest import PAPER, Trainee, tiny_model
from reference_cyclegan import RefPool, biases_before_instancenorm, copy_in_order, ref_generator, ref_patchgan, reference_cyclegan_step

from combogan.config import LossConfig


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
    # Plain Adam on both sides (fused Adam rounds differently in the last bits): the state's default.
    opt_G = torch.optim.Adam(itertools.chain(G_A.parameters(), G_B.parameters()), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(itertools.chain(D_A.parameters(), D_B.parameters()), lr=2e-4, betas=(0.5, 0.999))
    pool_A, pool_B = (RefPool(3, t.state.pools[n].generator.get_state()) for n in ("horse", "zebra"))
    loss = dataclasses.replace(PAPER.loss, lambda_identity=lambda_identity)  # the paper's losses, whatever the defaults

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
            for m in ours:  # encoder then decoder, or the critic (its one weighted map)
                out = m(out)
            out = out[0][1] if isinstance(out, list) else out
            torch.testing.assert_close(out, ref_net(x), rtol=1e-9, atol=1e-12)


def test_identity_term_and_nan_guard():
    t = Trainee(("a", "b"), pool_size=0)
    m = t.model
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():  # G_B->A(a) ~ a: the translation *into* a leaves an a image alone, x lambda_cycle x 0.5
        want = {"idt/a": 5 * (m.decode(m.encode(x, "b"), "a") - x).abs().mean(), "idt/b": 5 * (m.decode(m.encode(y, "a"), "b") - y).abs().mean()}
    out = t.step(("a", "b"), x, y, LossConfig(lambda_identity=0.5))
    for k, v in want.items():
        assert out[k].item() == pytest.approx(v.item(), rel=1e-5), k
    assert "idt/a" not in t.step(("a", "b"), x, y, LossConfig(lambda_identity=0.0))
    before = copy.deepcopy(t.model.domain_state("a"))
    bad = t.step(("a", "b"), x * float("nan"), y, LossConfig())
    assert "skipped" in bad
    assert all(torch.equal(before[k], v) for k, v in t.model.domain_state("a").items())  # NaN step changed nothing


def test_vanilla_gan_mode_runs():
    t = Trainee(("a", "b"), pool_size=0)
    out = t.step(("a", "b"), torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32), LossConfig(gan_mode="vanilla"))
    assert torch.isfinite(out["G_total"])


def test_recolour_decoders_recolour_the_image_their_latent_came_from():
    """model.output 'recolour_mask': the translation recolours the real image, the cycle's way
    back the fake, the identity term the real image it maps into its own domain."""
    t = Trainee(("a", "b"), model=tiny_model(output="recolour_mask"), pool_size=0)
    m = t.model
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(1, 3, 32, 32, generator=g) * 2 - 1, torch.rand(1, 3, 32, 32, generator=g) * 2 - 1
    with torch.no_grad():
        for name in "ab":  # a colour map that is not the identity, so that which image is recoloured matters
            m.decoders[name].output.colour.bias.normal_(0, 0.02, generator=g)
        fake_b = m.decode(m.encode(x, "a"), "b", x)
        want = {"cycle/a": 10 * (m.decode(m.encode(fake_b, "b"), "a", fake_b) - x).abs().mean(),
                "idt/a": 5 * (m.decode(m.encode(x, "b"), "a", x) - x).abs().mean()}
    colour = m.decoders["b"].output.colour.weight.detach().clone()
    got = t.step(("a", "b"), x, y, LossConfig(lambda_identity=0.5))
    for k, v in want.items():
        assert got[k].item() == pytest.approx(v.item(), rel=1e-5), k
    assert not torch.equal(colour, m.decoders["b"].output.colour.weight)  # the colour map learns


@pytest.mark.parametrize("output", ["image", "recolour_mask"])
def test_cycle_forward_grad_stops_only_the_cycles_gradient_into_the_translation(output):
    """loss.cycle_forward_grad: the cycle a -> b -> a keeps its value; the translation's networks
    (enc_a, dec_b) get its gradient only when true, the way back's (enc_b, dec_a) always all of it."""
    from combogan.training.step import direction

    t = Trainee(("a", "b"), model=tiny_model(output=output), pool_size=0)
    m = t.model
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 32, 32, generator=g) * 2 - 1
    if output != "image":
        with torch.no_grad():  # a colour map that is not the identity: the source image then matters
            for name in "ab":
                m.decoders[name].output.colour.bias.normal_(0, 0.02, generator=g)
    forward = [*m.encoders["a"].parameters(), *m.decoders["b"].parameters()]
    back = [*m.encoders["b"].parameters(), *m.decoders["a"].parameters()]

    def cycle_grads(flows):
        terms, _ = direction(m, "a", "b", x, LossConfig(cycle_forward_grad=flows))
        grads = torch.autograd.grad(terms["cycle/a"], forward + back, allow_unused=True)
        flat = [torch.zeros_like(p) if gr is None else gr for p, gr in zip(forward + back, grads)]
        return terms["cycle/a"].detach(), flat[:len(forward)], flat[len(forward):]

    value, fwd_full, back_full = cycle_grads(True)
    assert sum(gr.abs().sum() for gr in fwd_full) > 0
    v, fwd, bk = cycle_grads(False)
    assert torch.equal(v, value)
    assert all(gr.abs().sum() == 0 for gr in fwd)
    for got, full in zip(bk, back_full):
        torch.testing.assert_close(got, full, rtol=1e-4, atol=1e-9)


def test_runs_saved_before_cycle_forward_grad_keep_the_whole_cycle():
    """A config saved before the option existed reads as true (what those runs trained with),
    one saved with 0.0 or 1.0 (combogan 0.2's number) as false or true; a share in between, which
    no longer exists, is refused with one line."""
    from combogan.config import load, saved
    from combogan.errors import UserError

    assert saved({"loss": {"lambda_cycle": 10.0}}, "old").loss.cycle_forward_grad is True
    assert saved({"loss": {"cycle_forward_grad": 0.0}}, "old").loss.cycle_forward_grad is False
    assert saved({"loss": {"cycle_forward_grad": 1.0}}, "old").loss.cycle_forward_grad is True
    with pytest.raises(UserError, match=r"loss.cycle_forward_grad=0.5, an option removed in combogan 0.3"):
        saved({"loss": {"cycle_forward_grad": 0.5}}, "old")
    assert load(None).loss.cycle_forward_grad is False
