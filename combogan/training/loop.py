"""The training loop: data -> the step -> logger, with checkpoints, samples and resume.

It runs a Session (combogan.training.session) with a step runner handed to it from above:
anything called as runner(pair, real_a, real_b) -> losses, with `memory_format`, `describe()`
and `close()` (combogan.accel.stepper.Stepper: the paper's step as a perf plan runs it).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from typing import Any, Protocol

import torch

from .. import config
from ..data.grid import save_grid
from ..data.loader import EMPTY_DOMAIN, DomainImages, StepBatches, fixed_samples, make_loader
from ..errors import UserError
from ..model.combogan import ComboGAN
from ..progress import Progress
from ..runs import checkpoint, rundir
from .budget import TimeBudget
from .logger import MetricLogger
from .session import Session, TrainResult, trainer_state


class StepRunner(Protocol):
    memory_format: torch.memory_format

    def __call__(self, pair: tuple[str, str], real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


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

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


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


def run(s: Session, runner: StepRunner, budget: TimeBudget | None = None) -> TrainResult:
    """Train s from s.start to s.stop (or a stop signal), checkpointing as configured; with a
    budget, the schedule is fitted into it (combogan.training.budget)."""
    return _Loop(s, runner, budget).run()


class _Loop:
    def __init__(self, s: Session, runner: StepRunner, budget: TimeBudget | None = None):
        self.s, self.runner, self.cfg, self.budget = s, runner, s.cfg, budget
        self.configured, self.limit, self.fitted = s.schedule.total_iters, s.stop, False
        self.logger = MetricLogger(s.run / "tb" if s.is_main else None)
        self.samples = {n: self._grid_sample(n) for n in s.samples} if s.is_main else {}
        self.progress = Progress(s.stop, "train", initial=s.start, disable=s.quiet or not s.is_main, every=self.cfg.train.log_every)
        self.bad_steps, self.step, self.elapsed = 0, s.start, 0.0
        # The same on every rank (s.previous is only kept up to date on rank 0), so that all ranks
        # join the same checkpoint saves.
        self.saved_at = s.previous.step - s.offset if s.previous is not None else None
        self.wait = self.busy = 0.0
        self.window_start, self.window_step = time.perf_counter(), s.start
        self.result = TrainResult(s.run, s.offset + s.start, s.offset + s.schedule.total_iters)

    def run(self) -> TrainResult:
        s = self.s
        if not s.quiet:
            print(f"perf: {self.runner.describe()} on {s.device}", file=sys.stderr)
        s.state.train_mode()
        if self.budget is not None:
            self._start_budget()
        # closing: the overlap threads end with the loop, also when a step raises.
        with _StopFlag() as stop_flag, contextlib.closing(self.runner):
            tick = time.perf_counter()
            for batch, notes in self._loader():
                got = time.perf_counter()
                self.wait += got - tick
                self._train_step(batch, notes)
                self.busy += time.perf_counter() - got
                if self._after_step(stop_flag):
                    break
                tick = time.perf_counter()
        self.progress.close()
        self.logger.close()
        if self.saved_at != self.step:  # e.g. nothing left to do on resume
            self._save()
        if s.dist is not None:
            s.dist.barrier()
        self.result.step, self.result.metrics = s.offset + self.step, self.logger.last
        return self.result

    def _loader(self) -> torch.utils.data.DataLoader:
        s, data = self.s, self.cfg.data
        names = list(s.files)
        dataset = DomainImages([s.files[n] for n in names], data.load_size, data.crop_size, data.flip, data.cache, data.resize)
        rank, world = (s.dist.rank, s.dist.world_size) if s.dist else (0, 1)
        batches = StepBatches(s.pairs, names, [len(s.files[n]) for n in names], data.batch_size, s.start, s.stop, self.cfg.train.seed,
                              rank, world)
        return make_loader(dataset, batches, data.num_workers, s.device)

    def _train_step(self, batch: torch.Tensor, notes: list[str]) -> None:
        s, b, step = self.s, self.cfg.data.batch_size, self.step
        pair = s.pairs.pair(step)
        if any(notes):
            _report_skipped(s, notes, pair, b)
        batch = batch.to(s.device, non_blocking=True, memory_format=self.runner.memory_format)
        s.state.set_lr(self.cfg.train.lr * s.schedule.lr_factor(step), pair)
        if s.state.augment is not None:
            s.state.augment.step = s.offset + step
        metrics = self.runner(pair, batch[:b], batch[b:])
        if "skipped" in metrics:
            self.bad_steps += 1
            self.logger.add({"train/skipped_steps": metrics["skipped"]})
            if self.bad_steps >= self.cfg.train.max_bad_steps:
                raise UserError(f"{self.bad_steps} consecutive steps had non-finite losses (last at step {step}); "
                                f"stopped without saving them. Lower train.lr or check the data; the last good checkpoint is kept")
        else:
            if s.state.ema is not None:
                s.state.ema.update(pair)
            self.bad_steps = 0
            self.logger.add(metrics)
        self.step += 1

    def _after_step(self, stop_flag: _StopFlag) -> bool:
        """Log, sample and checkpoint where due; True when the loop must stop now."""
        expired = self._follow_budget()
        s, t, step = self.s, self.cfg.train, self.step
        stopping = stop_flag.signal is not None or expired
        if s.dist is not None:  # all ranks stop at the same step, or the others would hang
            stopping = s.dist.any_true(stopping, s.device)
        if step % t.log_every == 0 or step == s.stop or stopping:  # the curves reach the last step done
            self._log()
        if s.is_main and (step % t.sample_every == 0 or step == s.stop):
            grid = save_grid(sample_grid(s.model, self.samples), s.run / "samples" / f"step_{s.offset + step:09d}.png")
            s.state.train_mode()
            self.logger.image("samples", grid, s.offset + step)
        if step % t.checkpoint_every == 0 or step == s.stop or stopping:
            self._save()
        self.progress.update(1)
        self.result.interrupted = stopping
        return stopping or step >= s.stop

    def _start_budget(self) -> None:
        s = self.s
        self.budget.start(self.step)
        if s.schedule.decay_fraction >= 1.0 and not s.quiet:
            print("note: with train.decay_fraction=1 every step's learning rate depends on the schedule's length, so --time "
                  "cannot shorten it; the run stops at the deadline", file=sys.stderr)

    def _follow_budget(self) -> bool:
        """Fit the schedule to the time budget where due; True once the budget is spent."""
        b, s = self.budget, self.s
        if b is None:
            return False
        now = b.clock()  # once per step, so that every decision below sees the same time
        b.observe(self.step, now)
        if self.fitted:  # again at every log step as the speed changes, and last as the decay begins
            due = self.step % self.cfg.train.log_every == 0 or self.step == s.schedule.constant_iters
        else:  # every rank must take the same branch: the fit below is a collective under torchrun
            due = b.measured(self.step, now)
            due = s.dist.all_true(due, s.device) if s.dist is not None else due
        if due:
            self._fit(b.fit(s.schedule, self.configured, self.step, now), b.rate(self.step, now))
        if b.expired(now) and self.step < s.stop:
            if not s.quiet:
                print(f"note: the --time budget is spent at step {s.offset + self.step:,} of {s.offset + s.stop:,}", file=sys.stderr)
            return True
        return False

    def _fit(self, total: int, rate: float) -> None:
        """Shorten (or lengthen, up to the configured length) the schedule to `total` iterations;
        recorded (config.yaml, or an add-domain's manifest), so a resume follows the same schedule."""
        s, first = self.s, not self.fitted
        if s.dist is not None:  # the slowest rank's fit, on every rank
            total = s.dist.min_int(total, s.device)
        self.fitted = True
        if total != s.schedule.total_iters:
            s.schedule, s.stop = s.schedule.with_total(total), min(self.limit, total)
            s.cfg = self.cfg = config.merge(self.cfg, {"train": {"iters": total}})
            self.result.total_iters = s.offset + total
            self.progress.set_total(s.stop)
            if s.is_main:
                _record_length(s)
        if first and not s.quiet:
            ends = "the configured schedule fits: it ends" if total == self.configured else "the schedule now ends"
            print(f"note: --time: at {rate:.3g} it/s {ends} at step {s.offset + total:,} "
                  f"(its learning rate decaying from step {s.offset + s.schedule.constant_iters:,})", file=sys.stderr)

    def _log(self) -> None:
        s, step = self.s, self.step
        now = time.perf_counter()
        rate = (step - self.window_step) / max(now - self.window_start, 1e-9)
        self.logger.flush(s.offset + step, {"lr": self.cfg.train.lr * s.schedule.lr_factor(step - 1), "perf/iters_per_s": rate,
                                            "perf/data_wait_fraction": self.wait / max(self.wait + self.busy, 1e-9),
                                            "train/epoch": s.schedule.epoch(step)})
        self.elapsed += now - self.window_start
        self.window_start, self.window_step, self.wait, self.busy = now, step, 0.0, 0.0
        self.progress.set_postfix(self.logger.summary())

    def _save(self) -> None:
        """Checkpoint the local step (saved under its global number), then the manifest. Called on
        every rank: under torchrun each rank's image pools are gathered, and rank 0 writes."""
        s, step = self.s, self.step
        self.saved_at = step
        rank_pools = s.dist.gather_to_main(s.state.pool_states()) if s.dist is not None else None
        if not s.is_main:
            return
        s.previous = checkpoint.save(s.run, s.model, s.state, s.offset + step, {**trainer_state(self.bad_steps, self.elapsed), "local_step": step},
                                     s.previous, rank_pools=rank_pools)
        checkpoint.prune(s.run, self.cfg.train.keep_checkpoints)
        kept = [str(p.relative_to(s.run)) for p in checkpoint.list_checkpoints(s.run)]
        s.manifest.update(step=s.offset + step, epoch=round(s.schedule.epoch(step), 4), total_iters=s.offset + s.schedule.total_iters,
                          checkpoints=kept, latest=str(s.previous.path.relative_to(s.run)), domain_files=s.previous.domains)
        rundir.write_manifest(s.run, s.manifest)  # last: the manifest only ever names complete checkpoints

    def _grid_sample(self, name: str) -> torch.Tensor:
        s, data = self.s, self.cfg.data
        for files in (s.samples[name], s.files[name]):
            x = fixed_samples(files, data.crop_size, data.load_size, 1, data.resize)
            if x is not None:
                return x.to(s.device)
        raise _no_readable_images(s, name)


def _record_length(s: Session) -> None:
    """Keep a length fitted to `--time` where a resume reads it. A run's own length goes into
    config.yaml at once. An add-domain's belongs to its new domains, not to the run's config: it
    goes into the manifest's pending add-domain, written with the next checkpoint, so a resume
    from any checkpoint finds the length that was in force there."""
    total, adding = s.schedule.total_iters, s.manifest.get("adding")
    if adding is None:
        rundir.write_config(s.run, s.cfg)
        return
    adding["iters"] = total
    for entry in s.manifest["domains"]:
        if entry["name"] in adding["domains"]:
            entry["settings"]["iters"] = total


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
