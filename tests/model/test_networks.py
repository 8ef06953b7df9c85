import torch

from combogan.config import ModelConfig
from combogan.model.combogan import ComboGAN
from combogan.model.networks import Decoder, Discriminator, Encoder, count_parameters


def test_paper_parameter_counts():
    counts = ComboGAN(ModelConfig(), ["x"]).parameter_counts()["x"]  # ngf=64, ndf=64, n_blocks=9
    assert counts["encoder"] + counts["decoder"] == 11_378_179
    assert counts["discriminator"] == 2_764_737
    assert count_parameters(Discriminator(ModelConfig())) == 2_764_737


def test_blocks_split_between_encoder_and_decoder():
    cfg = ModelConfig(ngf=8, n_blocks=5)
    enc_blocks = sum(type(m).__name__ == "ResnetBlock" for m in Encoder(cfg).modules())
    dec_blocks = sum(type(m).__name__ == "ResnetBlock" for m in Decoder(cfg).modules())
    assert (enc_blocks, dec_blocks) == (2, 3)


def test_shapes():
    cfg = ModelConfig(ngf=8, ndf=8, n_blocks=2)
    x = torch.randn(2, 3, 32, 48)
    z = Encoder(cfg)(x)
    assert z.shape == (2, 32, 8, 12)  # 4*ngf channels at 1/4 resolution
    y = Decoder(cfg)(z)
    assert y.shape == x.shape and y.abs().max() <= 1.0  # tanh range
    assert Discriminator(cfg)(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)  # 70x70 PatchGAN map


def test_init_is_normal_002():
    nets = ComboGAN(ModelConfig(ngf=16, ndf=16, n_blocks=2), ["x"])
    w = torch.cat([m.weight.flatten() for m in nets.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.mean().item()) < 0.002 and 0.018 < w.std().item() < 0.022


def test_batch_norm_and_dropout_options():
    nets = ComboGAN(ModelConfig(ngf=8, ndf=8, n_blocks=2, norm="batch", dropout=0.5), ["x"])
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in nets.modules())
    assert any(isinstance(m, torch.nn.Dropout) for m in nets.modules())
