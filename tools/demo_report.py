"""Print what `make demo` achieved: summer->winter outputs against the ground-truth winter images.

The synthetic test split renders the same scenes in every season, so each translated summer
image has a true winter counterpart. We report mean L1 (in [0, 1] pixel units) for the model and
for the identity baseline (output = input), and how much whiter (snow) the outputs became.
"""

import sys
from pathlib import Path

import torch
from torchvision.io import decode_image


def load(path: Path) -> torch.Tensor:
    return decode_image(str(path)).float() / 255.0


def main(demo: Path) -> None:
    outs = sorted((demo / "winter").glob("*.png"))
    if not outs:
        sys.exit(f"error: no outputs in {demo / 'winter'}")
    l1_model = l1_identity = white_in = white_out = white_true = 0.0
    for out in outs:
        src, truth, y = load(demo / "data/test/summer" / out.name), load(demo / "data/test/winter" / out.name), load(out)
        l1_model += (y - truth).abs().mean().item()
        l1_identity += (src - truth).abs().mean().item()
        # "white" = bright and unsaturated: a crude snow detector
        for acc, img in (("in", src), ("out", y), ("true", truth)):
            frac = ((img.min(0).values > 0.75) & (img.max(0).values - img.min(0).values < 0.12)).float().mean().item()
            if acc == "in":
                white_in += frac
            elif acc == "out":
                white_out += frac
            else:
                white_true += frac
    n = len(outs)
    print(f"summer -> winter on {n} test scenes: L1 to ground truth {l1_model / n:.3f} (identity baseline {l1_identity / n:.3f})")
    print(f"snow-white pixels: summer inputs {100 * white_in / n:.1f}%  ->  winter outputs {100 * white_out / n:.1f}%  (true winter {100 * white_true / n:.1f}%)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo"))
