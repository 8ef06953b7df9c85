"""TrainState: per-domain optimizers beside the model."""

import torch
from conftest import Trainee

from combogan.config import TrainConfig
from combogan.training.state import TrainState


def test_critics_take_their_learning_rate_factor():
    t = Trainee(("a", "b"))
    state = TrainState(t.model, TrainConfig(lr=1e-3, critic_lr_factor=0.25))
    for n in t.model.names:
        state.add(n)
    assert state.critic_opt["a"].param_groups[0]["lr"] == 2.5e-4 and state.generator_opt["a"].param_groups[0]["lr"] == 1e-3
    state.set_lr(4e-4, ["a"])
    assert state.critic_opt["a"].param_groups[0]["lr"] == 1e-4 and state.generator_opt["a"].param_groups[0]["lr"] == 4e-4
    assert state.critic_opt["b"].param_groups[0]["lr"] == 2.5e-4  # only the named domains


def test_a_local_critic_takes_its_own_rate_through_the_schedule_and_a_reload():
    from combogan.config import ModelConfig
    from combogan.model.combogan import ComboGAN

    model = ComboGAN(ModelConfig(n_downsampling=1, ngf=8, ndf=8, n_blocks=2, n_layers_d_local=1, output="image"), ["a", "b"])
    state = TrainState(model, TrainConfig(lr=1e-3, critic_lr_factor=0.5, local_critic_lr_factor=2.0))
    for n in model.names:
        state.add(n)
    main, local = state.critic_opt["a"].param_groups
    assert {id(p) for p in local["params"]} == {id(p) for p in model.discriminators["a"].local.parameters()}
    assert len(main["params"]) + len(local["params"]) == len(list(model.discriminators["a"].parameters()))
    assert (main["lr"], local["lr"]) == (5e-4, 2e-3)
    state.set_lr(4e-4, ["a"])
    assert [g["lr"] for g in state.critic_opt["a"].param_groups] == [2e-4, 8e-4]
    # loading optimizer state replaces the group dicts; the rates must survive it
    state.critic_opt["a"].load_state_dict(state.critic_opt["a"].state_dict())
    state.set_lr(1e-4, ["a"])
    assert [g["lr"] for g in state.critic_opt["a"].param_groups] == [5e-5, 2e-4]
    # the same rate for both: one group, as runs saved before the local critic had its own rate
    same = TrainState(model, TrainConfig(critic_lr_factor=0.5, local_critic_lr_factor=0.5))
    same.add("a")
    assert len(same.critic_opt["a"].param_groups) == 1


def test_a_run_with_a_local_critic_at_its_own_rate_resumes_exactly(seasons, tmp_path):
    """Both critics' weights and Adam states come back from a checkpoint, at their own rates."""
    from conftest import split_and_straight, tiny_config

    from combogan.runs import checkpoint

    cfg = tiny_config("model.n_layers_d_local=1", "train.local_critic_lr_factor=2.0", "train.checkpoint_every=2")
    split, straight = split_and_straight(seasons, cfg, tmp_path, 4, 6)
    a, b = checkpoint.latest(split), checkpoint.latest(straight)
    for name in a.domains:
        wa, wb = (checkpoint.load_weights(c.file(run, name, "nets")) for c, run in ((a, split), (b, straight)))
        assert any(k.startswith("discriminator.local.") for k in wa)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
