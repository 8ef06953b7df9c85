import pytest

from combogan.training.schedule import Schedule


def test_paper_is_100_epochs_per_domain_half_constant_half_decay():
    s = Schedule.for_domains([120, 80, 100, 95], batch_size=4, epochs_per_domain=100, epochs=0, decay_fraction=0.5)
    assert s.iters_per_epoch == 30  # ceil(max count / batch)
    assert s.total_epochs == 400
    assert s.total_iters == 12_000
    assert s.constant_iters == s.decay_iters == 6_000
    assert s.lr_factor(0) == 1.0 and s.lr_factor(5_999) == 1.0
    assert s.lr_factor(6_000) == 1.0 and s.lr_factor(9_000) == pytest.approx(0.5)
    assert 0 < s.lr_factor(11_999) < 1e-3
    assert s.lr_factor(12_000) == 0.0  # decays to exactly 0


def test_cyclegan_n2_is_200_epochs():
    s = Schedule.for_domains([1000, 1000], batch_size=1, epochs_per_domain=100, epochs=0, decay_fraction=0.5)
    assert s.total_epochs == 200 and s.constant_iters == 100 * 1000


def test_explicit_total_and_monotone():
    s = Schedule.for_domains([7, 5], batch_size=2, epochs_per_domain=100, epochs=10, decay_fraction=0.3)
    assert s.iters_per_epoch == 4 and s.total_iters == 40 and s.decay_iters == 12
    factors = [s.lr_factor(i) for i in range(41)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))
    assert s.epoch(20) == 5.0

