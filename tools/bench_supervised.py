"""What the architecture can reach with ground truth: a bound for the quality benchmark.

    python tools/bench_supervised.py --config configs/quality_bench.yaml --iters 4000

The synthetic seasons render any scene in every season, so unlike real data they give paired
training images. This trains the config's per-domain encoders and decoders on such pairs with
the paired L1 alone (no critics, no cycle), each iteration an ordered pair of domains in both
directions with aligned crops and flips, the config's Adam and learning-rate schedule, and scores
the test scenes as tools/bench_quality.py does. No unpaired method can be expected to beat it at
the same size: the gap between the two is what better unpaired training could still win, pair by
pair. Prints one JSON line; with --regions, also the error split by part of the scene
(tools/error_regions.py, which splits a trained run's the same way).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
import torch
from combogan.domains.alps_seasons.synth import SEASONS, render_all

from combogan.apps.metrics import paired_scores
from combogan.config import Config, load
from combogan.data.images import random_crop_flip, to_model_range
from combogan.data.sampler import PairSampler
from combogan.model.combogan import ComboGAN
from combogan.training.schedule import Schedule


def _tensor(img: np.ndarray) -> torch.Tensor:
    return to_model_range(torch.from_numpy(img.copy()).permute(2, 0, 1))


def render(first_id: int, count: int, size: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Scenes first_id … first_id + count − 1, each in every season."""
    return [{s: _tensor(v) for s, v in render_all(first_id + i, size, SEASONS, seed).items()} for i in range(count)]


def aligned_crop(scene: dict[str, torch.Tensor], src: str, dst: str, crop: int, flip: bool,
                 seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random crop (and flip) of the scene in two seasons, as (1, 3, crop, crop) batches:
    training's random_crop_flip, which is a pure function of its seed, with one seed for both."""
    x, y = (random_crop_flip(scene[d], crop, flip, seed)[None] for d in (src, dst))
    return x, y


def train(model: ComboGAN, scenes: list[dict[str, torch.Tensor]], cfg: Config, iters: int, seed: int) -> None:
    """iters steps of the paired L1 on the generators (the critics are not used)."""
    rng = np.random.default_rng(seed)
    params = [p for name in SEASONS for p in model.generator_parameters(name)]
    opt = torch.optim.Adam(params, lr=cfg.train.lr, betas=(cfg.train.beta1, cfg.train.beta2))
    schedule = Schedule(1, iters, cfg.train.decay_fraction)
    pairs = PairSampler(list(SEASONS), seed)  # the pairs combogan's training draws
    for step in range(iters):
        for group in opt.param_groups:
            group["lr"] = cfg.train.lr * schedule.lr_factor(step)
        a, b = pairs.pair(step)
        loss = torch.zeros(())
        for src, dst in ((a, b), (b, a)):
            x, y = aligned_crop(scenes[int(rng.integers(len(scenes)))], src, dst, cfg.data.crop_size, cfg.data.flip,
                                int(rng.integers(2**63)))
            loss = loss + (model.decode(model.encode(x, src), dst, x) - y).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@torch.no_grad()
def score(model: ComboGAN, scenes: list[dict[str, torch.Tensor]]) -> dict[str, dict[str, float]]:
    """Per ordered pair, the mean paired scores over the test scenes (images in [0, 1])."""
    model.eval()
    out = {}
    for a, b in itertools.permutations(SEASONS, 2):
        rows = [paired_scores((model.translate(s[a][None], a, b) + 1) / 2, (s[b][None] + 1) / 2) for s in scenes]
        out[f"{a}->{b}"] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=72, help="synthetic image side")
    p.add_argument("--train", type=int, default=100, help="training scenes, each rendered in every season")
    p.add_argument("--test", type=int, default=12, help="ground-truth test scenes (the quality benchmark's)")
    p.add_argument("--iters", type=int, required=True)
    p.add_argument("--config", default="configs/quality_bench.yaml")
    p.add_argument("--seed", type=int, default=0, help="initialisation, pairs, crops")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic dataset")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    p.add_argument("--regions", action="store_true", help="also split the error by part of the scene (tools/error_regions.py)")
    args = p.parse_args()

    cfg = load(args.config, args.overrides)
    torch.manual_seed(args.seed)
    model = ComboGAN(cfg.model, SEASONS, seed=args.seed)
    # The benchmark's test scenes are ids 0 … test − 1; training scenes follow them.
    test, scenes = render(0, args.test, args.size, args.data_seed), render(args.test, args.train, args.size, args.data_seed)
    t0 = time.perf_counter()
    train(model, scenes, cfg, args.iters, args.seed)
    wall = time.perf_counter() - t0
    pairs = score(model, test)
    regions = None
    if args.regions:
        from error_regions import breakdown  # tools/, beside this script

        regions = breakdown(model.translate, args.size, args.test, args.data_seed)["parts"]
    print(json.dumps({
        "iters": args.iters, "wall_s": round(wall, 1), "threads": torch.get_num_threads(), "size": args.size,
        "crop": cfg.data.crop_size, "config": args.config, "overrides": args.overrides, "seed": args.seed,
        "data_seed": args.data_seed,
        **{m: round(float(np.mean([s[m] for s in pairs.values()])), 4) for m in ("l1", "psnr", "ssim", "edges")},
        "pairs": {k: round(s["l1"], 4) for k, s in pairs.items()},
        **({"regions": regions} if regions else {}),
    }))


if __name__ == "__main__":
    main()
