"""tools/bench_supervised.py, the paired bound: its training pairs are the same window of one
scene in two seasons, and a step trains the drawn pair's encoders and decoders, nothing else."""

import importlib.util
from pathlib import Path

import torch

from combogan.config import load
from combogan.data.sampler import PairSampler
from combogan.model.combogan import ComboGAN

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_supervised", ROOT / "tools" / "bench_supervised.py")
bench_supervised = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_supervised)


def test_crops_and_flips_are_aligned_across_seasons():
    src = torch.arange(3 * 20 * 24, dtype=torch.float32).reshape(3, 20, 24)
    scene = {"summer": src, "winter": src * 2 + 1}
    for seed in range(20):
        x, y = bench_supervised.aligned_crop(scene, "summer", "winter", 8, True, seed)
        assert x.shape == y.shape == (1, 3, 8, 8)
        torch.testing.assert_close(y, x * 2 + 1)


def test_scenes_come_in_every_season():
    scenes = bench_supervised.render(5, 2, 32, seed=0)
    assert [sorted(s) for s in scenes] == [sorted(bench_supervised.SEASONS)] * 2
    assert not torch.equal(scenes[0]["summer"], scenes[1]["summer"])
    assert not torch.equal(scenes[0]["summer"], scenes[0]["winter"])


def test_one_step_updates_the_drawn_pairs_generators_only():
    cfg = load(None, ["model.ngf=8", "model.n_blocks=2", "data.crop_size=16", "model.n_layers_d=1"])
    torch.manual_seed(0)
    model = ComboGAN(cfg.model, bench_supervised.SEASONS, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bench_supervised.train(model, bench_supervised.render(0, 2, 16, seed=0), cfg, 1, seed=1)
    changed = {k.split(".")[0] + "." + k.split(".")[1] for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    drawn = {d for part in changed for d in bench_supervised.SEASONS if part.endswith("." + d)}
    assert drawn == set(PairSampler(list(bench_supervised.SEASONS), 1).pair(0))  # both directions of training's first pair
    assert changed == {f"{net}.{d}" for net in ("encoders", "decoders") for d in drawn}
