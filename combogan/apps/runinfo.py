"""What `combogan info` reports about a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from ..model.combogan import ComboGAN
from ..runs import checkpoint, rundir


def run_info(run: str | Path | None, announce: bool = True) -> dict[str, Any]:
    path = rundir.resolve(run, announce=announce)
    manifest = rundir.read_manifest(path)
    cfg = rundir.read_config(path)
    index = checkpoint.latest(path, verify=False)
    arch = checkpoint.load_arch(index) if index else cfg.model
    # Parameter counts come from the architecture; building one domain's nets is cheap and exact.
    counts = ComboGAN(arch, ["x"]).parameter_counts()["x"]
    domains = [{**d, "parameters": counts, **_weights(path, index, d["name"])} for d in manifest["domains"]]
    if index is None and manifest.get("step", 0):
        raise UserError(f"run {path} lists step {manifest['step']} but has no complete checkpoint")
    return {"run": str(path), "step": manifest.get("step", 0), "epoch": manifest.get("epoch", 0.0),
            "total_iters": manifest.get("total_iters"), "dataset": manifest.get("dataset"), "layout": manifest.get("layout"),
            "imported": manifest.get("imported"),
            "domains": domains, "latest": manifest.get("latest"), "checkpoints": manifest.get("checkpoints", []),
            "config": cfg.to_dict()}


def _weights(run: Path, index: checkpoint.CheckpointIndex | None, name: str) -> dict[str, Any]:
    """What translation uses for the domain by default (--weights auto), and its weight average's
    progress: {"weights": "average" | "live", "average_updates": n, "average_settles_at": m}."""
    if index is None or name not in index.domains:
        return {}
    out: dict[str, Any] = {"weights": "average" if index.uses_average(run, name, "auto") else "live"}
    recorded = index.average_updates(run, name)
    if recorded:
        out.update(average_updates=recorded[1], average_settles_at=checkpoint.settling_updates(recorded[0]))
    return out
