"""The training loop: data -> the step -> logger, with checkpoints, samples and resume.

`train` trains every domain of a dataset from scratch (or resumes); `add-domain` reuses
`Session.run` with the old domains frozen. Everything the loop needs is decided up front in a
Session; the loop itself only iterates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import atomic
from ..accel import plan as perfmod
from ..accel.stepper import Stepper
from ..config import Config, policy
from ..data.grid import save_grid
from ..data.layouts import Layout, discover, require_trainable
from ..data.loader import EMPTY_DOMAIN, DomainImages, StepBatches, fixed_samples, make_loader
from ..errors import UserError
from ..model.combogan import ComboGAN
from ..runs import checkpoint, rundir
from . import distributed
from .distributed import Dist
from .logger import MetricLogger
from .sampler import PairSampler
from .schedule import Schedule
from .state import TrainState


@dataclass
class TrainResult:
    run: Path
    step: int
    total_iters: int
    interrupted: bool = False
    metrics: dict[str, float] = field(default_factory=dict)


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop finishes its step, saves and returns."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. called from a notebook worker)
                pass
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal is not None:  # a second Ctrl-C: stop right away
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


@dataclass
class Session:
    """Everything one training loop needs, decided before it starts."""

    run: Path
    cfg: Config
    model: ComboGAN
    state: TrainState
    files: dict[str, list[Path]]  # domain -> train files (every domain the sampler can draw)
    samples: dict[str, list[Path]]  # domain -> files to show in progress grids
    pairs: PairSampler
    schedule: Schedule
    start: int
    stop: int
    manifest: dict[str, Any]
    previous: checkpoint.CheckpointIndex | None
    quiet: bool = False
    offset: int = 0  # global step of local step 0 (add-domain continues the run's count)
    dist: Dist | None = None  # set under torchrun; only rank 0 writes files
    perf: perfmod.PerfPlan | None = None  # None: resolve cfg.perf when the loop starts

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def is_main(self) -> bool:
        return self.dist is None or self.dist.is_main

    def run_loop(self) -> TrainResult:
        return _loop(self)


def _trainer_state(bad_steps: int, elapsed: float) -> dict[str, Any]:
    state = {"bad_steps": bad_steps, "elapsed": elapsed, "rng_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(trainer: dict[str, Any]) -> None:
    if "rng_cpu" in trainer:
        torch.set_rng_state(trainer["rng_cpu"])
    if "rng_cuda" in trainer and torch.cuda.is_available():
        states = trainer["rng_cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def _save(s: Session, step: int, bad_steps: int, elapsed: float) -> None:
    """Checkpoint local `step` (saved under its global number), then the manifest. Called on
    every rank: under torchrun each rank's image pools are gathered, and rank 0 writes."""
    rank_pools = s.dist.gather_to_main(s.state.pool_states()) if s.dist is not None else None
    if not s.is_main:
        return
    s.previous = checkpoint.save(s.run, s.model, s.state, s.offset + step, {**_trainer_state(bad_steps, elapsed), "local_step": step},
                                 s.previous, rank_pools=rank_pools)
    checkpoint.prune(s.run, s.cfg.train.keep_checkpoints)
    kept = [str(p.relative_to(s.run)) for p in checkpoint.list_checkpoints(s.run)]
    s.manifest.update(step=s.offset + step, epoch=round(s.schedule.epoch(step), 4), total_iters=s.offset + s.schedule.total_iters,
                      checkpoints=kept, latest=str(s.previous.path.relative_to(s.run)), domain_files=s.previous.domains)
    rundir.write_manifest(s.run, s.manifest)  # last: the manifest only ever names complete checkpoints


