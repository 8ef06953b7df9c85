"""Quality of a run: every ordered domain pair, against ground truth and two baselines.

Paired metrics (when the split's domains share file names, as the synthetic seasons do):
L1 (pixel values in [0, 1]), PSNR and SSIM of A->B against the true B image, for the model,
for identity (output = input) and for per-image histogram matching to B's training colours;
plus cycle-reconstruction L1 (A->B->A vs A). Unpaired: FID and KID of A->B against real B
(torchmetrics, optional). Images are evaluated with their shorter side at data.load_size.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import BadImage, load_image, to_model_range
from ..data.layouts import discover
from ..errors import UserError
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


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}


def evaluate(run: str | Path | None, domains_dir: str | Path, split: str = "test", out: str | Path | None = None,
             device: str = "auto", fid_feature: Any = None, max_images: int | None = None, progress: bool = True,
             examples: int = 4, flip_average: bool = False) -> dict[str, Any]:
    """Score every ordered pair; returns a JSON-ready dict (also written to out/ and tb/)."""
    tr = Translator(run, device=device, announce=progress, flip_average=flip_average)  # names the run it picked, like translate
    layout = discover(domains_dir)
    names = [n for n in tr.domains if n in layout.domains and layout.domains[n].files(split)]
    if len(names) < 2:
        raise UserError(f"{domains_dir} has '{split}' images for {len(names)} of the run's domains ({', '.join(tr.domains)}); need two")
    load_size = tr.config.data.load_size
    matchers = {n: HistogramMatcher(layout.domains[n].files("train") or layout.domains[n].files(split), load_size) for n in names}
    files = {n: layout.domains[n].files(split)[:max_images] for n in names}
    by_name = {n: {f.name: f for f in layout.domains[n].files(split)} for n in names}
    from tqdm import tqdm

    from ..data.grid import save_grid

    results: list[PairScores] = []
    bar = tqdm(total=sum(len(files[a]) * (len(names) - 1) for a in names), desc="eval", unit="img", disable=not progress, file=sys.stderr)
    for a in names:
        cache = []  # decode each source image once for all its targets
        for f in files[a]:
            try:
                cache.append((f, load_image(f, load_size)))
            except BadImage:
                continue
        for b in names:
            if a == b:
                continue
            pr = PairScores(a, b)
            rows: dict[str, list[dict[str, float]]] = {"model": [], "identity": [], "histogram": []}
            cyc, grid_rows = [], []
            fid = kid = None
            if fid_feature is not None:
                fid, kid = fid_kid(fid_feature, len(cache))
            for f, img in cache:
                x = to_model_range(img)[None].to(tr.device)
                y = tr.batch(x, a, b)
                back = tr.batch(y, b, a)
                y01, x01 = (y.cpu() + 1) / 2, (x.cpu() + 1) / 2
                cyc.append(((back.cpu() + 1) / 2 - x01).abs().mean().item())
                pr.images += 1
                truth_file = by_name[b].get(f.name)
                truth = None
                if truth_file is not None:
                    try:
                        truth = load_image(truth_file, load_size)
                    except BadImage:
                        truth = None
                if truth is not None and truth.shape == img.shape:
                    t01 = truth[None].float() / 255
                    hist01 = matchers[b](img)[None].float() / 255
                    rows["model"].append(paired_scores(y01.clamp(0, 1), t01))
                    rows["identity"].append(paired_scores(x01, t01))
                    rows["histogram"].append(paired_scores(hist01, t01))
                    pr.paired += 1
                if fid is not None:
                    fid.update(y01.clamp(0, 1), real=False)
                    kid.update(y01.clamp(0, 1), real=False)
                if len(grid_rows) < examples:
                    row = [x[0].cpu(), y[0].cpu()] + ([to_model_range(truth)] if truth is not None and truth.shape == img.shape else [])
                    grid_rows.append(row)
                bar.update(1)
            if fid is not None:
                for f in files[b]:
                    try:
                        real = load_image(f, load_size)[None].float() / 255
                    except BadImage:
                        continue
                    fid.update(real, real=True)
                    kid.update(real, real=True)
                pr.fid = float(fid.compute())
                pr.kid = float(kid.compute()[0])
            pr.model, pr.identity, pr.histogram = _mean(rows["model"]), _mean(rows["identity"]), _mean(rows["histogram"])
            pr.cycle_l1 = float(np.mean(cyc)) if cyc else None
            if out is not None and grid_rows:
                width = min(len(r) for r in grid_rows)
                if all(r[0].shape == grid_rows[0][0].shape for r in grid_rows):
                    save_grid([r[:width] for r in grid_rows], Path(out) / f"{a}_to_{b}.png")
            results.append(pr)
    bar.close()
    report = _summarise(tr, names, split, results)
    log_tensorboard(tr.run, report)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _summarise(tr: Translator, names: list[str], split: str, results: list[PairScores]) -> dict[str, Any]:
    paired = [r for r in results if r.paired]
    mean = {}
    for which in ("model", "identity", "histogram"):
        rows = [getattr(r, which) for r in paired]
        mean[which] = _mean(rows) if rows else {}
    cyc = [r.cycle_l1 for r in results if r.cycle_l1 is not None]
    fids = [r.fid for r in results if r.fid is not None]
    return {"run": str(tr.run), "step": tr.step, "split": split, "flip_average": tr.flip_average, "domains": names, "pairs": [asdict(r) for r in results],
            "mean": {**mean, "cycle_l1": float(np.mean(cyc)) if cyc else None, "fid": float(np.mean(fids)) if fids else None}}


