import pytest
import torch

from combogan.config import ModelConfig
from combogan.model.generator import Decoder, Encoder
from combogan.model.outputs import COLOUR_GAIN


def test_a_recolour_mask_decoder_blends_what_it_draws_with_its_recoloured_source():
    """model.output 'recolour_mask': m·tanh(drawn) + (1 - m)·tanh(A·atanh(source) + b), m the
    sigmoid of one more drawn channel, per pixel."""
    cfg = ModelConfig(n_downsampling=1, ngf=8, n_blocks=2, output="recolour_mask")
    dec, enc = Decoder(cfg), Encoder(cfg)
    assert dec.net[-1].out_channels == 4
    x = torch.rand(2, 3, 12, 16, generator=torch.Generator().manual_seed(0)) * 1.9 - 0.95
    z = enc(x)
    permute = torch.tensor([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=torch.float) - torch.eye(3)
    colour = dec.output.colour
    with torch.no_grad():
        dec.net[-1].weight.zero_()
        dec.net[-1].bias.copy_(torch.tensor([0.0, 0.0, 0.0, -30.0]))  # a fresh colour map (zero) returns the source
        torch.testing.assert_close(dec(z, x), x, rtol=0, atol=1e-5)
        # [A - I | b] row by row: output red <- blue, green <- red, blue <- green, each + 0.1
        colour.bias.copy_(torch.cat([permute, torch.full((3, 1), 0.1)], 1).flatten() / COLOUR_GAIN)
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
        colour.weight.normal_()  # the map is per image, from the latent
        torch.testing.assert_close(dec(z, x)[1:], dec(z[1:], x[1:]))
    with pytest.raises(ValueError, match="'recolour_mask' decoder needs the source image"):
        dec(z)
