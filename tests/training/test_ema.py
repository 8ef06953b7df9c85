"""train.ema: a bias-corrected average of each domain's generator weights, used for inference,
saved per domain, exact across a resume, untouched for frozen domains."""

import torch
from conftest import Trainee, split_and_straight, tiny_config

from combogan.apps.train import add_domains
from combogan.apps.translator import Translator
from combogan.config import TrainConfig
from combogan.runs import checkpoint
from combogan.training.ema import WeightAverage


def test_bias_corrected_average_of_the_updates():
    t = Trainee(("a", "b"), pool_size=0)
    avg = WeightAverage(t.model, 0.9)
    avg.add("a")
    assert avg.weights("a") is None  # nothing to average yet: inference keeps the live weights
    seen = []
    for k in range(3):
        with torch.no_grad():
            for p in t.model.generator_parameters("a"):
                p.add_(0.1 * (k + 1))
        seen.append([p.detach().clone() for p in t.model.generator_parameters("a")])
        avg.update(["a", "b"])  # b is not tracked: ignored
    w = [0.9**2 * 0.1, 0.9 * 0.1, 0.1]
    want = [sum(wk * s[i] for wk, s in zip(w, seen)) / (1 - 0.9**3) for i in range(len(seen[0]))]
    got = avg.weights("a")
    keys = [f"encoder.{k}" for k, _ in t.model.encoders["a"].named_parameters()] + [f"decoder.{k}" for k, _ in t.model.decoders["a"].named_parameters()]
    for key, value in zip(keys, want):
        torch.testing.assert_close(got[key], value)
    assert avg.count == {"a": 3}


def test_runs_translate_with_the_average_and_resume_exactly(seasons, tmp_path):
    cfg = tiny_config("train.ema=0.9", "train.checkpoint_every=2")
    split_and_straight(seasons, cfg, tmp_path, 4, 6)
    a, b = checkpoint.latest(tmp_path / "split"), checkpoint.latest(tmp_path / "straight")
    averaged_domains = [n for n, files in a.domains.items() if "ema" in files]
    assert len(averaged_domains) >= 2  # the others were never drawn in 6 steps: no average yet
    for name in averaged_domains:
        wa = checkpoint.load_weights(a.file(tmp_path / "split", name, "ema"))
        wb = checkpoint.load_weights(b.file(tmp_path / "straight", name, "ema"))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name  # the same process twice: bit for bit
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    src, dst = averaged_domains[:2]
    averaged = Translator(tmp_path / "split", device="cpu", weights="average").translate(x, src, dst)
    live, _ = checkpoint.load_model(tmp_path / "split", weights="live")
    assert not torch.equal(averaged, live.translate(x, src, dst))
    # add-domain: the old domains' averages are neither updated nor rewritten
    before = {n: f["ema"] for n, f in checkpoint.latest(tmp_path / "split").domains.items() if "ema" in f}
    add_domains(tmp_path / "split", {"snow": seasons / "train" / "winter"}, existing_data=seasons, max_iters=2, device="cpu", quiet=True)
    after = checkpoint.latest(tmp_path / "split").domains
    assert {n: after[n]["ema"] for n in before} == before and "ema" in after["snow"]


def test_the_default_is_recorded_so_old_runs_keep_their_meaning(tmp_path):
    """A config saved before train.ema existed reads as ema off, whatever the default is."""
    from combogan.config import saved

    assert saved({"train": {"lr": 0.0002}}, "old").train.ema == 0.0
    assert saved({"model": {"ngf": 8}}, "old").model.upsample == "transpose"
    assert TrainConfig(ema=0.5).ema == 0.5