@torch.no_grad()
def sample_grid(model: ComboGAN, samples: dict[str, torch.Tensor]) -> list[list[torch.Tensor]]:
    """One row per domain: real | translated to each other domain | reconstruction (via the first).
    Leaves the model in eval mode (the loop restores its training modes)."""
    model.eval()
    rows = []
    for name, x in samples.items():
        others = [n for n in model.names if n != name]
        out = model.translate(x, name, others)
        rec = model.translate(out[others[0]], others[0], name)
        for i in range(x.shape[0]):
            rows.append([x[i]] + [out[o][i] for o in others] + [rec[i]])
    return rows


def _grid_sample(s: Session, name: str) -> torch.Tensor:
    for files in (s.samples[name], s.files[name]):
        x = fixed_samples(files, s.cfg.data.crop_size, s.cfg.data.load_size, 1, s.cfg.data.resize)
        if x is not None:
            return x.to(s.device)
    raise _no_readable_images(s, name)


def _loop(s: Session) -> TrainResult:
    cfg, dev = s.cfg, s.device
    names = list(s.files)
    dataset = DomainImages([s.files[n] for n in names], cfg.data.load_size, cfg.data.crop_size, cfg.data.flip, cfg.data.cache,
                           cfg.data.resize)
    rank, world = (s.dist.rank, s.dist.world_size) if s.dist else (0, 1)
    batches = StepBatches(s.pairs, names, [len(s.files[n]) for n in names], cfg.data.batch_size, s.start, s.stop, cfg.train.seed, rank, world)
    loader = make_loader(dataset, batches, cfg.data.num_workers, dev)
    samples = {n: _grid_sample(s, n) for n in s.samples} if s.is_main else {}
    logger = MetricLogger(s.run / "tb" if s.is_main else None)
    plan = s.perf or perfmod.plan(cfg.perf, cfg.model, dev, s.dist is not None, augmented=s.state.augment is not None)
    perfmod.apply(plan, s.model, s.state)
    step_fn = Stepper(plan, s.model, s.state, cfg.loss, s.dist)
    if not s.quiet:
        print(f"perf: {plan.describe()} on {dev}", file=sys.stderr)
    b = cfg.data.batch_size
    bad_steps, step, elapsed = 0, s.start, 0.0
    # The same on every rank (s.previous is only kept up to date on rank 0), so that all ranks
    # join the same checkpoint saves.
    saved_at = s.previous.step - s.offset if s.previous is not None else None
    wait = busy = 0.0
    window_start, window_step = time.perf_counter(), s.start
    from tqdm import tqdm

    bar = tqdm(total=s.stop, initial=s.start, desc="train", unit="it", disable=s.quiet or not s.is_main, file=sys.stderr, dynamic_ncols=True)
    s.state.train_mode()
    result = TrainResult(s.run, s.offset + s.start, s.offset + s.schedule.total_iters)
    # closing: the overlap threads end with the loop, also when a step raises.
    with _StopFlag() as stop_flag, contextlib.closing(step_fn):
        tick = time.perf_counter()
        for batch, notes in loader:
            got = time.perf_counter()
            wait += got - tick
            pair = s.pairs.pair(step)
            if any(notes):
                _report_skipped(s, notes, pair, b)
            batch = batch.to(dev, non_blocking=True, memory_format=plan.memory_format)
            s.state.set_lr(cfg.train.lr * s.schedule.lr_factor(step), pair)
            if s.state.augment is not None:
                s.state.augment.step = s.offset + step
            metrics = step_fn(pair, batch[:b], batch[b:])
            if s.state.ema is not None and "skipped" not in metrics:
                s.state.ema.update(pair)
            if "skipped" in metrics:
                bad_steps += 1
                logger.add({"train/skipped_steps": metrics["skipped"]})
                if bad_steps >= cfg.train.max_bad_steps:
                    raise UserError(f"{bad_steps} consecutive steps had non-finite losses (last at step {step}); "
                                    f"stopped without saving them. Lower train.lr or check the data; the last good checkpoint is kept")
            else:
                bad_steps = 0
                logger.add(metrics)
            step += 1
            tick = time.perf_counter()
            busy += tick - got
            if step % cfg.train.log_every == 0 or step == s.stop:
                now = time.perf_counter()
                rate = (step - window_step) / max(now - window_start, 1e-9)
                logger.flush(s.offset + step, {"lr": cfg.train.lr * s.schedule.lr_factor(step - 1), "perf/iters_per_s": rate,
                                    "perf/data_wait_fraction": wait / max(wait + busy, 1e-9), "train/epoch": s.schedule.epoch(step)})
                elapsed += now - window_start
                window_start, window_step, wait, busy = now, step, 0.0, 0.0
                bar.set_postfix({k: f"{v:.3f}" for k, v in logger.summary().items()}, refresh=False)
            stopping = stop_flag.signal is not None
            if s.dist is not None:  # all ranks stop at the same step, or the others would hang
                stopping = s.dist.any_true(stopping, dev)
            if s.is_main and (step % cfg.train.sample_every == 0 or step == s.stop):
                grid = save_grid(sample_grid(s.model, samples), s.run / "samples" / f"step_{s.offset + step:09d}.png")
                s.state.train_mode()
                logger.image("samples", grid, s.offset + step)
            if step % cfg.train.checkpoint_every == 0 or step == s.stop or stopping:
                _save(s, step, bad_steps, elapsed)
                saved_at = step
            bar.update(1)
            if stopping:
                result.interrupted = True
                break
            tick = time.perf_counter()
    bar.close()
    logger.close()
    if saved_at != step:  # e.g. nothing left to do on resume
        _save(s, step, bad_steps, elapsed)
    if s.dist is not None:
        s.dist.barrier()
    result.step, result.metrics = s.offset + step, logger.last
    return result


