"""Run by tests/test_distributed.py under torchrun: train, then dump this rank's weight digest."""

import hashlib
import json
import sys
from pathlib import Path

import torch

from combogan.apps.train import stepper
from combogan.config import load
from combogan.training import loop, setup

data, run, out, iters, resume = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
cfg = load(None, sys.argv[6:])
session = setup.for_train(data, cfg, run=run, device="cpu", max_iters=iters, resume=resume, quiet=True)
runner = stepper(session)
if not resume:
    setup.create_run(session)
    torch.manual_seed(cfg.train.seed)
result = loop.run(session, runner)
digest = hashlib.sha256()
for name, p in sorted(session.model.state_dict().items()):
    digest.update(name.encode() + p.detach().cpu().numpy().tobytes())
(out / f"rank{session.dist.rank}.json").write_text(json.dumps({"step": result.step, "digest": digest.hexdigest()}))
