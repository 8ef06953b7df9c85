import torch

from combogan.training.pool import ImagePool


def test_fills_then_returns_inputs_while_filling():
    pool = ImagePool(4, seed=0)
    x = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(x), x)
    assert len(pool) == 4


def test_after_full_returns_mix_of_history_and_new():
    pool = ImagePool(50, seed=1)
    pool.query(-torch.arange(1.0, 51.0).view(50, 1, 1, 1))  # fill with distinct negatives
    x = torch.arange(1.0, 201.0).view(200, 1, 1, 1)
    out = pool.query(x)
    swapped = (out != x).flatten()
    assert 65 < swapped.sum().item() < 135  # each is swapped with probability 1/2
    seen = set((-torch.arange(1.0, 51.0)).tolist()) | set(x.flatten().tolist())
    assert set(out.flatten().tolist()) <= seen  # only ever returns stored or given images
    for i in torch.nonzero(swapped).flatten().tolist():  # a history image is older than the query
        assert out[i].item() < 0 or out[i].item() < x[i].item()
    assert len(pool) == 50  # never grows past its size


def test_size_zero_passes_through():
    pool = ImagePool(0)
    x = torch.randn(3, 3, 4, 4)
    assert pool.query(x) is x


def test_seeded_and_state_round_trip():
    a, b = ImagePool(5, seed=7), ImagePool(5, seed=7)
    data = [torch.randn(2, 3, 4, 4) for _ in range(8)]
    for x in data[:4]:
        assert torch.equal(a.query(x), b.query(x))  # same seed, same choices
    c = ImagePool(1, seed=99)
    c.load_state_dict(a.state_dict())  # contents and generator state travel
    for x in data[4:]:
        expected = a.query(x)
        assert torch.equal(c.query(x), expected)
        assert torch.equal(b.query(x), expected)
