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

import torch

from .. import config as config_mod
from ..accel import plan as perfmod
from ..data.layouts import dataset_marker, discover, list_images
from ..errors import UserError
from ..model.combogan import ComboGAN
from ..runs import checkpoint, rundir
from . import distributed
from .loop import Session, TrainResult, _restore_rng
from .sampler import PairSampler
from .schedule import Schedule
from .state import TrainState


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


def parse_domain_args(items: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--domain expects NAME=DIR, got '{item}'")
        name, folder = item.split("=", 1)
        name = name.strip()
        if not name:
            raise UserError(f"--domain expects NAME=DIR, got '{item}'")
        if name in out:
            raise UserError(f"domain '{name}' given twice")
        out[name] = Path(folder).expanduser()
    if not out:
        raise UserError("give at least one --domain NAME=DIR")
    return out


def prepare(run: str | Path | None, domains: dict[str, Path], config_file: str | None = None, overrides: list[str] | tuple[str, ...] = (),
            existing_data: str | Path | None = None, device: str = "auto", max_iters: int | None = None,
            resume: bool = False, quiet: bool = False) -> Session:
    run_path = rundir.resolve(run, announce=not quiet)
    manifest = rundir.read_manifest(run_path)
    saved = rundir.read_config(run_path)
    cfg = config_mod.load(config_file, overrides, base=saved)
    if overrides is None or not any(o.startswith("loss.lambda_identity=") for o in overrides):
        rundir.check_identity_meaning(run_path, manifest, saved, cfg)
    index = checkpoint.require_latest(run_path, "cannot add a domain")
    arch = checkpoint.load_arch(index)
    if arch != cfg.model:
        raise UserError("add-domain keeps the run's architecture; do not change model.* settings")

    pending = manifest.get("adding")
    names_in_run = rundir.domain_names(manifest)
    if resume:
        if not pending or sorted(pending["domains"]) != sorted(domains):
            raise UserError(f"nothing to resume: no unfinished add-domain of {', '.join(domains)} in {run_path}")
        old = [n for n in names_in_run if n not in domains]
    else:
        for name in domains:
            if name in names_in_run:
                raise UserError(f"domain '{name}' is already in the run ({', '.join(names_in_run)})")
        if pending:
            raise UserError(f"an add-domain of {', '.join(pending['domains'])} is unfinished in {run_path}; finish it with --resume")
        old = names_in_run

    new_files = {}
    samples = {}
    for name, folder in domains.items():
        train_files, test_files = _domain_files(folder)
        if not train_files:
            raise UserError(f"domain folder {folder} has no images")
        new_files[name], samples[name] = train_files, test_files or train_files

    if not existing_data and not manifest.get("dataset"):
        raise UserError(f"{run_path} was imported and names no dataset; pass --data DIR with the images of {', '.join(names_in_run)}")
    data_root = Path(existing_data) if existing_data else Path(manifest["dataset"])
    if not data_root.is_dir():
        raise UserError(f"the run's dataset folder {data_root} is gone; pass --data DIR with the existing domains' images")
    layout = discover(data_root, flag="--data")
    missing = [n for n in old if n not in layout.domains or not layout.domains[n].files("train")]
    if missing:
        raise UserError(f"{data_root} lacks images for existing domain(s) {', '.join(missing)}; pass --data DIR")
    old_files = {n: layout.domains[n].files("train") for n in old}
    for n in old:
        samples.setdefault(n, layout.domains[n].files("test") or old_files[n])

    ddp, dev, world = distributed.join(device)
    perf_plan = perfmod.plan(cfg.perf, arch, dev, ddp is not None, augmented=bool(config_mod.policy(cfg.train.diffaugment)))
    quiet = quiet or (ddp is not None and not ddp.is_main)
    model = ComboGAN(arch, old, seed=cfg.train.seed).to(dev)
    state = TrainState(model, cfg.train, rank=ddp.rank if ddp else 0)
    new_seed = cfg.train.seed + len(names_in_run)  # as when the add-domain started
    for name in domains:
        model.add_domain(name, seed=new_seed)
        state.add(name, seed=new_seed)
    for name in old:
        state.freeze(name)
    # The old domains' weights as they are; on resume the new ones (and their state) continue.
    checkpoint.load_into(run_path, index, model, state if resume else None, names=None if resume else old)

    schedule = Schedule.for_domains([len(f) for f in new_files.values()], cfg.data.batch_size * world, cfg.train.epochs_per_domain,
                                    cfg.train.epochs, cfg.train.decay_fraction)
    if resume:
        offset = int(pending["offset"])
        trainer = checkpoint.safe_load(run_path / index.trainer)
        _restore_rng(trainer)
        start = index.step - offset
        if not quiet:
            print(f"resuming add-domain of {', '.join(domains)} from {index.path.relative_to(run_path)} (step {start})", file=sys.stderr)
    else:
        offset, start = index.step, 0
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        for name, folder in domains.items():
            manifest["domains"].append({"name": name, "images": {"train": len(new_files[name]), "test": len(samples[name]) if samples[name] is not new_files[name] else 0},
                                        "added_by": "add-domain", "added": now, "added_at_step": offset, "source": str(folder.resolve()),
                                        "settings": {"epochs": schedule.total_epochs, "iters": schedule.total_iters,
                                                     "batch_size": cfg.data.batch_size, "lr": cfg.train.lr, "max_iters": max_iters}})
        manifest["adding"] = {"domains": list(domains), "offset": offset}
    stop = schedule.total_iters if max_iters is None else min(max_iters, schedule.total_iters)
    pairs = PairSampler(list(domains), cfg.train.seed + offset, anchors=old)
    files = {**new_files, **old_files}
    return Session(run_path, cfg, model, state, files, samples, pairs, schedule, start, max(start, stop), manifest, index, quiet,
                   offset=offset, dist=ddp, perf=perf_plan)


def add_domains(run: str | Path | None, domains: dict[str, Path], config_file: str | None = None, overrides: list[str] | tuple[str, ...] = (),
                existing_data: str | Path | None = None, device: str = "auto", max_iters: int | None = None,
                resume: bool = False, quiet: bool = False) -> TrainResult:
    """Train new domains against the frozen ones of `run`. Returns the TrainResult (global steps)."""
    session = prepare(run, domains, config_file, overrides, existing_data, device, max_iters, resume, quiet)
    if not resume:
        torch.manual_seed(session.cfg.train.seed + session.offset)
    result = session.run_loop()
    if session.is_main and result.step - session.offset >= session.schedule.total_iters:
        session.manifest.pop("adding", None)  # finished: the new domains are ordinary members now
        rundir.write_manifest(session.run, session.manifest)
    return result
