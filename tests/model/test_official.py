from pathlib import Path

import torch
from reference_combogan import official_two_view_reference

from combogan.config import ModelConfig
from combogan.model.official.networks import TwoViewCritic, blur_kernel


def test_the_two_view_critic_is_the_official_one():
    """The official file loads with its own keys, and the critic computes what the official one does."""
    state = torch.load(Path(__file__).parents[1] / "fixtures/official_combogan/1_net_D0.pth", weights_only=True)
    critic = TwoViewCritic(ModelConfig(ndf=8, n_layers_d=4))
    critic.load_state_dict(state)  # strict: every official key and shape
    x = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1
    got, want = critic(x), official_two_view_reference(state, x, 4)
    assert len(got) == len(want) == 4
    for (_, g), w in zip(got, want):
        torch.testing.assert_close(g[:, 0], w, rtol=0, atol=1e-5)
    torch.testing.assert_close(blur_kernel()[2], torch.tensor([0.0400122867, 0.0400874772, 0.040133203, 0.0400874772, 0.0400122867]))
