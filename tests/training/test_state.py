"""TrainState: per-domain optimizers beside the model."""

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
