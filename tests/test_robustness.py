"""Bad input everywhere (the README's table, row by row) and hand-edited run files."""

import json

import pytest
from conftest import TINY_SET, tiny_config
from PIL import Image

from combogan.apps.train import train
from combogan.cli import main


def _err(capsys, args, code):
    got = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert got == code, err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == [lines[-1]] and "Traceback" not in err, err  # warnings may precede the one error line
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), err
    return lines[-1]


@pytest.fixture
def run_copy(trained_run, tmp_path):
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(trained_run, dst)
    return dst


def test_hand_edited_or_newer_manifest_and_config(run_copy, capsys):
    manifest = run_copy / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text("{not json")
    assert "damaged" in _err(capsys, ["info", run_copy], 1)
    manifest.write_text(json.dumps({**data, "version": 99}))
    assert "newer combogan" in _err(capsys, ["info", run_copy], 1)
    manifest.write_text(json.dumps({**data, "domains": "summer"}))
    assert "hand-edited" in _err(capsys, ["info", run_copy], 1)
    manifest.write_text(json.dumps(data))
    (run_copy / "config.yaml").write_text("model:\n  ngf: 8\n  ngf_typo: 3\n")
    assert "did you mean 'model.ngf'" in _err(capsys, ["info", run_copy], 2)


def test_translate_bad_inputs(trained_run, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    line = _err(capsys, ["translate", "--run", trained_run, "--from", "summer", "--to", "winter", tmp_path / "notes.txt", "--out", tmp_path / "o"], 1)
    assert "not an image file" in line
    (tmp_path / "broken.png").write_bytes(b"\x89PNG nope")
    line = _err(capsys, ["translate", "--run", trained_run, "--from", "summer", "--to", "winter", tmp_path / "broken.png", "--out", tmp_path / "o", "-q"], 1)
    assert "no readable images" in line
    Image.new("RGB", (20, 20)).save(tmp_path / "ok.png")
    (tmp_path / "blocker").write_text("a file where a folder should go")
    line = _err(capsys, ["translate", "--run", trained_run, "--from", "summer", "--to", "winter", tmp_path / "ok.png", "--out", tmp_path / "blocker" / "sub", "-q"], 1)
    assert "cannot write" in line


def test_unwritable_run_location(seasons, tmp_path, capsys):
    (tmp_path / "blocker").write_text("x")
    args = ["train", "--domains", seasons, "--run", tmp_path / "blocker" / "run", "--device", "cpu", "-q", "--max-iters", "1"]
    args += [a for s in TINY_SET for a in ("--set", s)]
    assert "cannot create run directory" in _err(capsys, args, 1)


def test_eight_domains_with_few_images_each(tmp_path):
    for d in range(9):
        for i in range(3):
            (tmp_path / "d" / f"style{d}").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (36, 36), (d * 25, i * 60, 100)).save(tmp_path / "d" / f"style{d}" / f"{i}.png")
    result = train(tmp_path / "d", tiny_config(), run=tmp_path / "run", device="cpu", max_iters=12, quiet=True)
    assert result.step == 12
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert len(manifest["domains"]) == 9 and result.total_iters == 2 * 100 * 9  # ceil(3/2) x 100 x N


# ---- the adversarial input set, through every command that reads images ----------------------
def _no_traceback(capsys, args, code=0):
    got = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert got == code, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert all(line.startswith(("warning: ", "note: ", "using run ", "error: ")) for line in err.strip().splitlines() if line), err
    return out, err


def test_translate_takes_the_adversarial_set(trained_run, tmp_path, capsys):
    from adversarial import make_adversarial, size_of

    names = make_adversarial(tmp_path / "in")
    out, err = _no_traceback(capsys, ["translate", "--run", trained_run, "--from", "summer", "--to", "winter", tmp_path / "in",
                                      "--out", tmp_path / "out", "--device", "cpu", "-q"])
    for name in names["good"]:  # every size translates, and comes back at its own size
        assert size_of(tmp_path / "out" / name) == size_of(tmp_path / "in" / name), name
    for name in names["bad"]:
        assert not (tmp_path / "out" / name).exists() and f"{name}:" in err, name
    assert err.count("warning: skipping") == len(names["bad"]) + (not (tmp_path / "out" / "no_permission.png").exists())
    assert not any((tmp_path / "out" / n).exists() for n in names["ignored"])


def test_eval_data_check_train_and_add_domain_take_the_adversarial_set(trained_run, seasons, tmp_path, capsys):
    import shutil

    from adversarial import make_adversarial

    root = tmp_path / "data"
    for split in ("train", "test"):
        for season in ("summer", "winter"):
            shutil.copytree(seasons / split / season, root / split / season)
    names = make_adversarial(root / "test" / "summer")
    make_adversarial(root / "train" / "summer")
    out, _ = _no_traceback(capsys, ["eval", "--run", trained_run, "--domains", root, "--device", "cpu", "-q", "--json", tmp_path / "e.json"])
    report = json.loads((tmp_path / "e.json").read_text())
    pair = next(p for p in report["pairs"] if (p["source"], p["target"]) == ("summer", "winter"))
    assert pair["paired"] == 3 and pair["images"] >= 3 + len(names["good"])
    out, _ = _no_traceback(capsys, ["data", "check", root])
    assert all(f"{n}:" in out for n in names["bad"]) and "ok: ready to train" in out
    args = ["train", "--domains", root, "--run", tmp_path / "run", "--max-iters", "3"] + [a for s in TINY_SET for a in ("--set", s)]
    _no_traceback(capsys, args + ["--set", "data.batch_size=8", "--device", "cpu", "-q"])
    run = tmp_path / "grown"
    shutil.copytree(trained_run, run)
    _no_traceback(capsys, ["add-domain", "--run", run, "--domain", f"odd={root / 'train' / 'summer'}", "--data", seasons,
                           "--max-iters", "2", "--device", "cpu", "-q"])


def test_a_folder_of_datasets_is_refused_with_a_suggestion(trained_run, seasons, tmp_path, capsys):
    import shutil

    shutil.copytree(seasons, tmp_path / "datasets" / "alps")
    (tmp_path / "datasets" / "other").mkdir()
    parent = tmp_path / "datasets"
    want = f"looks like a folder of datasets (alps/ holds train/<domain>/); did you mean --domains {parent / 'alps'}?"
    args = [a for s in TINY_SET for a in ("--set", s)]
    assert want in _err(capsys, ["train", "--domains", parent, "--run", tmp_path / "r", *args], 1)
    assert not (tmp_path / "r").exists()
    assert want in _err(capsys, ["eval", "--run", trained_run, "--domains", parent, "-q"], 1)
    assert "did you mean combogan data check" in _err(capsys, ["data", "check", parent], 1)
    run = tmp_path / "grown"
    shutil.copytree(trained_run, run)
    assert "did you mean --data" in _err(capsys, ["add-domain", "--run", run, "--domain", f"x={seasons / 'train' / 'summer'}",
                                                  "--data", parent, "--device", "cpu", "-q"], 1)
    official = tmp_path / "official" / "alps_seasons"
    for i, season in enumerate(("spring", "summer", "autumn", "winter")):
        shutil.copytree(seasons / "train" / season, official / f"train{i}")
    assert "alps_seasons/ holds train0, train1, train2, …" in _err(capsys, ["data", "check", tmp_path / "official"], 1)
