import torch
from conftest import PAPER

from combogan.config import ModelConfig
from combogan.model.combogan import ComboGAN
from combogan.model.critics import build_critic
from combogan.model.generator import Decoder, Encoder
from combogan.model.layers import count_parameters


def test_paper_parameter_counts():
    counts = ComboGAN(PAPER.model, ["x"]).parameter_counts()["x"]  # ngf=64, ndf=64, n_blocks=9
    assert counts["encoder"] + counts["decoder"] == 11_378_179
    assert counts["discriminator"] == 2_764_737
    assert count_parameters(build_critic(PAPER.model)) == 2_764_737


def test_blocks_split_between_encoder_and_decoder():
    cfg = ModelConfig(n_downsampling=1, ngf=8, n_blocks=5, output="image")
    enc_blocks = sum(type(m).__name__ == "ResnetBlock" for m in Encoder(cfg).modules())
    dec_blocks = sum(type(m).__name__ == "ResnetBlock" for m in Decoder(cfg).modules())
    assert (enc_blocks, dec_blocks) == (2, 3)


def test_shapes():
    cfg = ModelConfig(ngf=8, ndf=8, n_blocks=2, n_downsampling=2, output="image")
    x = torch.randn(2, 3, 32, 48)
    z = Encoder(cfg)(x)
    assert z.shape == (2, 32, 8, 12)  # 4*ngf channels at 1/4 resolution
    y = Decoder(cfg)(z)
    assert y.shape == x.shape and y.abs().max() <= 1.0  # tanh range


def test_downsampling_stages():
    for k, side in ((0, 9), (1, 30), (2, 28), (3, 40)):
        cfg = ModelConfig(ngf=8, ndf=8, n_blocks=2, n_downsampling=k, output="image")
        z = Encoder(cfg)(torch.randn(1, 3, 32, 48))
        assert z.shape == (1, 8 * 2**k, 32 // 2**k, 48 // 2**k)
        assert Decoder(cfg)(z).shape == (1, 3, 32, 48)
        # translation pads to the multiple the stages need, whatever the size
        assert ComboGAN(cfg, ["a", "b"]).translate(torch.randn(1, 3, side + 3, side - 5), "a", "b").shape == (1, 3, side + 3, side - 5)


def test_init_is_normal_002():
    nets = ComboGAN(ModelConfig(n_downsampling=1, ngf=16, ndf=16, n_blocks=2, output="image"), ["x"])
    w = torch.cat([m.weight.flatten() for m in nets.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.mean().item()) < 0.002 and 0.018 < w.std().item() < 0.022


def test_batch_norm_and_dropout_options():
    nets = ComboGAN(ModelConfig(n_downsampling=1, ngf=8, ndf=8, n_blocks=2, norm="batch", dropout=0.5, output="image"), ["x"])
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in nets.modules())
    assert any(isinstance(m, torch.nn.Dropout) for m in nets.modules())


def test_upsampling_layers():
    """nearest: resize + 3x3 conv, no transposed convolution, the parameter count of the 3x3
    transposed convolution it replaces; transpose4 (official ComboGAN) also maps H to 2H."""
    shapes = {}
    for mode in ("nearest", "transpose", "transpose4"):
        cfg = ModelConfig(n_downsampling=1, ngf=8, n_blocks=2, upsample=mode, output="image")
        dec = Decoder(cfg)
        assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in dec.modules()) == (mode != "nearest")
        shapes[mode] = dec(Encoder(cfg)(torch.randn(1, 3, 20, 36))).shape
    assert set(shapes.values()) == {(1, 3, 20, 36)}
    assert count_parameters(Decoder(ModelConfig(n_downsampling=1, ngf=8, n_blocks=2, output="image"))) == count_parameters(Decoder(ModelConfig(n_downsampling=1, ngf=8, n_blocks=2, upsample="transpose", output="image")))


def test_image_decoders_have_no_output_parameters():
    """The paper's output adds nothing to the decoder: its state_dict keys are the official ones."""
    dec = Decoder(ModelConfig(n_downsampling=1, ngf=8, n_blocks=2, output="image"))
    assert all(k.startswith("net.") for k in dec.state_dict())


def test_recolour_mask_weights_saved_before_the_output_classes_load():
    """combogan 0.2 kept the colour head on the decoder ('colour.*'); such weights still load."""
    cfg = ModelConfig(n_downsampling=1, ngf=8, n_blocks=2, output="recolour_mask")
    dec = Decoder(cfg)
    with torch.no_grad():
        dec.output.colour.weight.normal_()
    old = {k.replace("output.colour.", "colour."): v.clone() for k, v in dec.state_dict().items()}
    assert "colour.weight" in old
    fresh = Decoder(cfg)
    fresh.load_state_dict(old)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), dec.state_dict().values()))
