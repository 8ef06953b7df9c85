"""Print what `make demo` achieved: summer->winter outputs against the ground-truth winter images.

The synthetic test split renders the same scenes in every season, so each translated summer
image has a true winter counterpart. We report mean L1 (in [0, 1] pixel units) and SSIM for the
model and for two baselines computed the same way: identity (output = input) and per-image
histogram matching to winter's training colours; how much whiter (snow) the outputs became; and
how many of the trees survive: in a true winter render the only dark pixels are the trees
(trunks, conifers), so "trees kept" is the fraction of those pixels that are dark in the output
too (within one pixel), the crude but objective check of "are the trees still there".
It also writes compare.png: summer input | winter output | true winter per row, enlarged 3x
(nearest: no smoothing that would flatter the outputs), for a person to judge.
"""

import sys
from pathlib import Path

import torch
from torch.nn.functional import interpolate, max_pool2d
from torchvision.io import decode_image

from combogan.apps.baselines import HistogramMatcher
from combogan.apps.metrics import ssim
from combogan.data.grid import save_grid
from combogan.data.images import to_model_range
from combogan.data.layouts import list_images


def load(path: Path) -> torch.Tensor:
    return decode_image(str(path))


def snow(img: torch.Tensor) -> float:
    """Fraction of bright, unsaturated pixels: a crude snow detector."""
    img = img.float() / 255
    return ((img.min(0).values > 0.75) & (img.max(0).values - img.min(0).values < 0.12)).float().mean().item()


def dark(img: torch.Tensor) -> torch.Tensor:
    """(H, W) mask of dark pixels: in a true winter render, exactly the trees."""
    return img.max(0).values < 115


def trees_kept(out: torch.Tensor, truth: torch.Tensor) -> tuple[int, int]:
    """(true tree pixels with a dark output pixel within one pixel, true tree pixels)."""
    near = max_pool2d(dark(out)[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
    trees = dark(truth)
    return int((trees & near).sum()), int(trees.sum())


def main(demo: Path) -> None:
    outs = sorted((demo / "winter").glob("*.png"))
    if not outs:
        sys.exit(f"error: no outputs in {demo / 'winter'}")
    matcher = HistogramMatcher(list_images(demo / "data" / "train" / "winter"), load_size=None)
    rows = {"model": [], "histogram": [], "identity": []}
    kept = {k: [0, 0] for k in rows}
    white = {"summer inputs": 0.0, "winter outputs": 0.0, "true winter": 0.0}
    compare = []
    for out in outs:
        src, truth, y = load(demo / "data/test/summer" / out.name), load(demo / "data/test/winter" / out.name), load(out)
        t = truth[None].float() / 255
        for which, img in (("model", y), ("histogram", matcher(src)), ("identity", src)):
            x = img[None].float() / 255
            rows[which].append(((x - t).abs().mean().item(), ssim(x, t)))
            kept[which] = [a + b for a, b in zip(kept[which], trees_kept(img, truth))]
        for key, img in (("summer inputs", src), ("winter outputs", y), ("true winter", truth)):
            white[key] += snow(img) / len(outs)
        compare.append([interpolate(to_model_range(img)[None], scale_factor=3, mode="nearest")[0] for img in (src, y, truth)])
    save_grid(compare, demo / "compare.png")
    print(f"summer -> winter on {len(outs)} test scenes, against the true winter images:")
    for which, values in rows.items():
        l1 = sum(v[0] for v in values) / len(values)
        s = sum(v[1] for v in values) / len(values)
        trees = kept[which][0] / max(kept[which][1], 1)
        print(f"  {which + (' (baseline)' if which != 'model' else ''):<22} L1 {l1:.3f}   SSIM {s:.3f}   trees kept {100 * trees:.0f}%")
    print("snow-white pixels: " + ",  ".join(f"{k} {100 * v:.1f}%" for k, v in white.items()))
    print(f"side by side: {demo / 'compare.png'} (rows: summer input | winter output | true winter, 3x)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo"))
