"""Quality of a run: every ordered domain pair, against ground truth and two baselines.

Paired metrics (when the split's domains share file names, as the synthetic seasons do):
L1 (pixel values in [0, 1]), PSNR and SSIM of A->B against the true B image, for the model,
for identity (output = input) and for per-image histogram matching to B's training colours;
plus cycle-reconstruction L1 (A->B->A vs A). Unpaired: FID and KID of A->B against real B
(torchmetrics, optional). Images are evaluated with their shorter side at data.load_size, and
each is decoded once, whatever the number of pairs it takes part in.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.grid import save_grid
from ..data.images import BadImage, load_image, to_model_range
from ..data.layouts import discover
from ..errors import UserError
from ..progress import Progress
from .baselines import HistogramMatcher
from .metrics import fid_kid, paired_scores
from .report import log_tensorboard
from .translator import Translator


@dataclass
class PairScores:
    source: str
    target: str
    images: int = 0
    paired: int = 0
    model: dict[str, float] = field(default_factory=dict)
    identity: dict[str, float] = field(default_factory=dict)
    histogram: dict[str, float] = field(default_factory=dict)
    cycle_l1: float | None = None
    fid: float | None = None
    kid: float | None = None


class _Images:
    """One domain's evaluation images by file name, decoded on first use and kept (uint8)."""

    def __init__(self, files: list[Path], load_size: int, limit: int | None):
        self.files, self.load_size = files[:limit], load_size
        self.by_name = {f.name: f for f in files}
        self._cache: dict[str, torch.Tensor | None] = {}

    def get(self, name: str) -> torch.Tensor | None:
        """The image of that file name (the ground truth of other domains' images), or None."""
        if name not in self._cache:
            try:
                self._cache[name] = load_image(self.by_name[name], self.load_size) if name in self.by_name else None
            except BadImage:
                self._cache[name] = None
        return self._cache[name]

    def readable(self) -> list[tuple[Path, torch.Tensor]]:
        """The first `limit` files' images, unreadable ones left out."""
        return [(f, img) for f in self.files if (img := self.get(f.name)) is not None]


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}


@dataclass
class _Pair:
    """What scoring one ordered pair collects, image by image."""

    scores: PairScores
    rows: dict[str, list[dict[str, float]]] = field(default_factory=lambda: {"model": [], "identity": [], "histogram": []})
    cycle: list[float] = field(default_factory=list)
    grid: list[list[torch.Tensor]] = field(default_factory=list)


def _score_image(tr: Translator, p: _Pair, img: torch.Tensor, truth: torch.Tensor | None, matcher: HistogramMatcher,
                 distances: Any, examples: int) -> None:
    a, b = p.scores.source, p.scores.target
    x = to_model_range(img)[None].to(tr.device)
    y = tr.batch(x, a, b)
    back = tr.batch(y, b, a)
    y01, x01 = (y.cpu() + 1) / 2, (x.cpu() + 1) / 2
    p.cycle.append(((back.cpu() + 1) / 2 - x01).abs().mean().item())
    p.scores.images += 1
    paired = truth is not None and truth.shape == img.shape
    if paired:
        t01 = truth[None].float() / 255
        p.rows["model"].append(paired_scores(y01.clamp(0, 1), t01))
        p.rows["identity"].append(paired_scores(x01, t01))
        p.rows["histogram"].append(paired_scores(matcher(img)[None].float() / 255, t01))
        p.scores.paired += 1
    if distances is not None:  # FID and KID
        for metric in distances:
            metric.update(y01.clamp(0, 1), real=False)
    if len(p.grid) < examples:
        p.grid.append([x[0].cpu(), y[0].cpu()] + ([to_model_range(truth)] if paired else []))


def _score_pair(tr: Translator, a: str, b: str, images: dict[str, _Images], matcher: HistogramMatcher, fid_feature: Any,
                examples: int, progress: Progress) -> _Pair:
    sources = images[a].readable()
    p = _Pair(PairScores(a, b))
    distances = fid_kid(fid_feature, len(sources)) if fid_feature is not None else None
    for f, img in sources:
        _score_image(tr, p, img, images[b].get(f.name), matcher, distances, examples)
        progress.update(1)
    if distances is not None:
        fid, kid = distances
        for _, real in images[b].readable():
            fid.update(real[None].float() / 255, real=True)
            kid.update(real[None].float() / 255, real=True)
        p.scores.fid, p.scores.kid = float(fid.compute()), float(kid.compute()[0])
    p.scores.model, p.scores.identity, p.scores.histogram = (_mean(p.rows[k]) for k in ("model", "identity", "histogram"))
    p.scores.cycle_l1 = float(np.mean(p.cycle)) if p.cycle else None
    return p


def evaluate(run: str | Path | None, domains_dir: str | Path, split: str = "test", out: str | Path | None = None,
             device: str = "auto", fid_feature: Any = None, max_images: int | None = None, progress: bool = True,
             examples: int = 4, flip_average: bool = False, weights: str = "auto") -> dict[str, Any]:
    """Score every ordered pair; returns a JSON-ready dict (also written to out/ and tb/)."""
    tr = Translator(run, device=device, announce=progress, flip_average=flip_average, weights=weights)  # names the run it picked, like translate
    layout = discover(domains_dir)
    names = [n for n in tr.domains if n in layout.domains and layout.domains[n].files(split)]
    if len(names) < 2:
        raise UserError(f"{domains_dir} has '{split}' images for {len(names)} of the run's domains ({', '.join(tr.domains)}); need two")
    load_size = tr.config.data.load_size
    images = {n: _Images(layout.domains[n].files(split), load_size, max_images) for n in names}
    matchers = {n: HistogramMatcher(layout.domains[n].files("train") or layout.domains[n].files(split), load_size) for n in names}
    total = sum(len(images[a].files) * (len(names) - 1) for a in names)
    results = []
    with Progress(total, "eval", unit="img", disable=not progress) as bar:
        for a in names:
            for b in (n for n in names if n != a):
                p = _score_pair(tr, a, b, images, matchers[b], fid_feature, examples, bar)
                results.append(p.scores)
                if out is not None and p.grid and all(r[0].shape == p.grid[0][0].shape for r in p.grid):
                    width = min(len(r) for r in p.grid)
                    save_grid([r[:width] for r in p.grid], Path(out) / f"{a}_to_{b}.png")
    report = _summarise(tr, names, split, results)
    log_tensorboard(tr.run, report)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    if progress:
        tr.note_weights()
    return report


def _summarise(tr: Translator, names: list[str], split: str, results: list[PairScores]) -> dict[str, Any]:
    paired = [r for r in results if r.paired]
    mean = {which: _mean([getattr(r, which) for r in paired]) for which in ("model", "identity", "histogram")}
    cyc = [r.cycle_l1 for r in results if r.cycle_l1 is not None]
    fids = [r.fid for r in results if r.fid is not None]
    return {"run": str(tr.run), "step": tr.step, "split": split, "flip_average": tr.flip_average, "weights": tr.weights, "domains": names, "pairs": [asdict(r) for r in results],
            "mean": {**mean, "cycle_l1": float(np.mean(cyc)) if cyc else None, "fid": float(np.mean(fids)) if fids else None}}
