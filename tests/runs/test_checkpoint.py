import hashlib
import pickle
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from combogan.apps.train import train
from combogan.apps.translator import Translator
from combogan.errors import UserError
from combogan.runs import checkpoint


def _scalars(run, tag):
    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tag)}


def test_save_load_gives_identical_outputs(trained_run):
    x = torch.rand(2, 3, 28, 36) * 2 - 1
    t1, t2 = Translator(trained_run, device="cpu"), Translator(trained_run, device="cpu")
    y1, y2 = t1.translate(x, "summer", "winter"), t2.translate(x, "summer", "winter")
    assert torch.equal(y1, y2)
    # and the models loaded equal the weights on disk: the weight average (train.ema, on by
    # default) or the trained weights, which differ after a few steps
    index = checkpoint.latest(trained_run)
    assert "ema" in index.domains["winter"]
    averaged = checkpoint.load_weights(index.file(trained_run, "winter", "ema"))
    live = checkpoint.load_weights(index.file(trained_run, "winter", "nets"))
    for weights, want in (("average", averaged), ("live", live)):
        for k, v in Translator(trained_run, device="cpu", weights=weights).model.domain_state("winter").items():
            assert torch.equal(v, want[k]), (weights, k)
    assert any(not torch.equal(averaged[k], live[k]) for k in averaged if k.startswith(("encoder.", "decoder.")))


def test_auto_weights_take_an_average_once_it_has_settled(trained_run, monkeypatch):
    """A few updates of train.ema=0.999: no average has settled, auto loads the trained weights;
    with a shorter settling time every average has, and auto loads the averages."""
    index = checkpoint.latest(trained_run)
    counts = {n: index.average_updates(trained_run, n) for n in index.domains if index.averaged(n)}
    assert len(counts) >= 2 and all(0 < c[1] < checkpoint.settling_updates(c[0]) for c in counts.values()), counts
    assert checkpoint.settling_updates(0.999) == 750 and checkpoint.settling_updates(0.995) == 150
    x = torch.rand(1, 3, 16, 16) * 2 - 1

    def outputs(weights):
        model, _ = checkpoint.load_model(trained_run, weights=weights)
        return {(a, b): model.translate(x, a, b) for a in counts for b in counts if a != b}

    live, average = outputs("live"), outputs("average")
    assert all(not torch.equal(live[k], average[k]) for k in live)
    for share, want in ((checkpoint.SETTLED_SHARE, live), (min(c[1] for c in counts.values()) * 0.001, average)):
        monkeypatch.setattr(checkpoint, "SETTLED_SHARE", share)
        got = outputs("auto")
        assert all(torch.equal(got[k], want[k]) for k in want), share
    assert Translator(trained_run, device="cpu").weights == {n: "average" if n in counts else "live" for n in index.domains}
    with pytest.raises(ValueError, match="weights must be one of auto, average, live"):
        checkpoint.load_model(trained_run, weights="ema")


def test_load_model_takes_a_string_path(trained_run):
    # the README's API example: load_model("runs/demo")
    from_str, _ = checkpoint.load_model(str(trained_run))
    from_path, _ = checkpoint.load_model(trained_run)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(from_str.translate(x, "summer", "winter"), from_path.translate(x, "summer", "winter"))


def test_resume_continues_the_same_trajectory(seasons, tmp_path):
    cfg = tiny_config("train.pool_size=2", "model.dropout=0.5")  # pool and dropout RNG must resume too
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(seasons, cfg, run=straight, device="cpu", max_iters=8, quiet=True)
    train(seasons, cfg, run=split, device="cpu", max_iters=4, quiet=True)
    result = train(seasons, cfg, run=split, device="cpu", max_iters=8, resume=True, quiet=True)
    assert result.step == 8
    for tag in ("G_total", "lr"):
        a, b = _scalars(straight, tag), _scalars(split, tag)
        assert set(a) == set(range(1, 9)) and set(b) == set(range(1, 9))
        for step in range(5, 9):
            assert a[step] == pytest.approx(b[step], rel=1e-6), (tag, step)
    ia, ib = checkpoint.latest(straight), checkpoint.latest(split)
    for name in ia.domains:
        wa = checkpoint.load_weights(ia.file(straight, name, "nets"))
        wb = checkpoint.load_weights(ib.file(split, name, "nets"))
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)


