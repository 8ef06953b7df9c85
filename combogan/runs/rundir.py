"""A run directory: config.yaml, manifest.json, checkpoints/, tb/, samples/.

manifest.json is the run's table of contents (domains in the order added, image counts, step,
epoch, files) and is always written last, after the checkpoint it describes.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from .. import atomic
from .. import config as config_mod
from ..config import Config
from ..errors import UserError
from . import checkpoint

MANIFEST = "manifest.json"
CONFIG = "config.yaml"
RUNS_ROOT = Path("runs")
# 2 (combogan 0.2): loss.lambda_identity became CycleGAN's identity; in version-1 runs it named
# the autoencoding term. The manifest version is what tells the two apart.
MANIFEST_VERSION = 2


def default_run_for(domains_dir: Path) -> Path:
    return RUNS_ROOT / Path(domains_dir).resolve().name


def most_recent_run(root: Path = RUNS_ROOT) -> Path:
    runs = [p.parent for p in root.glob(f"*/{MANIFEST}")] if root.is_dir() else []
    if not runs:
        raise UserError(f"no runs found under {root}/; pass --run DIR or train one with `combogan train --domains DIR`")
    return max(runs, key=lambda p: (p / MANIFEST).stat().st_mtime)


def resolve(run: str | Path | None, announce: bool = True) -> Path:
    """The run a command should use: --run if given, else the most recently updated under runs/."""
    if run is None:
        path = most_recent_run()
        if announce:
            print(f"using run {path} (most recently updated under {RUNS_ROOT}/)", file=sys.stderr)
        return path
    path = Path(run).expanduser()
    if not (path / MANIFEST).is_file():
        if path.is_dir():
            raise UserError(f"{path} is not a combogan run (no {MANIFEST}); train one first")
        raise UserError(f"run not found: {path}")
    return path


def read_manifest(run: Path) -> dict[str, Any]:
    path = run / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"run not found: {run} (no {MANIFEST})") from None
    except (OSError, ValueError):
        raise UserError(f"{path} is damaged (not valid JSON); restore it or retrain") from None
    if not isinstance(data, dict) or data.get("format") != "combogan-run":
        raise UserError(f"{path} is not a combogan manifest")
    if data.get("version", 0) > MANIFEST_VERSION:
        raise UserError(f"{path} was written by a newer combogan (manifest version {data.get('version')})")
    if not isinstance(data.get("domains"), list) or not all(isinstance(d, dict) and "name" in d for d in data["domains"]):
        raise UserError(f"{path} has no valid 'domains' list (hand-edited?)")
    return data


def write_manifest(run: Path, manifest: dict[str, Any]) -> None:
    manifest = {**manifest, "format": "combogan-run", "version": MANIFEST_VERSION, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic.write_json(run / MANIFEST, manifest)


def new_manifest(domains: list[dict[str, Any]], dataset: str, layout: str) -> dict[str, Any]:
    return {"format": "combogan-run", "version": MANIFEST_VERSION, "dataset": dataset, "layout": layout, "domains": domains,
            "step": 0, "epoch": 0.0, "checkpoints": [],
            "files": {"config": CONFIG, "tensorboard": "tb", "samples": "samples", "checkpoints": checkpoint.CKPT_DIR}}


def check_identity_meaning(run: Path, manifest: dict[str, Any], saved: Config, cfg: Config) -> None:
    """Refuse to continue a combogan 0.1 run whose loss.lambda_identity (then: the autoencoding
    term ||dec_A(enc_A(a)) - a||) would silently become CycleGAN's identity ||dec_A(enc_B(a)) - a||."""
    if manifest.get("version", 1) >= 2 or saved.loss.lambda_identity == 0 or cfg.loss.lambda_identity != saved.loss.lambda_identity:
        return
    raise UserError(f"{run} was trained by combogan 0.1, where loss.lambda_identity={saved.loss.lambda_identity} meant the autoencoding "
                    "term; since 0.2 it means CycleGAN's identity. Continue with --set loss.lambda_identity=0 (or with "
                    "CycleGAN's identity at the weight you choose)")


def domain_names(manifest: dict[str, Any]) -> list[str]:
    return [d["name"] for d in manifest["domains"]]


def read_config(run: Path) -> Config:
    path = run / CONFIG
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise UserError(f"{path} is missing") from None
    except yaml.YAMLError:
        raise UserError(f"{path} is damaged (not valid YAML)") from None
    return config_mod.saved(data, source=str(path))


def write_config(run: Path, cfg: Config) -> None:
    config_mod.save(cfg, run / CONFIG)
