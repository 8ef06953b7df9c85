"""Bad input everywhere (the README's table, row by row) and hand-edited run files."""

import json

import pytest
from PIL import Image

from combogan.cli import main
from combogan.trainer import train
from conftest import TINY_SET, tiny_config


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
