"""Translate a folder of many small images in one process; report images/s and peak memory.

    python tools/bench_translate.py --images 1000 --size 64

Outputs are streamed to disk batch by batch, so memory stays flat however many images there are.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from combogan.domains.alps_seasons import synthesize
from PIL import Image

from combogan.apps.train import train
from combogan.apps.translate import translate_files
from combogan.apps.translator import Translator
from combogan.config import load


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cg-translate-"))
    synthesize(work / "data", size=40, train=4, test=0, workers=1)
    cfg = load(None, ["model.ngf=16", "model.ndf=16", "model.n_blocks=4", "data.load_size=40", "data.crop_size=32", "data.num_workers=0"])
    train(work / "data", cfg, run=work / "run", device=args.device, max_iters=2, quiet=True)
    inputs = work / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(args.images):
        Image.fromarray(rng.integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)).save(inputs / f"{i:05d}.png")
    tr = Translator(work / "run", device=args.device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    report = translate_files(tr, [str(inputs)], "summer", ["winter"], work / "out", batch_size=args.batch_size, progress=False)
    wall = time.perf_counter() - t
    print(json.dumps({"images": report.written, "size": args.size, "batch_size": args.batch_size, "device": args.device,
                      "images_per_s": round(report.written / wall, 1), "wall_s": round(wall, 1),
                      "peak_rss_mb_before": rss_before // 1024, "peak_rss_mb_after": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))


if __name__ == "__main__":
    main()
