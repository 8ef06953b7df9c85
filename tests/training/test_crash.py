"""Crash safety: kill -9 at random moments, SIGTERM, non-finite losses, unwritable run dirs."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import TINY_SET, tiny_config

from combogan.apps.train import train
from combogan.errors import UserError
from combogan.runs import checkpoint

ARGS = [a for s in TINY_SET for a in ("--set", s)] + ["--set", "train.checkpoint_every=2", "--device", "cpu", "-q"]


def _train_cmd(data, run, iters, resume=False):
    cmd = [sys.executable, "-m", "combogan", "train", "--domains", str(data), "--run", str(run), "--max-iters", str(iters), *ARGS]
    return cmd + (["--resume"] if resume else [])


def _every_file_readable(run):
    for path in run.rglob("*"):
        if path.is_file() and path.suffix == ".pt":
            checkpoint.safe_load(path)
        elif path.is_file() and path.suffix in (".json", ".yaml"):
            path.read_text()


@pytest.mark.parametrize("trial", range(3))
def test_kill_9_at_random_moments_then_resume(seasons, tmp_path, trial):
    run = tmp_path / "run"
    rng = random.Random(trial)
    proc = subprocess.Popen(_train_cmd(seasons, run, 40), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (run / "manifest.json").exists() and time.time() < deadline:  # let it reach a first checkpoint
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _every_file_readable(run)  # a half-written temp file is never a .pt/.json the run reads
    res = subprocess.run(_train_cmd(seasons, run, 40, resume=True), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert checkpoint.latest(run).step == 40
    assert not list(run.rglob(".*.tmp"))  # resume sweeps leftovers of interrupted writes


def test_sigterm_saves_and_exits_zero(seasons, tmp_path):
    run = tmp_path / "run"
    cmd = _train_cmd(seasons, run, 100000)
    cmd[cmd.index("train.checkpoint_every=2")] = "train.checkpoint_every=100000"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list((run / "tb").glob("events*")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "--resume" in err
    index = checkpoint.latest(run)
    assert index is not None and index.step > 0
    res = subprocess.run(_train_cmd(seasons, run, index.step + 2, resume=True), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and checkpoint.latest(run).step == index.step + 2


def test_non_finite_losses_skip_then_stop_without_saving_nan(seasons, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(seasons, tiny_config(), run=run, device="cpu", max_iters=2, quiet=True)
    from combogan.training.step import Step  # what the Stepper `train` runs calls

    real_call = Step.__call__

    def poisoned(self, pair, a, b):
        return real_call(self, pair, a * float("nan"), b)

    monkeypatch.setattr(Step, "__call__", poisoned)
    with pytest.raises(UserError, match="3 consecutive steps had non-finite losses"):
        train(seasons, tiny_config("train.max_bad_steps=3"), run=run, device="cpu", max_iters=10, resume=True, quiet=True)
    index = checkpoint.latest(run)
    assert index.step == 2
    for name in index.domains:
        state = checkpoint.load_weights(index.file(run, name, "nets"))
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_run_dir(seasons, tmp_path):  # pragma: no cover - CI runs as root
    run = tmp_path / "ro"
    run.mkdir()
    run.chmod(0o500)
    with pytest.raises(UserError, match="cannot write"):
        train(seasons, tiny_config(), run=run / "x", device="cpu", max_iters=2, quiet=True)


def test_write_failure_leaves_previous_checkpoint(seasons, tmp_path, monkeypatch):
    """A full disk mid-save: clear error, and the previous checkpoint still loads."""
    run = tmp_path / "run"
    train(seasons, tiny_config(), run=run, device="cpu", max_iters=2, quiet=True)
    import combogan.atomic as atomic

    real = atomic.os.fsync
    calls = {"n": 0}

    def failing_fsync(fd):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(28, "No space left on device")
        return real(fd)

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(UserError, match="No space left on device"):
        train(seasons, tiny_config(), run=run, device="cpu", max_iters=4, resume=True, quiet=True)
    monkeypatch.setattr(atomic.os, "fsync", real)
    assert checkpoint.latest(run).step == 2
    _every_file_readable(run)
