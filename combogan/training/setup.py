"""`train`'s session: every domain of a dataset, from scratch or resumed from the run's newest
checkpoint. Every input is checked before any file is written."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from ..config import Config
from ..data.layouts import Layout, discover, require_trainable
from ..data.sampler import PairSampler
from ..errors import UserError
from ..runs import checkpoint, rundir
from .session import Domain, Session, open_session


def _check_resume_config(saved: Config, cfg: Config) -> list[str]:
    """Architecture must match exactly; other changes are allowed but reported."""
    if saved.model != cfg.model:
        diff = [f"model.{k}: {getattr(saved.model, k)} -> {getattr(cfg.model, k)}" for k in dataclasses.asdict(cfg.model)
                if getattr(saved.model, k) != getattr(cfg.model, k)]
        raise UserError(f"cannot resume: the run was trained with a different architecture ({'; '.join(diff)}); "
                        "resume without --config to keep the run's own settings, or --set them back")
    changed = []
    for section in (f.name for f in dataclasses.fields(cfg) if f.name != "model"):  # every other section
        a, c = getattr(saved, section), getattr(cfg, section)
        changed += [f"{section}.{k}" for k in dataclasses.asdict(c) if getattr(a, k) != getattr(c, k)]
    return changed


def _resumable(run: Path, layout: Layout, cfg: Config, domains_dir: str | Path) -> tuple[dict, checkpoint.CheckpointIndex, list[str]]:
    """The run's manifest, newest complete checkpoint and the settings `cfg` changes, once the
    run is known to fit `cfg` and the dataset."""
    if not (run / rundir.MANIFEST).is_file():
        raise UserError(f"cannot resume: no run at {run} (train without --resume first)")
    manifest = rundir.read_manifest(run)
    saved_names = rundir.domain_names(manifest)
    if saved_names != layout.names:
        raise UserError(f"cannot resume: the run has domains {saved_names} but {domains_dir} has {layout.names}")
    saved = rundir.read_config(run)
    changed = _check_resume_config(saved, cfg)
    rundir.check_identity_meaning(run, manifest, saved, cfg)
    checkpoint.sweep(run)
    previous = checkpoint.require_latest(run, "cannot resume")
    if checkpoint.load_arch(previous) != cfg.model:
        raise UserError("cannot resume: the checkpoint's architecture differs from the run's config.yaml")
    return manifest, previous, changed


def for_train(domains_dir: str | Path, cfg: Config, run: str | Path | None = None, device: str = "auto",
              max_iters: int | None = None, resume: bool = False, quiet: bool = False) -> Session:
    """The session of `combogan train`: every domain of `domains_dir` (or the run's, resumed)."""
    layout = discover(domains_dir)
    require_trainable(layout)
    run_path = Path(run) if run is not None else rundir.default_run_for(Path(domains_dir))
    previous, changed = None, []
    if resume:
        manifest, previous, changed = _resumable(run_path, layout, cfg, domains_dir)
    elif (run_path / rundir.MANIFEST).is_file():
        raise UserError(f"run {run_path} already exists; pass --resume to continue it or --run to train elsewhere")
    else:
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        manifest = rundir.new_manifest([{"name": n, "images": layout.counts()[n], "added_by": "train", "added": now} for n in layout.names],
                                       dataset=str(Path(domains_dir).resolve()), layout=layout.kind)
    domains = []
    for name, d in layout.domains.items():
        files = d.files("train")
        domains.append(Domain(name, files, d.files("test") or files, cfg.train.seed))
    s = open_session(run_path, cfg, cfg.model, domains, PairSampler(layout.names, cfg.train.seed), manifest,
                     previous=previous, resume=resume, device=device, max_iters=max_iters, quiet=quiet)
    if resume and not s.quiet:
        if changed:
            print(f"note: resuming with changed settings: {', '.join(changed)}", file=sys.stderr)
        print(f"resuming {run_path} from {previous.path.relative_to(run_path)} (step {s.start})", file=sys.stderr)
    return s


def create_run(s: Session) -> None:
    """The new run's directory and config.yaml (rank 0)."""
    if not s.is_main:
        return
    try:
        s.run.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create run directory {s.run}: {exc.strerror or exc}") from None
    rundir.write_config(s.run, s.cfg)