def _no_readable_images(s: Session, name: str) -> UserError:
    return UserError(f"domain '{name}' has no readable images left (all {len(s.files[name])} files failed to decode)")


def _report_skipped(s: Session, notes: list[str], pair: tuple[str, str], batch_size: int) -> None:
    """Warn once per unreadable file (a summary after 10) and count them in the manifest.
    The first batch_size notes come from the pair's first domain, the rest from its second."""
    skipped = s.manifest.setdefault("skipped_files", {})
    for i, note in enumerate(notes):
        name = pair[0] if i < batch_size else pair[1]
        if note.startswith(EMPTY_DOMAIN):
            raise _no_readable_images(s, name)
        for path in filter(None, note.split("\n")):
            if path in skipped.setdefault(name, []):
                continue
            skipped[name].append(path)
            total = sum(len(v) for v in skipped.values())
            if total <= 10:
                print(f"warning: skipping unreadable image {path}", file=sys.stderr)
            elif total == 11:
                print("warning: more unreadable images are being skipped; see skipped_files in manifest.json", file=sys.stderr)


def _check_resume_config(saved: Config, cfg: Config) -> list[str]:
    """Architecture must match exactly; other changes are allowed but reported."""
    if saved.model != cfg.model:
        diff = [f"model.{k}: {getattr(saved.model, k)} -> {getattr(cfg.model, k)}" for k in dataclasses.asdict(cfg.model) if getattr(saved.model, k) != getattr(cfg.model, k)]
        raise UserError(f"cannot resume: the run was trained with a different architecture ({'; '.join(diff)})")
    changed = []
    for section in (f.name for f in dataclasses.fields(cfg) if f.name != "model"):  # every other section
        a, c = getattr(saved, section), getattr(cfg, section)
        changed += [f"{section}.{k}" for k in dataclasses.asdict(c) if getattr(a, k) != getattr(c, k)]
    return changed


