"""alps_seasons: the synthetic stand-in, written as DIR/{train,test}/<season>/<scene>.png.

Train scenes are disjoint per season (unpaired, as in the real data); test scenes are the same
ids in every season under the same file names, so each test image has ground truth in every
other season.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

from .synth import SEASONS, render_all

NAMES = SEASONS


def _jobs(train: int, test: int) -> list[tuple[str, int, tuple[str, ...]]]:
    jobs = [("test", i, SEASONS) for i in range(test)]
    for k, season in enumerate(SEASONS):
        jobs += [("train", test + k * train + i, (season,)) for i in range(train)]
    return jobs


def _render_job(args: tuple[Path, str, int, tuple[str, ...], int, int]) -> int:
    out, split, scene_id, seasons, size, seed = args
    for season, img in render_all(scene_id, size, seasons, seed).items():
        Image.fromarray(img).save(out / split / season / f"{scene_id:06d}.png", compress_level=1)
    return len(seasons)


def synthesize(out: str | Path, size: int = 128, train: int = 200, test: int = 20, seed: int = 0,
               workers: int | None = None, progress: Callable[[int], None] | None = None) -> dict:
    """Write the dataset; returns a summary (also saved as DIR/synth.json)."""
    out = Path(out)
    for split in ("train", "test"):
        for season in SEASONS:
            (out / split / season).mkdir(parents=True, exist_ok=True)
    jobs = [(out, split, sid, seasons, size, seed) for split, sid, seasons in _jobs(train, test)]
    workers = workers or min(4, os.cpu_count() or 1)
    written = 0
    if workers > 1 and len(jobs) > 32:
        with ProcessPoolExecutor(workers) as pool:
            for n in pool.map(_render_job, jobs, chunksize=16):
                written += n
                if progress:
                    progress(n)
    else:
        for job in jobs:
            n = _render_job(job)
            written += n
            if progress:
                progress(n)
    summary = {"dataset": "alps_seasons (synthetic)", "size": size, "train_per_domain": train, "test_per_domain": test,
               "seed": seed, "domains": list(SEASONS), "images": written,
               "note": "test/<season>/<id>.png share scene ids across seasons: ground-truth pairs"}
    (out / "synth.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
