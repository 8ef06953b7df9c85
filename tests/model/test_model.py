"""The model object: domains by name, translation, per-domain weights; and the training state
beside it (optimizers, pools, frozen flags): a step touches only the sampled pair."""

import copy

import pytest
import torch
from conftest import Trainee, tiny_model

from combogan.config import LossConfig, ModelConfig
from combogan.errors import UserError
from combogan.model import weights
from combogan.model.combogan import ComboGAN


def _batch(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 32, 32, generator=g) * 2 - 1


def test_names_in_insertion_order_and_state_keyed_by_name():
    model = ComboGAN(tiny_model(), ("winter", "autumn", "spring"))
    assert model.names == ["winter", "autumn", "spring"]
    assert all(k.split(".")[1] in model.names for k in model.state_dict())
    assert set(model.domain_state("autumn")) == {f"{p}.{k}" for p in ("encoder", "decoder", "discriminator")
                                                 for k in model.parts("autumn")[p].state_dict()}


def test_unknown_and_duplicate_names():
    model = ComboGAN(tiny_model(), "abcd")
    with pytest.raises(UserError, match="unknown domain 'mars'.*a, b, c, d"):
        model.translate(_batch(0), "a", "mars")
    with pytest.raises(UserError, match="already exists"):
        model.add_domain("a")
    with pytest.raises(UserError, match="invalid domain name"):
        model.add_domain("a/b")


def test_domains_get_their_own_initialisation_whatever_else_exists():
    one = ComboGAN(tiny_model(), ("painter_01", "painter_02"))
    other = ComboGAN(tiny_model(), ("painter_02",))
    assert not torch.equal(next(one.encoders["painter_01"].parameters()), next(one.encoders["painter_02"].parameters()))
    assert all(torch.equal(v, other.domain_state("painter_02")[k]) for k, v in one.domain_state("painter_02").items())


def test_translate_encodes_once_and_takes_any_size():
    model = ComboGAN(tiny_model(), "abc").eval()
    x = torch.rand(1, 3, 5, 3) * 2 - 1  # smaller than the generator's minimum: padded, cropped back
    outs = model.translate(x, "a", ["b", "c"])
    assert set(outs) == {"b", "c"} and all(o.shape == x.shape for o in outs.values())
    with torch.no_grad():
        z = model.encode(torch.nn.functional.pad(x, (0, 5, 0, 3), mode="replicate"), "a")
        torch.testing.assert_close(outs["b"], model.decode(z, "b")[..., :5, :3])
    torch.testing.assert_close(model.translate(x, "a", "c"), outs["c"])


def test_flip_average_is_the_mean_with_the_mirror_and_mirror_symmetric():
    model = ComboGAN(tiny_model(), "abc").eval()
    x = torch.rand(2, 3, 8, 12) * 2 - 1
    mirrored = model.translate(x.flip(-1), "a", "b").flip(-1)
    plain = model.translate(x, "a", "b")
    assert (plain - mirrored).abs().max() > 1e-3  # a random generator is not mirror-symmetric ...
    avg = model.translate(x, "a", "b", flip_average=True)
    torch.testing.assert_close(avg, (plain + mirrored) / 2)
    # ... the average is: mirroring the input mirrors the output
    torch.testing.assert_close(model.translate(x.flip(-1), "a", "b", flip_average=True), avg.flip(-1))
    many = model.translate(x, "a", ["b", "c"], flip_average=True)
    torch.testing.assert_close(many["b"], avg)
    torch.testing.assert_close(many["c"], model.translate(x, "a", "c", flip_average=True))


def test_domain_weights_round_trip_through_a_file(tmp_path):
    model = ComboGAN(ModelConfig(n_downsampling=1, ngf=4, ndf=4, n_blocks=2, norm="batch", output="image"), ["summer"])
    weights.save_domain(tmp_path / "summer.safetensors", "summer", model.domain_state("summer"), model.arch)
    name, arch, state = weights.load_domain(tmp_path / "summer.safetensors")
    assert (name, arch) == ("summer", model.arch)
    fresh = ComboGAN(arch, ["summer"], seed=5)
    fresh.load_domain_state("summer", state)
    assert all(torch.equal(v, model.domain_state("summer")[k]) for k, v in fresh.domain_state("summer").items())
    wrong = ComboGAN(tiny_model(), ["summer"])
    with pytest.raises(UserError, match="do not match the run's architecture"):
        wrong.load_domain_state("summer", state)


def test_step_only_touches_the_sampled_pair():
    t = Trainee("abcd", pool_size=4)
    t.step(("c", "d"), _batch(0), _batch(1))  # c, d get optimizer state
    before_nets = {n: copy.deepcopy(t.model.domain_state(n)) for n in t.model.names}
    before_opt = {n: copy.deepcopy(t.state.domain_state(n)) for n in ("c", "d")}
    t.step(("a", "b"), _batch(2), _batch(3), LossConfig())
    for n in ("c", "d"):
        after = t.model.domain_state(n)
        assert all(torch.equal(before_nets[n][k], after[k]) for k in after), f"{n} weights changed"
        opt = t.state.domain_state(n)
        for kind in ("gen_opt", "dis_opt"):
            for pid, st in opt[kind]["state"].items():
                for key, val in st.items():
                    assert torch.equal(val, before_opt[n][kind]["state"][pid][key]), f"{n} {kind} state changed"
        assert len(t.state.pools[n]) == len(before_opt[n]["pool"]["images"])
    for n in ("a", "b"):
        after = t.model.domain_state(n)
        assert any(not torch.equal(before_nets[n][k], after[k]) for k in after), f"{n} did not train"


def test_frozen_domain_passes_gradients_but_never_changes():
    t = Trainee(("old", "new"), pool_size=4)
    t.state.freeze("old")
    before = copy.deepcopy(t.model.domain_state("old"))
    new_before = copy.deepcopy(t.model.domain_state("new"))
    for s in range(3):
        t.step(("new", "old") if s % 2 else ("old", "new"), _batch(s), _batch(s + 10))
    assert all(torch.equal(before[k], v) for k, v in t.model.domain_state("old").items())
    assert any(not torch.equal(new_before[k], v) for k, v in t.model.domain_state("new").items())
    assert t.state.trainable == ["new"] and t.state.optimizers(["old", "new"], "generator") == [t.state.generator_opt["new"]]
