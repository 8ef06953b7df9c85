"""Run by tests/test_distributed.py under torchrun: train, then dump this rank's weight digest."""

import hashlib
import json
import sys
from pathlib import Path

import torch

from combogan.config import load
from combogan.training.loop import prepare

data, run, out, iters, resume = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
cfg = load(None, sys.argv[6:])
session = prepare(data, cfg, run=run, device="cpu", max_iters=iters, resume=resume, quiet=True)
if session.is_main:
    run.mkdir(parents=True, exist_ok=True)
    from combogan.runs import rundir

    if not resume:
        rundir.write_config(run, cfg)
if not resume:
    torch.manual_seed(cfg.train.seed)
result = session.run_loop()
digest = hashlib.sha256()
for name, p in sorted(session.model.state_dict().items()):
    digest.update(name.encode() + p.detach().cpu().numpy().tobytes())
(out / f"rank{session.dist.rank}.json").write_text(json.dumps({"step": result.step, "digest": digest.hexdigest()}))
