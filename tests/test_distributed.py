"""torchrun with 2 CPU processes (gloo): same pairs, different images, identical weights, equal to
one process with the doubled batch, rank 0 alone writes, resume works."""

import json
import os
import subprocess
import sys
from pathlib import Path


from combogan import checkpoint
from combogan.data import StepBatches
from combogan.sampler import PairSampler
from combogan.trainer import train
from conftest import TINY_SET, tiny_config

SETTINGS = [s for s in TINY_SET if not s.startswith("data.batch_size")] + ["train.pool_size=0", "train.checkpoint_every=2"]


def _torchrun(data, run, out, iters, resume=False):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).parent / "ddp_worker.py"), str(data), str(run), str(out), str(iters), "1" if resume else "0",
           *SETTINGS, "data.batch_size=1"]
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


def test_torchrun_two_processes(seasons, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    ranks = _torchrun(seasons, tmp_path / "ddp", out, 4)
    assert ranks[0]["digest"] == ranks[1]["digest"] and ranks[0]["step"] == 4  # identical weights on every rank
    # only rank 0 wrote: one set of event files, one manifest, checkpoints at 2 and 4
    assert len(list((tmp_path / "ddp" / "tb").glob("events*"))) == 1
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path / "ddp")] == ["step_000000002", "step_000000004"]
    # equal to one process with the doubled batch (InstanceNorm is per sample)
    cfg = tiny_config("train.pool_size=0", "data.batch_size=2")
    train(seasons, cfg, run=tmp_path / "single", device="cpu", max_iters=4, quiet=True)
    a, b = checkpoint.latest(tmp_path / "ddp"), checkpoint.latest(tmp_path / "single")
    # Adam turns rounding noise in near-zero gradients into lr-sized steps, so compare the weight
    # *updates*: DDP must land where the single big-batch run went, up to a small fraction of how far
    # it moved (a wrong shard or a missing all-reduce gives a ratio near 1).
    from combogan.registry import DomainRegistry

    init = DomainRegistry(cfg.model, cfg.train)
    for name in a.domains:
        init.add(name)
        w0 = init.nets_state(name)
        wa = checkpoint.safe_load(a.file(tmp_path / "ddp", name, "nets"))["state_dict"]
        wb = checkpoint.safe_load(b.file(tmp_path / "single", name, "nets"))["state_dict"]
        keys = [k for k in wa if k.endswith("weight")]
        moved = sum(float(((wb[k] - w0[k]) ** 2).sum()) for k in keys) ** 0.5
        apart = sum(float(((wa[k] - wb[k]) ** 2).sum()) for k in keys) ** 0.5
        if moved > 0:  # a domain not drawn in 4 steps did not move in either run
            assert apart < 0.25 * moved, (name, apart / moved)
        else:
            assert apart == 0
    # resume: both ranks load the same checkpoint and continue
    ranks = _torchrun(seasons, tmp_path / "ddp", out, 6, resume=True)
    assert ranks[0]["digest"] == ranks[1]["digest"] and ranks[0]["step"] == 6
    assert checkpoint.latest(tmp_path / "ddp").step == 6


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
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "combogan",
           "add-domain", "--run-dir", str(run), "--domain", f"autumn={seasons / 'train' / 'autumn'}", "--max-iters", "3", "--device", "cpu", "-q"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("added autumn") == 1  # rank 0 alone reports
    assert checkpoint.latest(run).step == 5
    assert digests == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in old.path.iterdir()}
