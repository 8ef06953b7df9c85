import copy

import pytest
import torch

from combogan.config import LossConfig, TrainConfig
from combogan.errors import UserError
from combogan.registry import DomainRegistry
from combogan.step import train_step
from conftest import tiny_model


def _registry(names=("a", "b", "c", "d")):
    reg = DomainRegistry(tiny_model(), TrainConfig(pool_size=4))
    for n in names:
        reg.add(n)
    return reg


def _batch(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 32, 32, generator=g) * 2 - 1


def test_names_in_insertion_order_and_state_keyed_by_name():
    reg = _registry(("winter", "autumn", "spring"))
    assert reg.names == ["winter", "autumn", "spring"]
    assert all(k.split(".")[1] in reg.names for k in reg.state_dict())


def test_unknown_and_duplicate_names():
    reg = _registry()
    with pytest.raises(UserError, match="unknown domain 'mars'.*a, b, c, d"):
        reg["mars"]
    with pytest.raises(UserError, match="already exists"):
        reg.add("a")


def test_domains_get_different_initialisations():
    reg = _registry(("painter_01", "painter_02"))
    w1 = next(reg["painter_01"].encoder.parameters())
    w2 = next(reg["painter_02"].encoder.parameters())
    assert not torch.equal(w1, w2)


def test_step_only_touches_the_sampled_pair():
    reg = _registry()
    train_step(reg, ("c", "d"), _batch(0), _batch(1), LossConfig())  # c, d get optimizer state
    before_nets = {n: copy.deepcopy(reg.nets_state(n)) for n in reg.names}
    before_opt = {n: copy.deepcopy(reg.train_state(n)) for n in ("c", "d")}
    train_step(reg, ("a", "b"), _batch(2), _batch(3), LossConfig())
    for n in ("c", "d"):
        after = reg.nets_state(n)
        assert all(torch.equal(before_nets[n][k], after[k]) for k in after), f"{n} weights changed"
        opt = reg.train_state(n)
        for kind in ("gen_opt", "dis_opt"):
            for pid, st in opt[kind]["state"].items():
                for key, val in st.items():
                    assert torch.equal(val, before_opt[n][kind]["state"][pid][key]), f"{n} {kind} state changed"
        assert len(reg[n].pool) == len(before_opt[n]["pool"]["images"])
    for n in ("a", "b"):
        after = reg.nets_state(n)
        assert any(not torch.equal(before_nets[n][k], after[k]) for k in after), f"{n} did not train"


def test_frozen_domain_passes_gradients_but_never_changes():
    reg = _registry(("old", "new"))
    reg.freeze("old")
    before = copy.deepcopy(reg.nets_state("old"))
    new_before = copy.deepcopy(reg.nets_state("new"))
    for s in range(3):
        train_step(reg, ("new", "old") if s % 2 else ("old", "new"), _batch(s), _batch(s + 10), LossConfig())
    assert all(torch.equal(before[k], v) for k, v in reg.nets_state("old").items())
    assert any(not torch.equal(new_before[k], v) for k, v in reg.nets_state("new").items())
    assert reg.trainable == ["new"]
