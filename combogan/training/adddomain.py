"""Grow a trained run by new domains without retraining the existing ones.

The existing domains are frozen (no gradients, no optimizer steps, their files never
rewritten). Each iteration pairs a new domain with a uniformly drawn existing one, on a random
side, so the new encoder learns to write the shared latent space the frozen decoders read,
and the new decoder learns to read it. Schedule: epochs_per_domain x (number of new domains)
epochs, an epoch being the largest new domain's image count / batch size.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from .. import config as config_mod
from ..config import Config
from ..data.layouts import dataset_marker, discover, list_images
from ..data.sampler import PairSampler
from ..errors import UserError
from ..runs import checkpoint, rundir
from .session import Domain, Session, open_session


def parse_domain_args(items: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items:
        name, _, folder = item.partition("=")
        name = name.strip()
        if not name or not folder:
            raise UserError(f"--domain expects NAME=DIR, got '{item}'")
        if name in out:
            raise UserError(f"domain '{name}' given twice")
        out[name] = Path(folder).expanduser()
    if not out:
        raise UserError("give at least one --domain NAME=DIR")
    return out


def _domain_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """A new domain's folder: images (nested allowed), or train/ and test/ subfolders."""
    if not folder.is_dir():
        raise UserError(f"domain folder not found: {folder}")
    marker = dataset_marker(folder)
    if marker and marker != "train/<domain>/":
        raise UserError(f"domain folder {folder} looks like a whole dataset (it holds {marker}); give one domain's folder")
    if (folder / "train").is_dir():
        return list_images(folder / "train"), list_images(folder / "test")
    return list_images(folder), []


def _existing_domains(run: Path, manifest: dict[str, Any], names: list[str], existing_data: str | Path | None) -> dict[str, tuple[list[Path], list[Path]]]:
    """(train, test) files of the run's existing domains, from its dataset folder or --data."""
    if not existing_data and not manifest.get("dataset"):
        raise UserError(f"{run} was imported and names no dataset; pass --data DIR with the images of {', '.join(names)}")
    data_root = Path(existing_data) if existing_data else Path(manifest["dataset"])
    if not data_root.is_dir():
        raise UserError(f"the run's dataset folder {data_root} is gone; pass --data DIR with the existing domains' images")
    layout = discover(data_root, flag="--data")
    missing = [n for n in names if n not in layout.domains or not layout.domains[n].files("train")]
    if missing:
        raise UserError(f"{data_root} lacks images for existing domain(s) {', '.join(missing)}; pass --data DIR")
    return {n: (layout.domains[n].files("train"), layout.domains[n].files("test")) for n in names}


def _old_domains(run: Path, manifest: dict[str, Any], domains: dict[str, Path], resume: bool) -> list[str]:
    """The run's domains that stay frozen, once the request fits the run's state."""
    pending = manifest.get("adding")
    names_in_run = rundir.domain_names(manifest)
    if resume:
        if not pending or sorted(pending["domains"]) != sorted(domains):
            raise UserError(f"nothing to resume: no unfinished add-domain of {', '.join(domains)} in {run}")
        return [n for n in names_in_run if n not in domains]
    for name in domains:
        if name in names_in_run:
            raise UserError(f"domain '{name}' is already in the run ({', '.join(names_in_run)})")
    if pending:
        raise UserError(f"an add-domain of {', '.join(pending['domains'])} is unfinished in {run}; finish it with --resume")
    return names_in_run


def _record_new_domains(manifest: dict[str, Any], new: list[Domain], folders: dict[str, Path], s: Session, cfg: Config,
                        max_iters: int | None) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    for d in new:
        test = len(d.samples) if d.samples is not d.files else 0
        manifest["domains"].append({"name": d.name, "images": {"train": len(d.files), "test": test}, "added_by": "add-domain", "added": now,
                                    "added_at_step": s.offset, "source": str(folders[d.name].resolve()),
                                    "settings": {"epochs": s.schedule.total_epochs, "iters": s.schedule.total_iters,
                                                 "batch_size": cfg.data.batch_size, "lr": cfg.train.lr, "max_iters": max_iters}})
    manifest["adding"] = {"domains": [d.name for d in new], "offset": s.offset}


def for_add_domain(run: str | Path | None, domains: dict[str, Path], config_file: str | None = None, overrides: list[str] | tuple[str, ...] = (),
                   existing_data: str | Path | None = None, device: str = "auto", max_iters: int | None = None,
                   resume: bool = False, quiet: bool = False) -> Session:
    """The session of `combogan add-domain`: the new `domains` trained beside the run's frozen ones."""
    run_path = rundir.resolve(run, announce=not quiet)
    manifest, saved = rundir.read_manifest(run_path), rundir.read_config(run_path)
    cfg = config_mod.load(config_file, overrides, base=saved)
    if not any(o.startswith("train.iters=") for o in overrides or ()):
        # A length that `train --time` fitted is the run's, not the new domains'; one that an
        # unfinished `add-domain --time` fitted is theirs.
        fitted = (manifest.get("adding") or {}).get("iters", 0) if resume else 0
        cfg = config_mod.merge(cfg, {"train": {"iters": fitted}})
    if not any(o.startswith("loss.lambda_identity=") for o in overrides or ()):
        rundir.check_identity_meaning(run_path, manifest, saved, cfg)
    index = checkpoint.require_latest(run_path, "cannot add a domain")
    arch = checkpoint.load_arch(index)
    if arch != cfg.model:
        raise UserError("add-domain keeps the run's architecture; do not change model.* settings")
    old = _old_domains(run_path, manifest, domains, resume)
    checkpoint.sweep(run_path)
    new_seed = cfg.train.seed + len(rundir.domain_names(manifest)) - (len(domains) if resume else 0)  # as when the add-domain started
    new = []
    for name, folder in domains.items():
        files, test = _domain_files(folder)
        if not files:
            raise UserError(f"domain folder {folder} has no images")
        new.append(Domain(name, files, test or files, new_seed))
    existing = _existing_domains(run_path, manifest, old, existing_data)
    frozen = [Domain(n, files, test or files, cfg.train.seed, frozen=True) for n, (files, test) in existing.items()]
    offset = int(manifest["adding"]["offset"]) if resume else index.step
    pairs = PairSampler([d.name for d in new], cfg.train.seed + offset, anchors=old)
    s = open_session(run_path, cfg, arch, frozen + new, pairs, manifest, previous=index, resume=resume, offset=offset,
                     device=device, max_iters=max_iters, quiet=quiet)
    if resume and not s.quiet:
        print(f"resuming add-domain of {', '.join(domains)} from {index.path.relative_to(run_path)} (step {s.start})", file=sys.stderr)
    if not resume:
        _record_new_domains(manifest, new, domains, s, cfg, max_iters)
    return s


def finish(s: Session, step: int) -> None:
    """Once the schedule is done the new domains are ordinary members of the run."""
    if s.is_main and step - s.offset >= s.schedule.total_iters:
        s.manifest.pop("adding", None)
        rundir.write_manifest(s.run, s.manifest)