def test_keeps_last_k_and_falls_back_from_a_damaged_newest(seasons, tmp_path):
    run = tmp_path / "run"
    train(seasons, tiny_config("train.checkpoint_every=2", "train.keep_checkpoints=2"), run=run, device="cpu", max_iters=6, quiet=True)
    folders = checkpoint.list_checkpoints(run)
    assert [f.name for f in folders] == ["step_000000004", "step_000000006"]
    (folders[-1] / "winter.safetensors").write_bytes(b"garbage")
    warnings = []
    index = checkpoint.latest(run, warn=warnings.append)
    assert index.step == 4 and "step_000000006" in warnings[0]


def test_a_kill_while_pruning_or_saving_leaves_no_half_checkpoint(seasons, tmp_path, monkeypatch):
    """A kill half way through deleting an old checkpoint must not leave a folder that still has
    its index.json but lost some of its files (found by tools/soak_crash.py); and a resume
    clears away what kills left: half-deleted folders and checkpoints whose write never finished."""
    import shutil

    run = tmp_path / "run"
    cfg = tiny_config("train.checkpoint_every=2", "train.keep_checkpoints=2")
    train(seasons, cfg, run=run, device="cpu", max_iters=4, quiet=True)
    real_rmtree = shutil.rmtree

    def killed_half_way(path, *args, **kwargs):  # deletes one file, then the process "dies"
        next(p for p in sorted(path.iterdir()) if p.name != "index.json").unlink()
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        train(seasons, cfg, run=run, device="cpu", max_iters=6, resume=True, quiet=True)  # step 6 prunes step 2
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    for folder in checkpoint.list_checkpoints(run):
        if (folder / "index.json").exists():
            checkpoint.read_index(run, folder)  # a folder that looks complete is complete
    (run / "checkpoints" / "step_000000099").mkdir()  # a write a kill interrupted: no index.json
    (run / "checkpoints" / "step_000000099" / "winter.safetensors").write_bytes(b"partial")
    train(seasons, cfg, run=run, device="cpu", max_iters=8, resume=True, quiet=True)
    left = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert left == ["step_000000006", "step_000000008"]


def test_no_loadable_checkpoint_is_told_apart_from_none_yet(seasons, tmp_path, capsys):
    """A run whose every checkpoint is unreadable (damaged, or written by a newer version with an
    option this one lacks) must not be reported as "no checkpoint yet": the user would wait."""
    import json
    import shutil

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from combogan.cli import main

    run = tmp_path / "run"
    train(seasons, tiny_config("train.checkpoint_every=2"), run=run, device="cpu", max_iters=4, quiet=True)
    folders = checkpoint.list_checkpoints(run)
    assert len(folders) == 2
    for f in folders[0].glob("*.safetensors"):
        f.write_bytes(b"garbage")
    for f in folders[1].glob("*.safetensors"):  # as if written by a version with one more model option
        with safe_open(str(f), framework="pt") as g:
            meta = g.metadata()
        meta["arch"] = json.dumps({**json.loads(meta["arch"]), "future_option": 1})
        save_file(load_file(str(f)), str(f), metadata=meta)
    with pytest.raises(UserError, match="cannot load the model: none of the 2 checkpoint"):
        checkpoint.load_model(run)
    assert main(["translate", "--run", str(run), "--from", "summer", "--to", "winter", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "unknown option(s) future_option" in err and "damaged or unreadable" in err
    assert err.strip().splitlines()[-1].startswith("error: cannot load the model: none of")
    empty = tmp_path / "empty"
    shutil.copytree(run, empty, ignore=shutil.ignore_patterns("checkpoints"))
    with pytest.raises(UserError, match="has no complete checkpoint yet"):
        checkpoint.load_model(empty)


def test_refuses_pickle_that_runs_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(UserError, match="refusing to load"):
        checkpoint.safe_load(path)
    torch.save({"x": Evil()}, path)
    with pytest.raises(UserError, match="refusing to load"):
        checkpoint.safe_load(path)


def test_resume_with_other_architecture_refused_and_nothing_modified(seasons, trained_run):
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in trained_run.rglob("*") if p.is_file()}
    with pytest.raises(UserError, match="different architecture.*model.ngf: 8 -> 16"):
        train(seasons, tiny_config("model.ngf=16"), run=trained_run, device="cpu", max_iters=10, resume=True, quiet=True)
    assert digest == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in trained_run.rglob("*") if p.is_file()}


