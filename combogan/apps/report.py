"""An eval report for people: the N x N table on the terminal, and scalars in TensorBoard."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def log_tensorboard(run: Path, report: dict[str, Any]) -> None:
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
            lines.append(f"mean {which:<9}  L1 {m[which]['l1']:.4f}  PSNR {m[which]['psnr']:.2f}  SSIM {m[which]['ssim']:.4f}"
                         f"  edges {m[which]['edges']:.2f}")
    if m["cycle_l1"] is not None:
        lines.append(f"mean cycle-reconstruction L1 {m['cycle_l1']:.4f}")
    if m["fid"] is not None:
        lines.append(f"mean FID {m['fid']:.2f}")
    return lines
