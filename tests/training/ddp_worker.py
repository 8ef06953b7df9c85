"""Run by tests/test_distributed.py under torchrun: train, then dump this rank's weight digest."""

import hashlib
import itertools
import json
import os
import sys
from pathlib import Path

import torch

from combogan.apps.train import stepper
from combogan.config import load
from combogan.training import loop, setup
from combogan.training.budget import TimeBudget

data, run, out, iters, resume = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
cfg = load(None, sys.argv[6:])
session = setup.for_train(data, cfg, run=run, device="cpu", max_iters=iters, resume=resume, quiet=True)
runner = stepper(session)
if not resume:
    setup.create_run(session)
    torch.manual_seed(cfg.train.seed)
budget = None
if os.environ.get("DDP_BUDGET"):  # "SECONDS:S0,S1": a time budget, each rank's clock moving S_rank seconds a step
    seconds, per_step = os.environ["DDP_BUDGET"].split(":")
    ticks = itertools.count(0.0, float(per_step.split(",")[session.dist.rank]))
    budget = TimeBudget(float(seconds), clock=lambda: next(ticks))
result = loop.run(session, runner, budget)
digest = hashlib.sha256()
for name, p in sorted(session.model.state_dict().items()):
    digest.update(name.encode() + p.detach().cpu().numpy().tobytes())
(out / f"rank{session.dist.rank}.json").write_text(json.dumps({"step": result.step, "total": result.total_iters, "digest": digest.hexdigest()}))
