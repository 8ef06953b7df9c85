import dataclasses
import hashlib

import pytest
import torch
from conftest import Clock, logged_lr, tiny_config

from combogan.apps.train import add_domains, train
from combogan.apps.translator import Translator
from combogan.cli import main
from combogan.errors import UserError
from combogan.runs import checkpoint, rundir
from combogan.training.budget import TimeBudget
from combogan.training.schedule import Schedule


@pytest.fixture
def two_season_run(seasons, tmp_path):
    """Train on summer + winter only (domains.yaml excludes the others), then grow it."""
    data = tmp_path / "data"
    for split in ("train", "test"):
        for s in ("summer", "winter", "autumn"):
            (data / split / s).mkdir(parents=True)
            for f in (seasons / split / s).iterdir():
                (data / split / s / f.name).write_bytes(f.read_bytes())
    (data / "domains.yaml").write_text("exclude: [autumn]\n")
    run = tmp_path / "run"
    train(data, tiny_config(), run=run, device="cpu", max_iters=6, quiet=True)
    return run, data


def _hashes(run, names):
    index = checkpoint.latest(run)
    return {(n, k): hashlib.sha256(index.file(run, n, k).read_bytes()).hexdigest() for n in names for k in ("nets", "state")}


def test_add_domain_freezes_old_and_translates_every_way(two_season_run):
    run, data = two_season_run
    before = _hashes(run, ["summer", "winter"])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    old_out = Translator(run, device="cpu").translate(x, "summer", "winter")

    result = add_domains(run, {"autumn": data / "train" / "autumn"}, overrides=["train.checkpoint_every=3"], device="cpu", max_iters=7, quiet=True)
    assert result.step == 6 + 7
    assert _hashes(run, ["summer", "winter"]) == before  # byte-identical old files
    tr = Translator(run, device="cpu")
    assert tr.domains == ["summer", "winter", "autumn"]
    assert torch.equal(tr.translate(x, "summer", "winter"), old_out)  # old translations bit-identical
    for src, dst in [("autumn", "summer"), ("winter", "autumn"), ("autumn", "autumn")]:
        y = tr.translate(x, src, dst)
        assert y.shape == x.shape and torch.isfinite(y).all()
    manifest = rundir.read_manifest(run)
    entry = manifest["domains"][-1]
    assert entry["name"] == "autumn" and entry["added_by"] == "add-domain" and entry["added_at_step"] == 6
    assert entry["settings"]["epochs"] == 100  # 100 x 1 new domain by default


def test_add_domain_errors_then_resume(two_season_run, capsys):
    run, data = two_season_run
    autumn = data / "train" / "autumn"
    empty = data / "empty"
    empty.mkdir()
    before = _hashes(run, ["summer", "winter"])
    manifest_before = (run / "manifest.json").read_bytes()
    cases = [
        (["--domain", f"summer={autumn}"], "already in the run"),
        (["--domain", f"fog={data / 'nothing'}"], "not found"),
        (["--domain", f"fog={empty}"], "has no images"),
        (["--domain", "fog"], "NAME=DIR"),
        (["--domain", f"fog={autumn}", "--set", "model.ngf=16"], "architecture"),
        (["--domain", f"fog={autumn}", "--resume"], "nothing to resume"),
        (["--domain", f"fog={autumn}", "--time", "soon"], "--time expects a duration"),
    ]
    for args, match in cases:
        code = main(["add-domain", "--run", str(run), "--device", "cpu", *args])
        err = capsys.readouterr().err
        assert code in (1, 2) and err.startswith("error: ") and match in err and len(err.strip().splitlines()) == 1, (args, err)
    code = main(["add-domain", "--run", str(data / "none"), "--domain", f"fog={autumn}"])
    assert code == 1 and "run not found" in capsys.readouterr().err
    assert _hashes(run, ["summer", "winter"]) == before and (run / "manifest.json").read_bytes() == manifest_before

    add_domains(run, {"autumn": autumn}, device="cpu", max_iters=3, quiet=True)
    with pytest.raises(UserError, match="unfinished"):
        add_domains(run, {"fog": autumn}, device="cpu", max_iters=3, quiet=True)
    result = add_domains(run, {"autumn": autumn}, device="cpu", max_iters=5, resume=True, quiet=True)
    assert result.step == 6 + 5
    assert checkpoint.latest(run).step == 11
    assert _hashes(run, ["summer", "winter"]) == before


def test_add_domain_does_not_inherit_a_length_fitted_to_trains_time_budget(two_season_run):
    """`train --time` records the run's fitted length in train.iters; a new domain's schedule is
    its own (train.epochs_per_domain), unless --set gives it a length."""
    run, data = two_season_run
    cfg = rundir.read_config(run)
    rundir.write_config(run, dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, iters=8)))
    result = add_domains(run, {"autumn": data / "train" / "autumn"}, device="cpu", max_iters=1, quiet=True)
    assert result.total_iters - 6 == 100 * 5  # 100 epochs of 10 images at batch 2, after the run's 6 steps
    added = rundir.read_manifest(run)["domains"][-1]
    assert added["settings"]["iters"] == 500


def test_add_domain_fits_its_schedule_into_a_time_budget_and_leaves_the_runs_config(two_season_run):
    run, data = two_season_run
    config_before = (run / "config.yaml").read_bytes()
    result = add_domains(run, {"autumn": data / "train" / "autumn"}, device="cpu", quiet=True, time_budget=TimeBudget(24.0, clock=Clock()))
    fitted = result.total_iters - 6
    assert not result.interrupted and result.step == result.total_iters
    assert 18 <= fitted <= 24  # one step per simulated second, against the configured 500
    manifest = rundir.read_manifest(run)
    assert "adding" not in manifest and manifest["total_iters"] == result.total_iters
    assert manifest["domains"][-1]["settings"]["iters"] == fitted
    assert (run / "config.yaml").read_bytes() == config_before  # the run's own schedule is untouched


def test_an_add_domain_fitted_to_a_budget_resumes_with_the_length_in_force_at_its_checkpoint(two_season_run):
    """The speed drops after a few steps, so the length is fitted again; stopped at step 10 and
    resumed without a budget, the add-domain follows the length it had there: every step, before
    and after the resume, trained at that schedule's learning rate."""
    run, data = two_season_run
    autumn = {"autumn": data / "train" / "autumn"}
    slow_after_7 = Clock(lambda reading: 1.0 if reading < 8 else 3.0)
    add_domains(run, autumn, device="cpu", max_iters=10, quiet=True, time_budget=TimeBudget(60.0, clock=slow_after_7))
    length = rundir.read_manifest(run)["adding"]["iters"]
    assert 10 < length < 5 + int(55 * 0.98)  # shorter than the first fit, at 1 it/s
    resumed = add_domains(run, autumn, device="cpu", resume=True, quiet=True)
    assert resumed.step == resumed.total_iters == 6 + length
    schedule, lr = Schedule(1, 1, 0.25, iters=length), rundir.read_config(run).train.lr
    logged = logged_lr(run)
    assert all(logged[6 + n] == pytest.approx(lr * schedule.lr_factor(n - 1), rel=1e-6) for n in range(1, length + 1))