def test_existing_run_without_resume_is_refused(seasons, trained_run):
    with pytest.raises(UserError, match="already exists"):
        train(seasons, tiny_config(), run=trained_run, device="cpu", max_iters=2, quiet=True)


def test_a_combogan_0_1_run_with_identity_on_is_not_silently_reinterpreted(seasons, tmp_path, capsys):
    """Version-1 runs meant the autoencoding term by loss.lambda_identity; resuming one with the
    same setting is refused with one line naming the version, and works once the setting changes."""
    import json

    from conftest import TINY_SET

    from combogan.cli import main

    args = ["train", "--domains", str(seasons), "--run", str(tmp_path / "old"), "--device", "cpu", "-q"]
    args += [a for s in TINY_SET + ["loss.lambda_identity=0.5"] for a in ("--set", s)]
    assert main(args + ["--max-iters", "1"]) == 0
    manifest = tmp_path / "old" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "version": 1}))  # as combogan 0.1 wrote it
    capsys.readouterr()
    assert main(args + ["--max-iters", "2", "--resume"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "trained by combogan 0.1" in err and len(err.splitlines()) == 1
    assert main(args + ["--max-iters", "2", "--resume", "--set", "loss.lambda_identity=0"]) == 0
    assert json.loads(manifest.read_text())["version"] == 2 and json.loads(manifest.read_text())["step"] == 2


def test_a_run_written_by_combogan_0_1_translates_and_resumes(seasons, tmp_path):
    """tests/fixtures/run_v0_1 was written by combogan 0.1 (weights in <domain>.nets.pt, manifest
    version 1) with its expected translations: they are reproduced, and training resumes."""
    import shutil

    import numpy as np

    from combogan.runs import rundir

    run = tmp_path / "old"
    shutil.copytree(Path(__file__).parent.parent / "fixtures" / "run_v0_1", run)
    expected = np.load(run / "expected.npz")
    # keys added since the run was written read with their old meaning, never today's defaults
    cfg = rundir.read_config(run)
    assert (cfg.model.upsample, cfg.model.activation, cfg.train.ema, cfg.train.diffaugment, cfg.loss.lambda_identity) == ("transpose", "relu", 0.0, "", 0.0)
    tr = Translator(run, device="cpu")
    x = torch.from_numpy(expected["x"])
    for a in tr.domains:
        for b in tr.domains:
            if a != b:
                torch.testing.assert_close(tr.translate(x, a, b), torch.from_numpy(expected[f"{a}_{b}"]), rtol=0, atol=1e-6)
    result = train(seasons, rundir.read_config(run), run=run, device="cpu", max_iters=5, resume=True, quiet=True)
    assert result.step == 5
    index = checkpoint.latest(run)
    assert all(files["nets"].endswith(".safetensors") for files in index.domains.values())
    assert Translator(run, device="cpu").step == 5
    # ... and grows: the 0.1-format files of the old domains stay as they are.
    old = {p: p.read_bytes() for p in (run / "checkpoints").rglob("*.nets.pt")}
    from combogan.apps.train import add_domains

    shutil.copytree(seasons / "train" / "winter", tmp_path / "snow")
    assert add_domains(run, {"snow": tmp_path / "snow"}, max_iters=2, device="cpu", quiet=True, existing_data=seasons).step == 7
    assert old and all(p.read_bytes() == b for p, b in old.items())
    assert "snow" in Translator(run, device="cpu").domains
