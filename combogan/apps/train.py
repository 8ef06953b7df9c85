"""`combogan train` and `combogan add-domain`: a training session (combogan.training) run with
the step its perf plan makes (combogan.accel)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..accel.plan import plan
from ..accel.stepper import Stepper
from ..config import Config, policy
from ..training import adddomain, loop, setup
from ..training.budget import TimeBudget
from ..training.session import Session, TrainResult


def stepper(s: Session) -> Stepper:
    """The step as s.cfg.perf asks on s's device; refuses (UserError) a setting that cannot work there."""
    p = plan(s.cfg.perf, s.cfg.model, s.device, s.dist is not None, augmented=bool(policy(s.cfg.train.diffaugment)))
    return Stepper(p, s.model, s.state, s.cfg.loss, s.dist)


def train(domains_dir: str | Path, cfg: Config, run: str | Path | None = None, device: str = "auto",
          max_iters: int | None = None, resume: bool = False, quiet: bool = False,
          time_budget: float | TimeBudget | None = None) -> TrainResult:
    """Train (or resume) a ComboGAN run on every domain of `domains_dir`; with `time_budget`
    (seconds), its schedule is fitted to end within that much training time."""
    s = setup.for_train(domains_dir, cfg, run, device, max_iters, resume, quiet)
    runner = stepper(s)
    if not resume:
        setup.create_run(s)
        torch.manual_seed(cfg.train.seed)
    return loop.run(s, runner, _budget(time_budget))


def _budget(time_budget: float | TimeBudget | None) -> TimeBudget | None:
    return TimeBudget(time_budget) if isinstance(time_budget, (int, float)) else time_budget


def add_domains(run: str | Path | None, domains: dict[str, Path], config_file: str | None = None, overrides: list[str] | tuple[str, ...] = (),
                existing_data: str | Path | None = None, device: str = "auto", max_iters: int | None = None,
                resume: bool = False, quiet: bool = False, time_budget: float | TimeBudget | None = None) -> TrainResult:
    """Train new domains against the frozen ones of `run`. Returns the TrainResult (global steps).
    With `time_budget` (seconds), the new domains' schedule is fitted to end within it."""
    s = adddomain.for_add_domain(run, domains, config_file, overrides, existing_data, device, max_iters, resume, quiet)
    runner = stepper(s)
    if not resume:
        torch.manual_seed(s.cfg.train.seed + s.offset)
    result = loop.run(s, runner, _budget(time_budget))
    adddomain.finish(s, result.step)
    return result
