"""Messy images of every kind: each loads as RGB at the right size, or is skipped cleanly."""

import io
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_config
from PIL import Image

from combogan.apps.train import train
from combogan.cli import main
from combogan.data.check import check
from combogan.data.images import BadImage, load_image


def test_modes_become_rgb(tmp_path):
    cases = {
        "gray.png": Image.new("L", (20, 10), 100),
        "palette.png": Image.new("RGB", (20, 10), (200, 10, 10)).convert("P"),
        "cmyk.jpg": Image.new("CMYK", (20, 10), (0, 255, 255, 0)),
        "sixteen.png": Image.fromarray(np.full((10, 20), 65535, np.uint16)),
        "bmp.bmp": Image.new("RGB", (20, 10)),
        "webp.webp": Image.new("RGB", (20, 10)),
        "tiff.TIFF": Image.new("RGB", (20, 10)),
    }
    for name, im in cases.items():
        im.save(tmp_path / name)
        t = load_image(tmp_path / name)
        assert t.shape == (3, 10, 20) and str(t.dtype) == "torch.uint8", name
    assert load_image(tmp_path / "sixteen.png").min() == 255  # 16-bit full scale -> 255, not clipped garbage


def test_rgba_composited_on_white(tmp_path):
    im = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    im.save(tmp_path / "t.png")
    assert load_image(tmp_path / "t.png").min() == 255


def test_exif_orientation_applied(tmp_path):
    im = Image.new("RGB", (40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    im.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (3, 40, 20)


def test_huge_jpeg_decoded_at_reduced_scale(tmp_path):
    Image.new("RGB", (4000, 3000), (5, 6, 7)).save(tmp_path / "big.jpg", quality=50)
    t = load_image(tmp_path / "big.jpg", short_side=64)
    assert t.shape == (3, 64, 85)


@pytest.mark.parametrize("content", [b"", b"not an image at all", None])
def test_corrupt_files_raise_badimage(tmp_path, content):
    path = tmp_path / "bad.jpg"
    if content is None:  # truncated JPEG
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, "JPEG")
        content = buf.getvalue()[: len(buf.getvalue()) // 3]
    path.write_bytes(content)
    with pytest.raises(BadImage):
        load_image(path)


def _dataset(root, corrupt_in=None, n=4):
    for d in ("day", "night"):
        (root / d).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (12, 12) if i == 0 else (40, 36), (i * 40, 10, 10)).save(root / d / f"{i}.png")  # one tiny
    if corrupt_in:
        for i in range(n if corrupt_in == "all" else 1):
            (root / "night" / f"{i}.png").write_bytes(b"\x89PNG broken")


def test_corrupt_file_found_inside_a_worker_is_skipped(tmp_path, capsys):
    _dataset(tmp_path / "d", corrupt_in="one")
    result = train(tmp_path / "d", tiny_config("data.num_workers=1"), run=tmp_path / "r", device="cpu", max_iters=6, quiet=True)
    assert result.step == 6
    import json

    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["skipped_files"]["night"] == [str(tmp_path / "d" / "night" / "0.png")]
    err = capsys.readouterr().err
    assert err.count("skipping unreadable image") == 1


def test_domain_with_only_corrupt_files(tmp_path, capsys):
    _dataset(tmp_path / "d", corrupt_in="all")
    args = ["train", "--domains", str(tmp_path / "d"), "--run", str(tmp_path / "r"), "--device", "cpu", "-q", "--max-iters", "3"]
    args += [a for s in ("model.ngf=8", "model.ndf=8", "model.n_blocks=2", "data.load_size=32", "data.crop_size=32", "data.num_workers=1") for a in ("--set", s)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: domain 'night' has no readable images left")


def test_data_check_report_and_exit_codes(tmp_path, capsys):
    _dataset(tmp_path / "ok", corrupt_in="one")
    report = check(tmp_path / "ok")
    assert report.ok and len(report.corrupt) == 1
    assert any("only 3 training images" in w for w in report.warnings)
    assert any("appear in several domains" in w for w in report.warnings)  # 1.png in day and night
    assert main(["data", "check", str(tmp_path / "ok")]) == 0
    out = capsys.readouterr().out
    assert "layout: flat" in out and "day" in out and "12x12 .. 40x36" in out and "corrupt:" in out
    _dataset(tmp_path / "bad", corrupt_in="all")
    assert main(["data", "check", str(tmp_path / "bad")]) == 1
    captured = capsys.readouterr()
    assert "problem: domain 'night' has no readable training images" in captured.out
    assert captured.err.startswith("error: ")


def test_data_check_flags_what_training_would_skip(tmp_path):
    """Pixels that decode but EXIF data that does not (found by tools/fuzz_images.py): training
    skips such a file, so data check must list it, not call it fine; and -q prints only problems."""
    root = tmp_path / "data"
    for domain in ("a", "b"):
        (root / domain).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (20, 10), (i, 2, 3)).save(root / domain / f"{i}.png")
    Image.new("RGB", (20, 10)).save(root / "a" / "bad_exif.png", exif=b"Exif\x00\x00MI\x00*\x00\x00\x00\x08")
    turned = Image.Exif()
    turned[0x0112] = 6  # shown a quarter turn round: 10 wide, 40 high
    Image.new("RGB", (40, 10)).save(root / "b" / "turned.jpg", exif=turned)
    with pytest.raises(BadImage):
        load_image(root / "a" / "bad_exif.png", 36)
    report = check(root)
    assert [Path(c.split(": ", 1)[0]).name for c in report.corrupt] == ["bad_exif.png"]
    assert report.sizes["a"] == ((20, 10), (20, 10))
    assert report.sizes["b"] == ((20, 10), (10, 40))  # sizes as training sees them, EXIF applied


def test_resize_square_is_the_paper_resize_and_crop(tmp_path):
    """data.resize=square stretches to load x load (official resize_and_crop); shorter_side keeps
    the aspect ratio. Both then crop crop_size squares."""
    from combogan.config import load
    from combogan.data.loader import DomainImages
    from combogan.errors import UsageError

    Image.new("RGB", (120, 60), (200, 10, 10)).save(tmp_path / "wide.png")
    assert tuple(load_image(tmp_path / "wide.png", 36, "square").shape) == (3, 36, 36)
    assert tuple(load_image(tmp_path / "wide.png", 36).shape) == (3, 36, 72)
    square = DomainImages([[tmp_path / "wide.png"]], 36, 32, flip=False, resize="square")
    assert tuple(square[(0, 0, 1)][0].shape) == (3, 32, 32)
    assert load(None, ["data.resize=square"]).data.resize == "square"
    with pytest.raises(UsageError, match="data.resize must be 'shorter_side' or 'square'"):
        load(None, ["data.resize=stretch"])
    for paper in ("configs/alps_seasons.yaml", "configs/cyclegan.yaml"):
        assert load(Path(__file__).parents[2] / paper).data.resize == "square"
