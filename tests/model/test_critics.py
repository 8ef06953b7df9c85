import dataclasses

import torch

from combogan.config import LossConfig, ModelConfig, TrainConfig
from combogan.model.combogan import ComboGAN
from combogan.model.critics import PatchGAN, PatchGANWithLocal, build_critic
from combogan.model.layers import count_parameters
from combogan.model.losses import gan_loss, map_loss
from combogan.model.official.networks import TwoViewCritic
from combogan.training.state import TrainState
from combogan.training.step import Step


def test_critics_are_chosen_by_name_and_judge_with_weighted_maps():
    cfg = ModelConfig(n_downsampling=1, ngf=8, ndf=8, n_blocks=2, output="image")
    [(w_patch, patch), (w_local, local)] = build_critic(cfg)(torch.randn(1, 3, 256, 256))
    assert (w_patch, w_local) == (0.5, 0.5)
    assert patch.shape == (1, 1, 30, 30)  # 70x70 PatchGAN map
    assert local.shape == (1, 1, 126, 126)  # the default local critic's 16x16 patches
    [(weight, single)] = build_critic(dataclasses.replace(cfg, n_layers_d_local=0))(torch.randn(1, 3, 256, 256))
    assert weight == 1.0 and single.shape == (1, 1, 30, 30)
    assert isinstance(build_critic(dataclasses.replace(cfg, discriminator="two_view", n_layers_d_local=0)), TwoViewCritic)


def _trains_both(cfg: ModelConfig, parts: tuple[str, ...]) -> None:
    model = ComboGAN(cfg, ["a", "b"])
    state = TrainState(model, TrainConfig(pool_size=0))
    for n in model.names:
        state.add(n)
    before = {k: v.clone() for k, v in model.discriminators["b"].state_dict().items()}
    out = Step(model, state, LossConfig())(("a", "b"), torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1)
    assert {"D/a", "D/b", "G_gan/a", "G_gan/b"} <= set(out) and all(torch.isfinite(v) for v in out.values())
    after = model.discriminators["b"].state_dict()
    for part in parts:
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part))


def test_a_local_critic_judges_beside_the_patchgan_and_both_losses_count_equally():
    """model.n_layers_d_local: a shallower PatchGAN on the same image; the GAN loss is the plain
    mean of the two critics' losses, and one step trains both."""
    cfg = ModelConfig(n_downsampling=1, ngf=8, ndf=8, n_blocks=2, n_layers_d_local=1, output="image")
    critic = build_critic(cfg)
    assert isinstance(critic, PatchGANWithLocal)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    [(_, patch), (_, local)] = critic(x)
    # the local critic is a 1-layer PatchGAN (16 px patches: a 14 x 14 map of a 32 px image),
    # the main one the usual 3-layer one, with their own parameters
    torch.testing.assert_close(patch, critic.patch(x)[0][1], rtol=0, atol=0)
    assert local.shape == (2, 1, 14, 14) and patch.shape == (2, 1, 2, 2)
    assert count_parameters(critic) == count_parameters(PatchGAN(cfg)) + count_parameters(PatchGAN(ModelConfig(ndf=8, n_layers_d=1)))
    for mode in ("lsgan", "vanilla"):
        want = 0.5 * (map_loss(patch, True, mode) + map_loss(local, True, mode))
        torch.testing.assert_close(gan_loss(critic(x), True, mode), want, rtol=0, atol=0)
    _trains_both(cfg, ("patch.", "local."))


def test_the_two_view_critic_trains_and_its_scales_are_weighted_as_officially():
    cfg = ModelConfig(n_downsampling=1, ngf=8, ndf=8, n_blocks=2, n_layers_d=3, discriminator="two_view", n_layers_d_local=0, output="image")
    critic = TwoViewCritic(cfg)
    maps = [torch.full((1, 1, 2, 2), v) for v in (0.0, 0.5, 1.0)]
    # official GANLoss: weights 1, 2, 4 (the last one's raised by one), / (n * sum of weights)
    got = gan_loss(list(zip(critic.weights, maps)), True, "lsgan").item()
    assert abs(got - (1 * 1.0 + 2 * 0.25 + 4 * 0.0) / (3 * 7)) < 1e-7
    assert len(critic(torch.rand(1, 3, 32, 32))) == 3
    _trains_both(cfg, ("model_gray.", "model_rgb."))
