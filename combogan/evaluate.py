"""Quality of a run: every ordered domain pair, against ground truth and two baselines.

Paired metrics (when the split's domains share file names, as the synthetic seasons do):
L1 (pixel values in [0, 1]), PSNR and SSIM of A->B against the true B image, for the model,
for identity (output = input) and for per-image histogram matching to B's training colours;
plus cycle-reconstruction L1 (A->B->A vs A). Unpaired: FID and KID of A->B against real B
(torchmetrics, optional). Images are evaluated with their shorter side at data.load_size.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .data import BadImage, load_image, to_model_range
from .errors import UserError
from .layouts import discover
from .translate import Translator, translate_tensor


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    mse = F.mse_loss(x, y).item()
    return 100.0 if mse == 0 else 10 * math.log10(1.0 / mse)


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004, Gaussian window) of (B, C, H, W) images in [0, 1]."""
    c = x.shape[1]
    window = min(window, *x.shape[-2:])
    window -= 1 - window % 2  # odd, and no larger than the image
    g = torch.exp(-((torch.arange(window) - window // 2) ** 2) / (2 * sigma**2))
    g = (g / g.sum()).to(x)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window)
    blur = lambda t: F.conv2d(t, kernel, groups=c)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean().item()


class HistogramMatcher:
    """Per-channel histogram matching of an image to a domain's pooled training histogram."""

    def __init__(self, files: list[Path], load_size: int, max_images: int = 100):
        hist = np.zeros((3, 256))
        for f in files[:max_images]:
            try:
                img = load_image(f, load_size).numpy()
            except BadImage:
                continue
            for ch in range(3):
                hist[ch] += np.bincount(img[ch].ravel(), minlength=256)
        self.cdf = np.cumsum(hist, 1) / np.maximum(hist.sum(1, keepdims=True), 1)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """uint8 (3, H, W) -> uint8 (3, H, W)."""
        arr = img.numpy()
        out = np.empty_like(arr)
        for ch in range(3):
            pdf = np.bincount(arr[ch].ravel(), minlength=256) / arr[ch].size
            quantile = np.cumsum(pdf) - pdf / 2  # each source level's mid-quantile
            mapping = np.searchsorted(self.cdf[ch], quantile, side="left").clip(0, 255)
            out[ch] = mapping[arr[ch]].astype(np.uint8)
        return torch.from_numpy(out)


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


def _scores(out: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """out/truth: (1, 3, H, W) in [0, 1]."""
    return {"l1": (out - truth).abs().mean().item(), "psnr": psnr(out, truth), "ssim": ssim(out, truth)}


def _fid_metrics(feature: Any, n: int):
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance
    except ImportError:
        raise UserError("FID/KID need torchmetrics: pip install 'combogan[metrics]'") from None
    kw: dict[str, Any] = {"normalize": True}
    if isinstance(feature, (str, Path)):
        kw["feature_extractor_weights_path"] = str(feature)
        feature = 2048
    try:
        fid = FrechetInceptionDistance(feature=feature, **kw)
        kid = KernelInceptionDistance(feature=feature, subset_size=max(2, min(50, n)), **kw)
    except (ModuleNotFoundError, ImportError) as exc:
        raise UserError(f"FID/KID with Inception need torch-fidelity ({exc}); pip install 'combogan[metrics]'") from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise UserError(f"could not load the Inception weights ({str(exc).splitlines()[0][:80]}); offline? pass --feature-weights PATH") from None
    return fid, kid


def evaluate(run: str | Path | None, domains_dir: str | Path, split: str = "test", out: str | Path | None = None,
             device: str = "auto", fid_feature: Any = None, max_images: int | None = None, progress: bool = True,
             examples: int = 4) -> dict[str, Any]:
    """Score every ordered pair; returns a JSON-ready dict (also written to out/ and tb/)."""
    tr = Translator(run, device=device, announce=progress)  # names the run it picked, like translate
    layout = discover(domains_dir)
    names = [n for n in tr.domains if n in layout.domains and layout.domains[n].files(split)]
    if len(names) < 2:
        raise UserError(f"{domains_dir} has '{split}' images for {len(names)} of the run's domains ({', '.join(tr.domains)}); need two")
    load_size = tr.config.data.load_size
    matchers = {n: HistogramMatcher(layout.domains[n].files("train") or layout.domains[n].files(split), load_size) for n in names}
    files = {n: layout.domains[n].files(split)[:max_images] for n in names}
    by_name = {n: {f.name: f for f in layout.domains[n].files(split)} for n in names}
    from tqdm import tqdm

    from .logger import save_grid

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
                fid, kid = _fid_metrics(fid_feature, len(cache))
            for f, img in cache:
                x = to_model_range(img)[None].to(tr.device)
                y = translate_tensor(tr.registry, x, a, [b])[b]
                back = translate_tensor(tr.registry, y, b, [a])[a]
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
                    rows["model"].append(_scores(y01.clamp(0, 1), t01))
                    rows["identity"].append(_scores(x01, t01))
                    rows["histogram"].append(_scores(hist01, t01))
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
    _log_tensorboard(tr.run, report)
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
    return {"run": str(tr.run), "step": tr.step, "split": split, "domains": names, "pairs": [asdict(r) for r in results],
            "mean": {**mean, "cycle_l1": float(np.mean(cyc)) if cyc else None, "fid": float(np.mean(fids)) if fids else None}}


def _log_tensorboard(run: Path, report: dict[str, Any]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run / "tb")) as w:
        for p in report["pairs"]:
            tag = f"{p['source']}->{p['target']}"
            for k, v in p["model"].items():
                w.add_scalar(f"eval/{k}/{tag}", v, report["step"])
            if p["fid"] is not None:
                w.add_scalar(f"eval/fid/{tag}", p["fid"], report["step"])
        for which in ("model", "identity", "histogram"):
            for k, v in report["mean"][which].items():
                w.add_scalar(f"eval_mean/{which}_{k}", v, report["step"])


def format_table(report: dict[str, Any], metric: str = "l1") -> list[str]:
    names = report["domains"]
    cells = {(p["source"], p["target"]): p for p in report["pairs"]}
    width = max(8, *(len(n) for n in names)) + 2
    lines = [f"{metric.upper()} of A->B vs ground truth (rows: source A, columns: target B)",
             " " * width + "".join(f"{n:>{width}}" for n in names)]
    for a in names:
        row = f"{a:<{width}}"
        for b in names:
            p = cells.get((a, b))
            value = p["model"].get(metric) if p and p["model"] else None
            row += f"{'-' if value is None else f'{value:.4f}':>{width}}"
        lines.append(row)
    m = report["mean"]
    for which in ("model", "identity", "histogram"):
        if m[which]:
            lines.append(f"mean {which:<9}  L1 {m[which]['l1']:.4f}  PSNR {m[which]['psnr']:.2f}  SSIM {m[which]['ssim']:.4f}")
    if m["cycle_l1"] is not None:
        lines.append(f"mean cycle-reconstruction L1 {m['cycle_l1']:.4f}")
    if m["fid"] is not None:
        lines.append(f"mean FID {m['fid']:.2f}")
    return lines
