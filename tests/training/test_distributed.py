"""torchrun with 2 CPU processes (gloo): same pairs, different images, identical weights, equal to
one process with the doubled batch, rank 0 alone writes, resume works."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import TINY_SET, tiny_config

from combogan.apps.train import train
from combogan.data.loader import StepBatches
from combogan.data.sampler import PairSampler
from combogan.runs import checkpoint

SETTINGS = [s for s in TINY_SET if not s.startswith("data.batch_size")] + ["train.checkpoint_every=2"]


def _torchrun_env(folder: Path) -> dict[str, str]:
    """One thread per process; torchrun's log folders inside the test's folder, not in /tmp."""
    scratch = folder / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch)}


def _torchrun(data, run, out, iters, resume=False, settings=(), env=None):
    env = {**_torchrun_env(out), **(env or {}), "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).parent / "ddp_worker.py"), str(data), str(run), str(out), str(iters), "1" if resume else "0",
           *SETTINGS, *settings, "data.batch_size=1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_ranks_share_pairs_but_read_different_images():
    pairs = PairSampler(["a", "b", "c"], seed=0)
    r0 = list(StepBatches(pairs, ["a", "b", "c"], [10, 7, 9], 2, 0, 40, seed=0, rank=0, world_size=2))
    r1 = list(StepBatches(pairs, ["a", "b", "c"], [10, 7, 9], 2, 0, 40, seed=0, rank=1, world_size=2))
    single = list(StepBatches(pairs, ["a", "b", "c"], [10, 7, 9], 4, 0, 40, seed=0))
    for k0, k1, k in zip(r0, r1, single):
        assert [d for d, _, _ in k0] == [d for d, _, _ in k1]  # same domains (the pair) on both ranks
        # together the two ranks read exactly the single-process batch of 4 per side
        assert sorted(k0[:2] + k1[:2]) == sorted(k[:4]) and sorted(k0[2:] + k1[2:]) == sorted(k[4:])
    # different images: within one pass of a domain the two ranks' files never overlap
    first = [set(i for _, i, _ in k0[:2]) & set(i for _, i, _ in k1[:2]) for k0, k1 in zip(r0[:2], r1[:2])]
    assert first == [set(), set()]


def test_torchrun_equals_one_process_with_the_doubled_batch(seasons, tmp_path):
    """One step from identical state (pools off: they are per rank by design): the networks after
    it compute what one process with the doubled batch computes (InstanceNorm is per sample)."""
    from conftest import assert_same_functions, network_outputs

    from combogan.apps.translator import Translator

    out = tmp_path / "out"
    out.mkdir()
    # The paper's networks, identity on, no critic augmentation: augmentation is drawn per rank,
    # so two ranks are not one doubled batch with it on; and Adam's first step turns rounding-level
    # gradient differences into +-lr steps, which the paper's nets (IN after every biased conv)
    # cancel but a shared PReLU slope does not, so the tolerance below can stay tight. The other
    # torchrun tests run the defaults.
    # fp32: bf16 (auto on CPUs with AMX) rounds by batch shape, so K processes would not equal one bit for bit.
    settings = ["train.pool_size=0", "train.diffaugment=", "model.activation=relu", "model.upsample=transpose", "loss.lambda_identity=0.5",
                "perf.precision=fp32"]
    ranks = _torchrun(seasons, tmp_path / "ddp", out, 1, settings=settings)
    assert ranks[0]["digest"] == ranks[1]["digest"] and ranks[0]["step"] == 1  # identical weights on every rank
    assert len(list((tmp_path / "ddp" / "tb").glob("events*"))) == 1  # only rank 0 wrote
    cfg = tiny_config(*settings, "data.batch_size=2")
    train(seasons, cfg, run=tmp_path / "single", device="cpu", max_iters=1, quiet=True)
    train(seasons, cfg, run=tmp_path / "init", device="cpu", max_iters=0, quiet=True)
    ddp, single, init = (Translator(tmp_path / r).model for r in ("ddp", "single", "init"))
    assert_same_functions(ddp, single, rtol=0, atol=2e-3)
    # ... which is a real check: the step moved those outputs by far more than that.
    moved = max((a - b).abs().max().item() for a, b in zip(network_outputs(single).values(), network_outputs(init).values()))
    assert moved > 2e-2


def test_torchrun_resume_is_exact_with_per_rank_pools(seasons, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    pools = ["train.pool_size=1"]  # full after one query: every later pool draw matters
    _torchrun(seasons, tmp_path / "ddp", out, 4, settings=pools)
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path / "ddp")] == ["step_000000002", "step_000000004"]
    index = checkpoint.latest(tmp_path / "ddp")
    states = [checkpoint.safe_load(index.file(tmp_path / "ddp", n, "state")) for n in index.domains]
    saved = [s["rank_pools"] for s in states if len(s["pool"]["images"])]
    assert saved and all(len(r) == 2 for r in saved)  # both ranks' pools are in the checkpoint ...
    assert any(not torch.equal(r[0]["images"], r[1]["images"]) for r in saved)  # ... and they differ
    resumed = _torchrun(seasons, tmp_path / "ddp", out, 7, resume=True, settings=pools)
    straight = _torchrun(seasons, tmp_path / "straight", out, 7, settings=pools)
    assert resumed[0]["step"] == straight[0]["step"] == 7
    assert [r["digest"] for r in resumed] == [r["digest"] for r in straight]  # bit for bit, both ranks


def test_torchrun_ranks_fit_a_time_budget_alike(seasons, tmp_path):
    """Each rank times its own steps (here rank 1 at half rank 0's speed); all take the slowest
    rank's length, so they stop at the same step with the same weights."""
    out = tmp_path / "out"
    out.mkdir()
    ranks = _torchrun(seasons, tmp_path / "ddp", out, 1000, env={"DDP_BUDGET": "24:1,2", "COMBOGAN_DIST_TIMEOUT": "60"})
    assert ranks[0] == ranks[1]
    assert ranks[0]["step"] == ranks[0]["total"] <= 12  # what fits rank 1: 24 s at 2 s a step


def test_torchrun_add_domain_keeps_frozen_files(seasons, tmp_path):
    import hashlib

    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "test"):
        (data / split).mkdir()
        for season in ("summer", "winter", "autumn"):
            (data / split / season).symlink_to(seasons / split / season, target_is_directory=True)
    (data / "domains.yaml").write_text("exclude: [autumn]\n")
    run = tmp_path / "run"
    train(data, tiny_config("data.batch_size=1"), run=run, device="cpu", max_iters=2, quiet=True)
    old = checkpoint.latest(run)
    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in old.path.iterdir()}
    env = _torchrun_env(tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "combogan",
           "add-domain", "--run-dir", str(run), "--domain", f"autumn={seasons / 'train' / 'autumn'}", "--max-iters", "3", "--device", "cpu", "-q"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("added autumn") == 1  # rank 0 alone reports
    assert checkpoint.latest(run).step == 5
    assert digests == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in old.path.iterdir()}
