"""Where a run's paired error lies on the synthetic seasons: per part of the scene, per target.

    python tools/error_regions.py --run /tmp/cg-quality-…/run_seed0 [--weights auto|average|live]

Renders the quality benchmark's test scenes (ids 0 … test − 1 of the dataset seed, every season),
translates each into every other season and splits the mean paired L1 (images in [0, 1], as
`combogan eval` scores) by what each pixel of the true render shows: the objects a season redraws
(trees, the lake, flowers, clouds; where removing them changes the render in some season) and the
bare sky, far ridge, near ridge and meadow around them. For each part: its share of the pixels,
its mean L1 (all targets, then per target season) and its share of the total. Prints one JSON line.
tools/bench_supervised.py --regions prints the same for the ground-truth-trained bound.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from collections.abc import Callable

import numpy as np
import torch
from combogan.domains.alps_seasons.synth import SEASONS, Scene, make_scene, render

Translate = Callable[[torch.Tensor, str, str], torch.Tensor]  # (1, 3, H, W) in [-1, 1], source, target


def regions(scene: Scene, full: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Boolean (H, W) masks of a scene's parts (`full`: its render in every season), one part per
    pixel: an object where removing it changes the render in some season (trees first, then the
    lake, flowers, clouds), else the band of the bare scene it lies in."""
    size = scene.texture.shape[0]

    def redrawn(**without) -> np.ndarray:
        bare = dataclasses.replace(scene, **without)
        return np.any([np.any(full[s] != render(bare, s), -1) for s in SEASONS], 0)

    # A pixel a bare tree shows the lake through in winter is the tree's: each pixel has one part.
    objects, anything = {}, np.zeros((size, size), bool)
    for name, without in (("trees", {"trees": []}), ("lake", {"lake": None}), ("flowers", {"flowers": scene.flowers[:0]}),
                          ("clouds", {"clouds": []})):
        objects[name] = redrawn(**without) & ~anything
        anything |= objects[name]
    ys = np.arange(size)[:, None]
    bands = {"sky": ys < scene.far[None], "far ridge": (ys >= scene.far[None]) & (ys < scene.near[None]),
             "near ridge": (ys >= scene.near[None]) & (ys < scene.horizon[None]), "meadow": ys >= scene.horizon[None]}
    return {**objects, **{f"{k} (bare)": m & ~anything for k, m in bands.items()}}


def breakdown(translate: Translate, size: int = 72, test: int = 12, seed: int = 0) -> dict:
    """The mean paired L1 over every ordered pair and test scene, split by part and target."""
    sums: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], int] = {}
    total, pixels = 0.0, 0
    for i in range(test):
        scene = make_scene(i, size, seed)
        full = {s: render(scene, s) for s in SEASONS}
        masks = regions(scene, full)
        truth = {s: torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255 for s, img in full.items()}
        for a, b in itertools.permutations(SEASONS, 2):
            with torch.no_grad():
                out = (translate(truth[a] * 2 - 1, a, b).clamp(-1, 1) + 1) / 2
            err = (out - truth[b]).abs().mean(1)[0].numpy()
            total, pixels = total + float(err.sum()), pixels + err.size
            for part, m in masks.items():
                sums[part, b] = sums.get((part, b), 0.0) + float(err[m].sum())
                counts[part, b] = counts.get((part, b), 0) + int(m.sum())
    parts = {}
    for part in dict.fromkeys(p for p, _ in sums):
        s, n = sum(sums[part, b] for b in SEASONS), sum(counts[part, b] for b in SEASONS)
        parts[part] = {"share": round(n / pixels, 3), "l1": round(s / max(n, 1), 4), "of_total": round(s / total, 3),
                       "by_target": {b: round(sums[part, b] / max(counts[part, b], 1), 4) for b in SEASONS}}
    return {"l1": round(total / pixels, 4), "parts": parts}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a run trained on the synthetic seasons")
    p.add_argument("--weights", default="auto", choices=["auto", "average", "live"])
    p.add_argument("--size", type=int, default=72, help="synthetic image side")
    p.add_argument("--test", type=int, default=12, help="test scenes (ids 0 … test − 1)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic dataset")
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    from combogan import Translator

    tr = Translator(args.run, device=args.device, announce=False, weights=args.weights)
    print(json.dumps({"run": args.run, "weights": args.weights, **breakdown(tr.translate, args.size, args.test, args.data_seed)}))


if __name__ == "__main__":
    main()
