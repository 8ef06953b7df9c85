import dataclasses

import pytest
import torch
from conftest import PAPER
from reference_combogan import official_two_view_reference

from combogan.config import ModelConfig
from combogan.model.combogan import ComboGAN
from combogan.model.networks import Decoder, Discriminator, Encoder, count_parameters


def test_paper_parameter_counts():
    counts = ComboGAN(PAPER.model, ["x"]).parameter_counts()["x"]  # ngf=64, ndf=64, n_blocks=9
    assert counts["encoder"] + counts["decoder"] == 11_378_179
    assert counts["discriminator"] == 2_764_737
    assert count_parameters(Discriminator(PAPER.model)) == 2_764_737


def test_blocks_split_between_encoder_and_decoder():
    cfg = ModelConfig(ngf=8, n_blocks=5)
    enc_blocks = sum(type(m).__name__ == "ResnetBlock" for m in Encoder(cfg).modules())
    dec_blocks = sum(type(m).__name__ == "ResnetBlock" for m in Decoder(cfg).modules())
    assert (enc_blocks, dec_blocks) == (2, 3)


def test_shapes():
    cfg = ModelConfig(ngf=8, ndf=8, n_blocks=2, n_downsampling=2)
    x = torch.randn(2, 3, 32, 48)
    z = Encoder(cfg)(x)
    assert z.shape == (2, 32, 8, 12)  # 4*ngf channels at 1/4 resolution
    y = Decoder(cfg)(z)
    assert y.shape == x.shape and y.abs().max() <= 1.0  # tanh range
    maps = Discriminator(cfg)(torch.randn(1, 3, 256, 256))
    assert maps["patch"].shape == (1, 1, 30, 30)  # 70x70 PatchGAN map
    assert maps["local"].shape == (1, 1, 126, 126)  # the default local critic's 16x16 patches
    assert Discriminator(dataclasses.replace(cfg, n_layers_d_local=0))(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_downsampling_stages():
    for k, side in ((0, 9), (1, 30), (2, 28), (3, 40)):
        cfg = ModelConfig(ngf=8, ndf=8, n_blocks=2, n_downsampling=k)
        z = Encoder(cfg)(torch.randn(1, 3, 32, 48))
        assert z.shape == (1, 8 * 2**k, 32 // 2**k, 48 // 2**k)
        assert Decoder(cfg)(z).shape == (1, 3, 32, 48)
        # translation pads to the multiple the stages need, whatever the size
        assert ComboGAN(cfg, ["a", "b"]).translate(torch.randn(1, 3, side + 3, side - 5), "a", "b").shape == (1, 3, side + 3, side - 5)


def test_init_is_normal_002():
    nets = ComboGAN(ModelConfig(ngf=16, ndf=16, n_blocks=2), ["x"])
    w = torch.cat([m.weight.flatten() for m in nets.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.mean().item()) < 0.002 and 0.018 < w.std().item() < 0.022


def test_batch_norm_and_dropout_options():
    nets = ComboGAN(ModelConfig(ngf=8, ndf=8, n_blocks=2, norm="batch", dropout=0.5), ["x"])
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in nets.modules())
    assert any(isinstance(m, torch.nn.Dropout) for m in nets.modules())


def test_resize_convolution_upsampling_has_no_transposed_convolutions():
    for mode in ("nearest", "bilinear"):
        cfg = ModelConfig(ngf=8, n_blocks=2, upsample=mode)
        dec = Decoder(cfg)
        assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in dec.modules())
        assert dec(Encoder(cfg)(torch.randn(1, 3, 20, 36))).shape == (1, 3, 20, 36)
        # same parameter count as the 3x3 transposed convolution it replaces
        assert count_parameters(dec) == count_parameters(Decoder(ModelConfig(ngf=8, n_blocks=2, upsample="transpose")))


def test_two_view_critic_is_the_official_one():
    """The official file loads with its own keys, and the critic computes what the official one does."""
    from pathlib import Path

    from combogan.model.networks import TwoViewDiscriminator, blur_kernel

    state = torch.load(Path(__file__).parents[1] / "fixtures/official_combogan/1_net_D0.pth", weights_only=True)
    critic = TwoViewDiscriminator(ModelConfig(ndf=8, n_layers_d=4))
    critic.load_state_dict(state)  # strict: every official key and shape
    x = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1
    got, want = critic(x), official_two_view_reference(state, x, 4)
    assert len(got) == len(want) == 4
    for g, w in zip(got, want):
        torch.testing.assert_close(g[:, 0], w, rtol=0, atol=1e-5)
    torch.testing.assert_close(blur_kernel()[2], torch.tensor([0.0400122867, 0.0400874772, 0.040133203, 0.0400874772, 0.0400122867]))


def test_two_view_critic_trains_and_its_scales_are_weighted_as_officially():
    from combogan.model.losses import gan_loss

    maps = [torch.full((1, 1, 2, 2), v) for v in (0.0, 0.5, 1.0)]
    # official GANLoss: weights 1, 2, 4 (the last one's raised by one), / (n * sum of weights)
    assert gan_loss(maps, True, "lsgan").item() == torch.tensor((1 * 1.0 + 2 * 0.25 + 4 * 0.0) / (3 * 7)).item()
    cfg = ModelConfig(ngf=8, ndf=8, n_blocks=2, discriminator="two_view")
    model = ComboGAN(cfg, ["a", "b"])
    assert isinstance(model.discriminators["a"], Discriminator(cfg).__class__) and count_parameters(model.discriminators["a"]) > 0
    from combogan.config import LossConfig, TrainConfig
    from combogan.training.state import TrainState
    from combogan.training.step import Step

    state = TrainState(model, TrainConfig(pool_size=0))
    for n in model.names:
        state.add(n)
    before = {k: v.clone() for k, v in model.discriminators["b"].state_dict().items()}
    out = Step(model, state, LossConfig())(("a", "b"), torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1)
    assert {"D/a", "D/b", "G_gan/a", "G_gan/b"} <= set(out) and all(torch.isfinite(v) for v in out.values())
    assert any(not torch.equal(before[k], v) for k, v in model.discriminators["b"].state_dict().items())


def test_spectral_norm_bounds_every_critic_convolution_and_round_trips():
    for kind in ("patchgan", "two_view"):
        cfg = ModelConfig(ngf=8, ndf=8, n_blocks=2, discriminator=kind, spectral_norm=True)
        model = ComboGAN(cfg, ["a"])
        convs = [m for m in model.discriminators["a"].modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
        model.train()
        x = torch.rand(1, 3, 32, 32)
        for _ in range(30):  # power iterations run in training forwards
            model.discriminators["a"](x)
        for m in convs:
            assert torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item() < 1.05
        copy = ComboGAN(cfg, ["a"], seed=1)
        copy.load_domain_state("a", model.domain_state("a"))
        model.eval(), copy.eval()
        assert all(torch.equal(p, q) for p, q in zip(_maps(model, x), _maps(copy, x)))
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in ComboGAN(ModelConfig(ngf=8, ndf=8, n_blocks=2), ["a"]).modules())


def _maps(model: ComboGAN, x: torch.Tensor) -> list[torch.Tensor]:
    out = model.discriminators["a"](x)
    return list(out.values()) if isinstance(out, dict) else out if isinstance(out, list) else [out]


def test_a_recolour_decoder_maps_its_source_colours_and_adds_what_it_draws():
    from combogan.model.networks import COLOUR_GAIN

    cfg = ModelConfig(ngf=8, n_blocks=2, output="recolour")
    dec, enc = Decoder(cfg), Encoder(cfg)
    x = torch.rand(2, 3, 12, 16, generator=torch.Generator().manual_seed(0)) * 1.9 - 0.95
    z = enc(x)
    with torch.no_grad():
        dec.net[-1].weight.zero_()  # nothing drawn: a fresh colour map (zero) returns the source
        dec.net[-1].bias.zero_()
        torch.testing.assert_close(dec(z, x), x, rtol=0, atol=1e-6)
        # [A - I | b] row by row: output red <- blue, green <- red, blue <- green, each + 0.1
        permute = torch.tensor([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=torch.float) - torch.eye(3)
        dec.colour.bias.copy_(torch.cat([permute, torch.full((3, 1), 0.1)], 1).flatten() / COLOUR_GAIN)
        torch.testing.assert_close(dec(z, x), torch.tanh(torch.atanh(x)[:, [2, 0, 1]] + 0.1), rtol=0, atol=1e-5)
        dec.net[-1].bias.fill_(0.2)  # what it draws adds inside the tanh
        torch.testing.assert_close(dec(z, x), torch.tanh(torch.atanh(x)[:, [2, 0, 1]] + 0.3), rtol=0, atol=1e-5)
        # the map is per image, from the latent
        dec.colour.weight.normal_()
        y = dec(z, x)
        torch.testing.assert_close(y[1:], dec(z[1:], x[1:]))
    try:
        dec(z)
    except ValueError as exc:
        assert "source image" in str(exc)
    else:
        raise AssertionError("a recolour decoder without its source must refuse")
    # 'image' decoders have no colour map: their weights and state_dict keys are what they were
    assert not any("colour" in k for k in Decoder(ModelConfig(ngf=8, n_blocks=2)).state_dict())


def test_a_recolour_mask_decoder_blends_what_it_draws_with_its_recoloured_source():
    """model.output 'recolour_mask': m·tanh(drawn) + (1 - m)·tanh(A·atanh(source) + b), m the
    sigmoid of one more drawn channel, per pixel."""
    from combogan.model.networks import COLOUR_GAIN

    cfg = ModelConfig(ngf=8, n_blocks=2, output="recolour_mask")
    dec, enc = Decoder(cfg), Encoder(cfg)
    assert dec.net[-1].out_channels == 4
    x = torch.rand(2, 3, 12, 16, generator=torch.Generator().manual_seed(0)) * 1.9 - 0.95
    z = enc(x)
    permute = torch.tensor([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=torch.float) - torch.eye(3)
    with torch.no_grad():
        dec.net[-1].weight.zero_()
        dec.colour.bias.copy_(torch.cat([permute, torch.full((3, 1), 0.1)], 1).flatten() / COLOUR_GAIN)
        recoloured = torch.tanh(torch.atanh(x)[:, [2, 0, 1]] + 0.1)
        dec.net[-1].bias.copy_(torch.tensor([0.3, -0.2, 0.5, -30.0]))  # mask off: the recoloured source, nothing drawn added
        torch.testing.assert_close(dec(z, x), recoloured, rtol=0, atol=1e-5)
        dec.net[-1].bias[-1] = 30.0  # mask on: the drawn image alone
        torch.testing.assert_close(dec(z, x), torch.tanh(torch.tensor([0.3, -0.2, 0.5]))[None, :, None, None].expand_as(x), rtol=0, atol=1e-5)
        dec.net[-1].bias[-1] = 0.0  # half and half
        torch.testing.assert_close(dec(z, x), 0.5 * recoloured + 0.5 * torch.tanh(torch.tensor([0.3, -0.2, 0.5]))[None, :, None, None], rtol=0, atol=1e-5)
        dec.net[-1].weight.normal_(0, 0.1)  # the mask varies per pixel: each pixel is its own blend
        y, d = dec(z, x), dec.net(z)
        m = torch.sigmoid(d[:, 3:])
        assert m.std() > 0.01
        torch.testing.assert_close(y, m * torch.tanh(d[:, :3]) + (1 - m) * recoloured, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="'recolour_mask' decoder needs the source image"):
        dec(z)


def test_a_local_critic_judges_beside_the_patchgan_and_both_losses_count_equally():
    """model.n_layers_d_local: a shallower PatchGAN on the same image; gan_loss is the plain mean
    of the two critics' losses, and one step trains both."""
    from combogan.config import LossConfig, TrainConfig
    from combogan.model.losses import gan_loss
    from combogan.model.networks import PatchGAN
    from combogan.training.state import TrainState
    from combogan.training.step import Step

    cfg = ModelConfig(ngf=8, ndf=8, n_blocks=2, n_layers_d_local=1)
    critic = Discriminator(cfg)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    maps = critic(x)
    assert set(maps) == {"patch", "local"}
    # the local critic is a 1-layer PatchGAN (16 px patches: a 14 x 14 map of a 32 px image),
    # the main one the usual 3-layer one, with their own parameters
    torch.testing.assert_close(maps["patch"], critic.patch(x), rtol=0, atol=0)
    assert maps["local"].shape == (2, 1, 14, 14) and maps["patch"].shape == (2, 1, 2, 2)
    assert count_parameters(critic) == count_parameters(PatchGAN(cfg)) + count_parameters(PatchGAN(ModelConfig(ndf=8, n_layers_d=1)))
    for mode in ("lsgan", "vanilla"):
        want = 0.5 * (gan_loss(maps["patch"], True, mode) + gan_loss(maps["local"], True, mode))
        torch.testing.assert_close(gan_loss(maps, True, mode), want, rtol=0, atol=0)

    model = ComboGAN(cfg, ["a", "b"])
    state = TrainState(model, TrainConfig(pool_size=0))
    for n in model.names:
        state.add(n)
    before = {k: v.clone() for k, v in model.discriminators["b"].state_dict().items()}
    out = Step(model, state, LossConfig())(("a", "b"), torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1)
    assert all(torch.isfinite(v) for v in out.values())
    after = model.discriminators["b"].state_dict()
    for part in ("patch", "local"):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part + "."))
