"""The GAN losses as functions of the critic's output, against their textbook formulas."""

import torch
import torch.nn.functional as F

from combogan.model.losses import discriminator_loss, gan_loss, map_loss

LOGITS = torch.tensor([[-6.0, -1.0], [0.0, 2.5]])


def test_lsgan_is_the_mean_squared_distance_to_the_target():
    assert torch.allclose(map_loss(LOGITS, True, "lsgan"), ((LOGITS - 1) ** 2).mean())
    assert torch.allclose(map_loss(LOGITS, False, "lsgan"), (LOGITS**2).mean())


def test_vanilla_is_binary_cross_entropy_on_logits_and_non_saturating_for_the_generator():
    assert torch.allclose(map_loss(LOGITS, True, "vanilla"), F.softplus(-LOGITS).mean())
    assert torch.allclose(map_loss(LOGITS, False, "vanilla"), F.softplus(LOGITS).mean())
    # The generator's term is -log sigmoid(D(fake)): where the critic is sure a fake is fake
    # (logit -6) the gradient stays near its largest, 1 / n, instead of vanishing (what
    # configs/demo.yaml relies on to keep trees that LSGAN let fade).
    x = LOGITS.clone().requires_grad_(True)
    map_loss(x, True, "vanilla").backward()
    assert -x.grad[0, 0].item() > 0.99 / x.numel()


def test_a_judgement_is_the_weighted_sum_of_its_maps_losses():
    a, b = torch.tensor([0.5, 1.5]), torch.tensor([[-1.0, 3.0]])
    for mode in ("lsgan", "vanilla"):
        assert torch.equal(gan_loss([(1.0, a)], True, mode), map_loss(a, True, mode))
        want = 0.25 * map_loss(a, False, mode) + 0.75 * map_loss(b, False, mode)
        torch.testing.assert_close(gan_loss([(0.25, a), (0.75, b)], False, mode), want, rtol=1e-7, atol=0)


def test_critic_loss_halves_the_sum_of_real_and_fake_terms():
    real, fake = [(1.0, torch.tensor([0.5, 1.5]))], [(1.0, torch.tensor([-0.5, 0.25]))]
    for mode in ("lsgan", "vanilla"):
        expected = 0.5 * (gan_loss(real, True, mode) + gan_loss(fake, False, mode))
        assert torch.equal(discriminator_loss(real, fake, mode), expected)
    r, f = real[0][1], fake[0][1]
    assert torch.allclose(discriminator_loss(real, fake, "lsgan"), 0.5 * (((r - 1) ** 2).mean() + (f**2).mean()))