def prepare(domains_dir: str | Path, cfg: Config, run: str | Path | None = None, device: str = "auto",
            max_iters: int | None = None, resume: bool = False, quiet: bool = False) -> Session:
    """Decide everything for `train` (and validate every input) before any file is written."""
    layout: Layout = discover(domains_dir)
    require_trainable(layout)
    run_path = Path(run) if run is not None else rundir.default_run_for(Path(domains_dir))
    ddp, dev, world = distributed.join(device)
    perf_plan = perfmod.plan(cfg.perf, cfg.model, dev, ddp is not None, augmented=bool(policy(cfg.train.diffaugment)))
    quiet = quiet or (ddp is not None and not ddp.is_main)
    names = layout.names
    files = {n: layout.domains[n].files("train") for n in names}
    samples = {n: (layout.domains[n].files("test") or files[n]) for n in names}
    counts = [len(files[n]) for n in names]
    # An epoch is a pass over the whole dataset by all ranks together (global batch = world x batch).
    schedule = Schedule.for_domains(counts, cfg.data.batch_size * world, cfg.train.epochs_per_domain, cfg.train.epochs, cfg.train.decay_fraction)
    if max_iters is not None and max_iters < 0:
        raise UserError("--max-iters must be >= 0")
    stop = schedule.total_iters if max_iters is None else min(max_iters, schedule.total_iters)
    manifest_exists = (run_path / rundir.MANIFEST).is_file()
    model = ComboGAN(cfg.model, names, seed=cfg.train.seed).to(dev)
    state = TrainState(model, cfg.train, rank=ddp.rank if ddp else 0)
    for name in names:
        state.add(name)
    previous, start = None, 0
    if resume:
        if not manifest_exists:
            raise UserError(f"cannot resume: no run at {run_path} (train without --resume first)")
        manifest = rundir.read_manifest(run_path)
        saved_names = rundir.domain_names(manifest)
        if saved_names != names:
            raise UserError(f"cannot resume: the run has domains {saved_names} but {domains_dir} has {names}")
        saved = rundir.read_config(run_path)
        changed = _check_resume_config(saved, cfg)
        rundir.check_identity_meaning(run_path, manifest, saved, cfg)
        if changed and not quiet:
            print(f"note: resuming with changed settings: {', '.join(changed)}", file=sys.stderr)
        atomic.sweep_temp_files(run_path)
        previous = checkpoint.require_latest(run_path, "cannot resume")
        if checkpoint.load_arch(previous) != cfg.model:
            raise UserError("cannot resume: the checkpoint's architecture differs from the run's config.yaml")
        trainer = checkpoint.load_into(run_path, previous, model, state)
        _restore_rng(trainer)
        start = previous.step
        if not quiet:
            print(f"resuming {run_path} from {previous.path.relative_to(run_path)} (step {start})", file=sys.stderr)
    else:
        if manifest_exists:
            raise UserError(f"run {run_path} already exists; pass --resume to continue it or --run to train elsewhere")
        manifest = rundir.new_manifest(
            [{"name": n, "images": layout.counts()[n], "added_by": "train", "added": time.strftime("%Y-%m-%dT%H:%M:%S%z")} for n in names],
            dataset=str(Path(domains_dir).resolve()), layout=layout.kind)
    if start > stop and not quiet:
        print(f"note: the run is already at step {start}, past --max-iters {stop}", file=sys.stderr)
    return Session(run_path, cfg, model, state, files, samples, PairSampler(names, cfg.train.seed), schedule, start, max(start, stop),
                   manifest, previous, quiet, dist=ddp, perf=perf_plan)


def train(domains_dir: str | Path, cfg: Config, run: str | Path | None = None, device: str = "auto",
          max_iters: int | None = None, resume: bool = False, quiet: bool = False) -> TrainResult:
    """Train (or resume) a ComboGAN run on every domain of `domains_dir`."""
    session = prepare(domains_dir, cfg, run, device, max_iters, resume, quiet)
    if session.is_main:
        try:
            session.run.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create run directory {session.run}: {exc.strerror or exc}") from None
        if not resume:
            rundir.write_config(session.run, cfg)
    if not resume:
        torch.manual_seed(cfg.train.seed)
    return session.run_loop()
